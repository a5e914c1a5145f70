from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli import app
from shipyard.core.config import Settings
from shipyard.pipeline import Workspace
from shipyard.storage import record_dataset


def test_datasets_and_lineage_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    ws = Workspace.open(Settings(home=home))
    parent = record_dataset(
        ws.meta, name="s/landing", zone="landing", uri="u", content_hash="h", rows=5
    )
    child = record_dataset(
        ws.meta, name="s/curated", zone="curated", uri="v", content_hash="h", rows=4,
        parents=[parent.id],
    )  # fmt: skip
    ws.close()
    runner = CliRunner()
    listed = runner.invoke(app, ["datasets"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert parent.id in listed.output and child.id in listed.output
    shown = runner.invoke(app, ["lineage", child.id], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "made from" in shown.output and parent.id in shown.output
