from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa

from shipyard.core.errors import InvalidRequestError, NotFoundError, StateError
from shipyard.monitor import (
    DATA_DRIFT,
    MODEL_QUALITY,
    MetricsStore,
    MonitoringSchedule,
    MonitoringScheduler,
    ScheduleExpression,
    suggest_constraints,
)
from shipyard.scenarios.fraud import FraudScenario
from shipyard.storage import MetadataStore, ObjectStore
from shipyard.storage.schema import runs

DAY1 = datetime(2026, 11, 3, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
FEATURES = ("amount", "channel", "merchant_risk_score", "card_age_days")


def _at(hour: int, minute: int = 0) -> datetime:
    return DAY2.replace(hour=hour, minute=minute)


def test_expressions_are_sagemakers_forms_plus_rate() -> None:
    every_6h = ScheduleExpression.parse("cron(0 0/6 ? * * *)")
    assert every_6h.hours == (0, 6, 12, 18)
    assert every_6h.latest_due(_at(13, 20), since=DAY1) == _at(12)
    assert every_6h.latest_due(_at(13, 20), since=_at(12, 30)) is None
    assert ScheduleExpression.parse("cron(0 * ? * * *)").latest_due(_at(0, 5), DAY1) == _at(0)
    daily = ScheduleExpression.parse("cron(0 17 ? * * *)")
    assert daily.latest_due(_at(9), since=DAY1) == DAY1.replace(hour=17)
    rate = ScheduleExpression.parse("rate(90 minutes)")
    assert rate.latest_due(_at(4, 0), since=_at(0)) == _at(3)
    assert rate.latest_due(_at(1, 0), since=_at(0)) is None
    assert ScheduleExpression.parse("NOW").latest_due(_at(5), since=_at(4)) == _at(4)
    for bad in ("cron(0 */6 ? * * *)", "cron(5 * ? * * *)", "cron(0 25 ? * * *)", "rate(0 hours)"):
        with pytest.raises(InvalidRequestError, match="not supported"):
            ScheduleExpression.parse(bad)


def _fraud_files(folder: Path) -> tuple[Path, Path]:
    """A day of events as the reference; captured traffic whose amounts triple from 12:00.

    Each window of the current data holds a whole day of events (captured_at spreads them
    over its six hours), so only the drift differs from the reference, not the time of day.
    """
    rows = 10_000
    calm = pl.from_arrow(FraudScenario(seed=5, events_per_day=rows).generate(2 * rows).events)
    drifted = FraudScenario(seed=6, events_per_day=rows, drift={"amount": 3.0}).generate(rows)
    hot = pl.from_arrow(drifted.events)
    assert isinstance(calm, pl.DataFrame) and isinstance(hot, pl.DataFrame)
    step = timedelta(hours=6) / rows
    morning = calm.tail(rows).with_columns(
        captured_at=pl.datetime_range(_at(6), _at(12) - step, step, eager=True)
    )
    afternoon = hot.with_columns(
        captured_at=pl.datetime_range(_at(12), _at(18) - step, step, eager=True)
    )
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    calm.head(rows).write_parquet(reference)
    pl.concat([morning, afternoon]).write_parquet(current)
    return reference, current


@pytest.fixture
def opened() -> Iterator[list[MetadataStore]]:
    """Metadata stores a test opens, closed at its end (PostgreSQL would warn otherwise)."""
    stores: list[MetadataStore] = []
    yield stores
    for store in stores:
        store.dispose()


def _scheduler(
    url: str,
    tmp_path: Path,
    clock: list[datetime],
    metrics: MetricsStore,
    opened: list[MetadataStore],
) -> MonitoringScheduler:
    opened.append(MetadataStore(url))
    return MonitoringScheduler(
        opened[-1],
        ObjectStore(f"file://{tmp_path / 'objects'}"),
        publish=metrics.put,
        clock=lambda: clock[0],
    )


def _latest(metrics: MetricsStore, metric: str, endpoint: str) -> float | None:
    now = time.time()
    return metrics.query(
        metric, "Maximum", endpoint=endpoint, variant=None, start_s=now - 60, end_s=now + 1
    )


def _drift_schedule(reference: Path, current: Path) -> MonitoringSchedule:
    return MonitoringSchedule(
        name="fraud-drift",
        monitoring_type=DATA_DRIFT,
        schedule_expression="cron(0 0/6 ? * * *)",
        current=str(current),
        baseline=str(reference),
        endpoint="fraud-detector",
        window_hours=6,
        time_column="captured_at",
        columns=FEATURES,
        created_at=_at(1, 30).isoformat(),
    )


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_drift_schedule_runs_each_due_time_once_over_its_window(
    database: str, tmp_path: Path, request: pytest.FixtureRequest, opened: list[MetadataStore]
) -> None:
    url = (
        request.getfixturevalue("postgres_url")
        if database == "postgres"
        else f"sqlite:///{tmp_path / 'meta.db'}"
    )
    reference, current = _fraud_files(tmp_path)
    clock, metrics = [_at(12, 10)], MetricsStore()
    scheduler = _scheduler(url, tmp_path, clock, metrics, opened)
    scheduler.create(_drift_schedule(reference, current))
    with pytest.raises(StateError, match="already exists"):
        scheduler.create(_drift_schedule(reference, current))

    [before] = scheduler.run_due()  # 12:00 covers 06:00-12:00: before the drift
    assert scheduler.run_due() == []  # that time has run
    clock[0] = _at(18, 2)
    [after] = scheduler.run_due()  # 18:00 covers 12:00-18:00: amounts tripled

    assert (before.scheduled_time, before.status) == (_at(12).isoformat(), "Completed")
    assert (after.status, after.violations) == ("CompletedWithViolations", 1)
    assert after.summary["drifted"] == ["amount"] and after.summary["current_rows"] == 10_000
    assert [e.run_id for e in scheduler.executions("fraud-drift")] == [after.run_id, before.run_id]
    violations = json.loads(_local(after.outputs["constraint_violations.json"]).read_text())
    assert violations["violations"][0]["constraint_check_type"] == "baseline_drift_check"
    assert _local(after.report_uri or "").read_text().startswith("<!doctype html>")
    assert _latest(metrics, "monitor_violations", "fraud-detector") == 1.0
    assert (_latest(metrics, "feature_baseline_drift_amount", "fraud-detector") or 0) > 0.1
    with scheduler.meta.reading() as connection:
        statuses = connection.execute(sa.select(runs.c.status).where(runs.c.kind == "monitor"))
        assert sorted(s for (s,) in statuses) == ["Completed", "CompletedWithViolations"]


def test_a_failing_job_is_recorded_as_failed_and_deleted_schedules_vanish(
    tmp_path: Path, opened: list[MetadataStore]
) -> None:
    clock, metrics = [_at(3)], MetricsStore()
    scheduler = _scheduler(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, clock, metrics, opened)
    scheduler.create(
        MonitoringSchedule(
            name="broken",
            monitoring_type=DATA_DRIFT,
            schedule_expression="NOW",
            current=str(tmp_path / "nowhere.parquet"),
            baseline=str(tmp_path / "x.parquet"),
        )  # fmt: skip
    )

    execution = scheduler.run_now("broken")

    assert execution.status == "Failed" and "does not exist" in (execution.failure_reason or "")
    assert scheduler.executions("broken")[0].status == "Failed"
    assert metrics.endpoints() == []  # a failed job publishes nothing
    scheduler.delete("broken")
    assert scheduler.schedules() == []
    with pytest.raises(NotFoundError, match="no monitoring schedule 'broken'"):
        scheduler.run_now("broken")
    with pytest.raises(InvalidRequestError, match="needs labels"):
        scheduler.create(MonitoringSchedule("q", MODEL_QUALITY, "NOW", current="p", baseline="c"))


def test_a_model_quality_schedule_checks_late_labels_against_constraints(
    tmp_path: Path, opened: list[MetadataStore]
) -> None:
    rng = np.random.default_rng(1)
    n = 3000
    labels = (rng.random(n) < 0.1).astype(np.int8)
    ids = [f"evt-{i}" for i in range(n)]
    times = [(DAY2 + timedelta(seconds=20 * i)).isoformat() for i in range(n)]
    weak = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 0.5 * labels - 2)))
    pl.DataFrame({"event_id": ids, "score": weak, "event_time": times}).write_parquet(
        tmp_path / "predictions.parquet"
    )
    pl.DataFrame({"event_id": ids[: n // 2], "is_fraud": labels[: n // 2]}).write_parquet(
        tmp_path / "labels.parquet"
    )
    # What the model scored on its holdout; the served one has lost most of its signal.
    constraints = suggest_constraints(
        {"auc_pr": 0.8, "auc_roc": 0.95, "brier": 0.05}, tolerance=0.1
    )
    (tmp_path / "constraints.json").write_text(json.dumps(constraints))
    clock, metrics = [_at(23)], MetricsStore()
    scheduler = _scheduler(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, clock, metrics, opened)
    scheduler.create(
        MonitoringSchedule(
            name="fraud-quality",
            monitoring_type=MODEL_QUALITY,
            schedule_expression="NOW",
            current=str(tmp_path / "predictions.parquet"),
            labels=str(tmp_path / "labels.parquet"),
            baseline=str(tmp_path / "constraints.json"),
        )  # fmt: skip
    )

    [execution] = scheduler.run_due()

    assert execution.status == "CompletedWithViolations"
    assert execution.summary["labelled"] == n // 2 and execution.summary["pending_labels"] == n // 2
    assert {"auc_pr", "auc_roc"} <= set(execution.summary["violated"])
    statistics = json.loads(_local(execution.outputs["statistics.json"]).read_text())
    assert statistics["dataset"]["item_count"] == n // 2
    assert _latest(metrics, "monitor_violations", "fraud-quality") == execution.violations
    assert _latest(metrics, "auc_pr", "fraud-quality") is not None


def _local(url: str) -> Path:
    return Path(url.removeprefix("file://"))


def test_the_background_scheduler_runs_a_due_time_once_however_often_it_polls(
    tmp_path: Path, opened: list[MetadataStore]
) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    scheduler = _scheduler(url, tmp_path, [_at(3)], MetricsStore(), opened)
    scheduler.create(
        MonitoringSchedule(
            name="once",
            monitoring_type=DATA_DRIFT,
            schedule_expression="NOW",
            current=str(tmp_path / "none.parquet"),
            baseline=str(tmp_path / "none.parquet"),
        )  # fmt: skip
    )

    scheduler.start(poll_s=0.01)
    try:
        deadline = time.monotonic() + 10
        while not scheduler.executions("once") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # many more polls
    finally:
        scheduler.stop()

    assert [e.status for e in scheduler.executions("once")] == ["Failed"]
