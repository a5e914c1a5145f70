"""`shipyard streams` and `shipyard ingest` against a running server."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from shipyard.cli import app
from shipyard.core.config import Settings
from shipyard.pipeline import BackgroundServer, Workspace


def test_create_send_status_then_drain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"".join(orjson.dumps({"event_id": f"evt-{i:016x}", "card_id": f"c{i}"}) + b"\n"
                 for i in range(40))
    )  # fmt: skip
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    workspace = Workspace.open(Settings(home=home))
    with BackgroundServer(workspace) as server:
        url = ["--url", server.url]
        created = runner.invoke(app, ["streams", "create", "cards", "--shards", "3", *url], env=env)
        assert created.exit_code == 0, created.output
        assert "shardId-000000000002" in created.output
        sent = runner.invoke(
            app, ["ingest", "send", "--generate", "600", "--stream", "cards", *url]
        )
        assert sent.exit_code == 0, sent.output
        assert "600 delivered, 0 failed" in sent.output
        from_file = runner.invoke(app, ["ingest", "send", str(events), "--stream", "cards", *url])
        assert "40 delivered" in from_file.output
        status = runner.invoke(app, ["ingest", "status", *url], env=env)
        assert status.exit_code == 0 and "640" in status.output
        missing = runner.invoke(app, ["streams", "describe", "nope", *url])
        assert missing.exit_code != 0
        both = runner.invoke(app, ["ingest", "send", str(events), "--generate", "3", *url])
        assert both.exit_code == 2
    workspace.close()
    drained = runner.invoke(app, ["ingest", "drain", "cards"])
    assert drained.exit_code == 0, drained.output
    assert "landed 640 records" in drained.output
