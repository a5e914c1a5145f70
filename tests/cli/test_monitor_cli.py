from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from shipyard.cli.monitor import monitor_app

RNG = np.random.default_rng(3)


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    app = typer.Typer()
    app.add_typer(monitor_app, name="monitor")
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["monitor", *args], env={"SHIPYARD_HOME": str(tmp_path / "h")})

    return run


def _frames(tmp_path: Path, shift: float) -> tuple[Path, Path]:
    reference, current = tmp_path / "reference.parquet", tmp_path / "current.parquet"
    channels = ["pos", "ecom", "atm"]
    pl.DataFrame(
        {"amount": RNG.lognormal(3, 1, 4000), "channel": RNG.choice(channels, 4000)}
    ).write_parquet(reference)
    pl.DataFrame(
        {"amount": RNG.lognormal(3 + shift, 1, 3000), "channel": RNG.choice(channels, 3000)}
    ).write_parquet(current)
    return reference, current


def test_drift_exits_1_on_dataset_drift_and_writes_the_reports(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference, current = _frames(tmp_path, shift=1.0)
    out = tmp_path / "out"

    result = invoke(
        "drift", "--reference", str(reference), "--current", str(current), "--out", str(out)
    )

    assert result.exit_code == 1, result.output
    assert "DATASET DRIFT: 1 of 2 features drifted" in result.stdout
    assert "amount" in result.stdout and "channel" in result.stdout
    violations = json.loads((out / "constraint_violations.json").read_text())
    assert [v["feature_name"] for v in violations["violations"]] == ["amount"]
    assert (out / "report.html").is_file() and (out / "drift_report.json").is_file()


def test_drift_exits_0_without_drift_and_2_on_bad_input(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference, current = _frames(tmp_path, shift=0.0)

    calm = invoke("drift", "--reference", str(reference), "--current", str(current))
    missing = invoke(
        "drift", "--reference", str(tmp_path / "no.parquet"), "--current", str(current)
    )
    column = invoke(
        "drift", "--reference", str(reference), "--current", str(current), "--columns", "zz"
    )

    assert calm.exit_code == 0, calm.output
    assert "no dataset drift: 0 of 2 features drifted" in calm.stdout
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert column.exit_code == 2 and "'zz' not in the reference" in column.stderr
    assert "Traceback" not in missing.output + column.output


def test_schedules_create_list_run_now_and_executions(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference, current = _frames(tmp_path, shift=1.0)

    created = invoke(
        "schedules", "create", "nightly", "--type", "data-drift",
        "--schedule", "cron(0 0/6 ? * * *)", "--current", str(current),
        "--baseline", str(reference),
    )  # fmt: skip
    bad = invoke(
        "schedules", "create", "x", "--type", "data-drift", "--schedule", "cron(0 */6 ? * * *)",
        "--current", str(current), "--baseline", str(reference),
    )  # fmt: skip
    ran = invoke("schedules", "run-now", "nightly")
    listed = invoke("schedules", "list")
    history = invoke("schedules", "executions", "nightly")

    assert created.exit_code == 0, created.output
    assert bad.exit_code == 2 and "is not supported" in bad.stderr
    assert ran.exit_code == 1 and "CompletedWithViolations nightly" in ran.stdout
    assert "drifted: ['amount']" in ran.stdout and "report.html: file://" in ran.stdout
    assert listed.exit_code == 0 and "nightly" in listed.stdout and "0/6" in listed.stdout
    assert history.exit_code == 0 and "/reports/monitor/nightly/" in history.stdout
    assert invoke("schedules", "run-now", "nope").exit_code == 2


def test_monitor_schedule_run_and_reports_are_the_schedules_commands(
    invoke, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    reference, current = _frames(tmp_path, shift=1.0)

    created = invoke(
        "schedule", "six-hourly", "--type", "data-drift", "--schedule", "cron(0 0/6 ? * * *)",
        "--current", str(current), "--baseline", str(reference),
    )  # fmt: skip
    ran = invoke("run", "six-hourly")
    reports = invoke("reports", "six-hourly")

    assert created.exit_code == 0 and "schedule six-hourly" in created.stdout, created.output
    assert ran.exit_code == 1 and "CompletedWithViolations six-hourly" in ran.stdout
    assert reports.exit_code == 0 and "/reports/monitor/six-hourly/" in reports.stdout
    assert invoke("run", "nope").exit_code == 2
