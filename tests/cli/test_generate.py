from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from shipyard.cli import generate
from shipyard.cli.generate import generate_command
from shipyard.scenarios.fraud import FraudScenario


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("generate")(generate_command)

    @app.command()
    def other() -> None:
        """A second command, so `generate` is addressed by name as in the real CLI."""

    return app


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(), ["generate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_default_writes_json_lines_to_stdout() -> None:
    code, out, err = _run("--events", "5", "--seed", "3")
    assert (code, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == FraudScenario(seed=3).generate(5).events.to_pylist()


def test_options_reach_the_scenario() -> None:
    code, out, _ = _run(
        "-n",
        "300",
        "--seed",
        "4",
        "--bad-rows",
        "0.5",
        "--drift",
        "amount=2",
        "--drift",
        "channel=3",
        "--drift-start",
        "2026-11-01T00:00:00.005",
    )
    assert code == 0
    scenario = FraudScenario(
        seed=4,
        bad_row_rate=0.5,
        drift={"amount": 2.0, "channel": 3.0},
        drift_start=datetime(2026, 11, 1, 0, 0, 0, 5000, tzinfo=UTC),
    )
    assert [json.loads(line) for line in out.splitlines()] == scenario.generate(
        300
    ).events.to_pylist()


def test_parquet_out_with_json_labels(tmp_path: Path) -> None:
    events, labels = tmp_path / "events.parquet", tmp_path / "labels.jsonl"
    code, out, _ = _run("--events", "1000", "--out", str(events), "--labels", str(labels))
    assert (code, out) == (0, "")
    expected = FraudScenario().generate(1000)
    assert pq.read_table(events).equals(expected.events)
    lines = labels.read_text().splitlines()
    assert [json.loads(line) for line in lines] == expected.labels.to_pylist()


def test_json_lines_out_with_parquet_labels_and_a_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generate, "PROGRESS_MIN_EVENTS", 1)
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.parquet"
    code, out, _ = _run("-n", "20", "--seed", "2", "-o", str(events), "--labels", str(labels))
    assert (code, out) == (0, "")
    expected = FraudScenario(seed=2).generate(20)
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert rows == expected.events.to_pylist()
    assert pq.read_table(labels).equals(expected.labels)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--drift", "amount"], "'amount'"),
        (["--drift", "nosuchcol=2"], "'nosuchcol'"),
        (["--drift", "amount=big"], "'big'"),
        (["--drift", "amount=-1"], "-1"),
        (["--bad-rows", "2"], "--bad-rows"),
        (["--drift", "amount=2", "--drift-start", "tomorrow"], "'tomorrow'"),
        (["--seed", "-3"], "-3"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], named: str) -> None:
    code, out, err = _run("--events", "10", *args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("shipyard: ") and named in err
    assert "Traceback" not in err


def test_negative_event_count_is_refused() -> None:
    code, _, err = _run("--events", "-1")
    assert code == 2 and "--events" in err


def test_unwritable_output_exits_1_with_one_line(tmp_path: Path) -> None:
    code, _, err = _run("--events", "3", "--out", str(tmp_path / "missing" / "x.parquet"))
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("shipyard: cannot write output")


def test_a_reader_that_quits_early_ends_the_run_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    silenced: list[bool] = []

    def closed_pipe(*args: object, **kwargs: object) -> None:
        raise OSError("Broken pipe (os error 32)")

    monkeypatch.setattr(generate, "write_jsonl", closed_pipe)
    monkeypatch.setattr(generate, "_silence_stdout", lambda: silenced.append(True))
    assert _run("--events", "10") == (0, "", "")
    assert silenced == [True]


def test_help_describes_every_option() -> None:
    result = CliRunner().invoke(_app(), ["generate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--events",
        "--seed",
        "--bad-rows",
        "--drift",
        "--drift-start",
        "--labels",
        "--out",
    ):
        assert option in result.stdout
    assert "COLUMN=FACTOR" in result.stdout and "merchant_category" in result.stdout
