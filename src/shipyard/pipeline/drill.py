"""Serving stages of the demo: live traffic, the skew check, and the fault drill."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from shipyard.core.errors import StageFailed
from shipyard.core.types import ModelRef
from shipyard.monitor import ALARM, RollbackOutcome
from shipyard.pipeline.narration import Narrator, Stage, StageReport
from shipyard.pipeline.traffic import TrafficGenerator, TrafficReport
from shipyard.pipeline.workspace import Workspace, error_rate_alarm
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult


@dataclass(frozen=True)
class DrillResult:
    """How fast a faulty version was caught and undone, and what the callers saw."""

    fault_to_detection_s: float
    fault_to_rollback_s: float
    traffic: TrafficReport


def raw_event_lines(events: pa.Table, event_ids: pl.Series, limit: int = 5000) -> list[bytes]:
    """Events exactly as the stream carried them (raw JSON, no label), for ``event_ids``."""
    frame = pl.from_arrow(events)
    assert isinstance(frame, pl.DataFrame)
    sample = frame.join(event_ids.head(limit).to_frame(), on="event_id", how="semi")
    return [orjson.dumps(row) for row in sample.iter_rows(named=True)]


def check_skew(url: str, endpoint: str, result: TrainResult, rows: int = 500) -> float:
    """Score holdout events over HTTP (JSON and CSV); fail unless they match training's scores."""
    holdout = result.holdout_events.head(rows)
    expected = result.holdout_scores[:rows]
    raw = holdout.with_columns(pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")).drop(
        [c for c in holdout.columns if c.startswith("_") or c == "is_fraud"]
    )
    invoke = f"{url}/endpoints/{endpoint}/invocations"
    signature = list(result.contents.prep.input_types)
    requests = {
        "JSON": (orjson.dumps(raw.to_dicts()), "application/json"),
        "CSV": (raw.select(signature).write_csv(include_header=False).encode(), "text/csv"),
    }
    worst = 0.0
    for name, (body, content_type) in requests.items():
        answer = httpx.post(
            invoke,
            content=body,
            headers={"Content-Type": content_type, "Accept": "text/csv"},
            timeout=30,
        )
        if answer.status_code != 200:
            raise StageFailed(f"serve: {name} scoring answered {answer.status_code}: {answer.text}")
        scores = np.array(answer.text.split(), dtype=np.float64)
        worst = max(worst, float(np.abs(scores - expected).max()))
    if worst > 1e-5:
        raise StageFailed(f"serve: endpoint scores differ from training by up to {worst:.2e}")
    return worst


def serve_traffic(
    narrator: Narrator,
    reports: list[StageReport],
    url: str,
    endpoint: str,
    result: TrainResult,
    bodies: list[bytes],
    *,
    seconds: float,
    concurrency: int,
) -> TrafficReport:
    """Ping, check training/serving skew, then send live traffic for ``seconds``."""
    with Stage(narrator, reports, "serve") as stage:
        ping = httpx.get(f"{url}/ping", timeout=5)
        if ping.status_code != 200:
            raise StageFailed(f"serve: GET /ping answered {ping.status_code}")
        mismatch = check_skew(url, endpoint, result)
        narrator.say(
            "training/serving skew check: 500 holdout events scored over HTTP (JSON and CSV) "
            f"match the trainer's scores (max difference {mismatch:.1e})"
        )
        traffic = TrafficGenerator(url, endpoint, bodies, concurrency=concurrency).start()
        time.sleep(seconds)
        seen = traffic.stop()
        if seen.ok != seen.sent:
            raise StageFailed(f"serve: {seen.sent - seen.ok} of {seen.sent} requests failed")
        stage.done(
            f"{seen.sent:,} requests in {seconds:.0f}s ({seen.sent / seconds:,.0f}/s), "
            f"{seen.ok:,} OK, p50 {seen.latency_ms(0.5):.1f} ms, "
            f"p99 {seen.latency_ms(0.99):.1f} ms",
            requests=seen.sent,
        )
    return seen


def fault_drill(
    ws: Workspace,
    narrator: Narrator,
    reports: list[StageReport],
    url: str,
    endpoint: str,
    variant: str,
    *,
    good: ModelRef,
    faulty: ModelRef,
    bodies: list[bytes],
    concurrency: int,
    fault_note: str = "a deliberately faulty version",
) -> DrillResult:
    """Deploy ``faulty`` under live traffic and wait for the alarm to roll back to ``good``."""
    with Stage(narrator, reports, "fault drill") as stage:
        alarm = error_rate_alarm(endpoint)
        narrator.say(
            f"alarm {alarm.name}: {alarm.statistic} of {alarm.metric} > {alarm.threshold:.0%} "
            f"in {alarm.m} of {alarm.evaluation_periods} periods of {alarm.period_s} s "
            "-> roll back to the previous Approved version"
        )
        already = len(ws.rollback_log)
        traffic = TrafficGenerator(url, endpoint, bodies, concurrency=concurrency).start()
        time.sleep(1.0)
        fault_at = time.time()
        ws.endpoints.update_endpoint(
            endpoint,
            [VariantSpec(variant, faulty, 1.0)],
            actor="demo",
            reason=f"deploy {faulty} (drill: deliberately faulty)",
        )
        narrator.say(f"deployed {faulty}: {fault_note}")
        deadline = time.time() + 30
        while not (done := _rollbacks_since(ws, already)) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # keep the traffic going to show the good version answering again
        seen = traffic.stop()
        if not done:
            raise StageFailed("fault drill: no rollback within 30 s of the fault")
        outcome = done[0]
        alarm_at = next(
            t.at_s
            for t in ws.alarms.history
            if t.alarm == alarm.name and t.to_state == ALARM and t.at_s >= fault_at
        )
        _check_drill(ws, endpoint, variant, good, seen, outcome.at_s)
        window = seen.between(fault_at, outcome.at_s)
        after = seen.between(outcome.at_s, float("inf"))
        result = DrillResult(alarm_at - fault_at, outcome.at_s - fault_at, seen)
        narrator.say(
            f"ALARM after {result.fault_to_detection_s:.1f} s; rolled back {outcome.from_ref} -> "
            f"{outcome.to_ref} after {result.fault_to_rollback_s:.1f} s (the switch itself took "
            f"{outcome.seconds * 1000:.0f} ms)"
        )
        narrator.say(
            f"{seen.sent:,} requests during the drill: {seen.ok:,} OK, {seen.model_errors:,} "
            f"ModelError answers ({window.model_errors:,} of the {window.sent:,} requests sent "
            f"while {faulty} served), {seen.lost} lost; all {after.sent:,} requests after "
            f"the rollback served by {good}"
        )
        stage.done(
            f"{faulty} caught in {result.fault_to_detection_s:.1f} s, rolled back to {good} in "
            f"{result.fault_to_rollback_s:.1f} s, 0 requests lost",
            detection_s=result.fault_to_detection_s,
            rollback_s=result.fault_to_rollback_s,
        )
    return result


def _rollbacks_since(ws: Workspace, already: int) -> list[RollbackOutcome]:
    return [o for o in list(ws.rollback_log)[already:] if o.to_ref is not None]


def _check_drill(
    ws: Workspace,
    endpoint: str,
    variant: str,
    good: ModelRef,
    seen: TrafficReport,
    rolled_back_at: float,
) -> None:
    serving = ws.endpoints.serving_versions(endpoint)
    if serving.get(variant) != good:
        raise StageFailed(f"fault drill: endpoint serves {serving}, expected {good}")
    after = seen.between(rolled_back_at, float("inf"))
    if after.sent == 0 or any(
        o.status != 200 or o.model_version != str(good) for o in after.outcomes
    ):
        raise StageFailed(f"fault drill: not every request after the rollback was served by {good}")
    if seen.lost:
        raise StageFailed(f"fault drill: {seen.lost} requests got no answer")
