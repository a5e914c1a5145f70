"""The demo's drift scene: the generator shifts its distribution, the drift monitor notices.

With data capture on, drifted events go to the endpoint; the endpoint's monitoring schedule
(the same one `shipyard server` runs on its cron, here run on demand) tests the captured
requests against a baseline of the curated training data, and writes the HTML report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import polars as pl

from shipyard.core.errors import NotFoundError, StageFailed
from shipyard.monitor import DATA_DRIFT, Execution, MonitoringSchedule
from shipyard.monitor.captured import INFERENCE_TIME
from shipyard.pipeline.narration import Narrator, Stage, StageReport
from shipyard.pipeline.workspace import Workspace
from shipyard.scenarios.fraud import FraudScenario
from shipyard.serve import DataCaptureConfig, EndpointConfig

# Drifted on purpose (the generator's knobs), then a few left alone to show a clean verdict.
DRIFT = {"amount": 4.0, "merchant_category": 3.0, "channel": 3.0, "device_trust_score": 0.6}
STEADY = ("country", "card_age_days", "txn_count_24h")
BASELINE_ROWS = 20_000
EVENTS_PER_REQUEST = 50


@dataclass(frozen=True)
class DriftScene:
    """What the drift monitor said about the shifted traffic, and where its report is."""

    execution: Execution
    columns: list[dict[str, Any]]  # per feature, as in drift_report.json
    report_uri: str

    @property
    def drifted(self) -> list[str]:
        return [c["name"] for c in self.columns if c["drift_detected"]]


def drift_scene(
    ws: Workspace,
    narrator: Narrator,
    reports: list[StageReport],
    url: str,
    endpoint: str,
    *,
    curated: pl.DataFrame,
    seed: int,
    events: int = 2_000,
) -> DriftScene:
    """Send ``events`` drifted events to ``endpoint`` (captured), then run its drift monitor."""
    with Stage(narrator, reports, "drift") as stage:
        baseline = _baseline(ws, endpoint, curated, seed)
        _capture_all(ws, endpoint)
        shift = ", ".join(f"{name} x{factor:g}" for name, factor in DRIFT.items())
        narrator.say(f"the generator shifts its distribution ({shift}); data capture is on")
        _send_drifted(url, endpoint, events, seed)
        ws.endpoints.capture.flush()
        execution = ws.monitoring.run_now(_schedule(ws, endpoint, baseline).name)
        if execution.failure_reason is not None or execution.report_uri is None:
            raise StageFailed(f"drift: the monitoring job failed: {execution.failure_reason}")
        document = json.loads(
            ws.store.get_bytes(ws.store.key_of(execution.outputs["drift_report.json"]))
        )
        scene = DriftScene(execution, document["columns"], execution.report_uri)
        for line in verdict_table(scene.columns):
            narrator.say(line)
        narrator.say(f"drift report: {scene.report_uri}")
        stage.done(
            f"{len(scene.drifted)} of {len(scene.columns)} features drifted in "
            f"{execution.summary.get('current_rows', 0):,} captured events "
            f"({', '.join(scene.drifted) or 'none'}); {execution.status}",
            drifted=scene.drifted,
        )
    return scene


def verdict_table(columns: list[dict[str, Any]]) -> list[str]:
    """Per feature: the test, its raw statistic beside the threshold, and the verdict."""
    lines = [f"{'feature':<20} {'test':<34} {'statistic':>10} {'threshold':>10}  verdict"]
    for c in columns:
        statistic = "n/a" if c["statistic"] is None else f"{c['statistic']:.4g}"
        verdict = "DRIFT" if c["drift_detected"] else "ok"
        lines.append(
            f"{c['name']:<20} {c['method_label'][:34]:<34} {statistic:>10} "
            f"{c['threshold']:>10g}  {verdict}"
        )
    return lines


def _baseline(ws: Workspace, endpoint: str, curated: pl.DataFrame, seed: int) -> str:
    """A sample of the curated training data, in the store: what live traffic is held to."""
    columns = [*DRIFT, *STEADY]
    sample = curated.select(columns)
    if sample.height > BASELINE_ROWS:
        sample = sample.sample(BASELINE_ROWS, seed=seed)
    key = f"baselines/{endpoint}/drift-reference.parquet"
    ws.store.put_parquet(key, sample)
    return ws.store.url(key)


def _capture_all(ws: Workspace, endpoint: str) -> None:
    """Serve the same variants with every request captured (JSON kept readable)."""
    current = ws.endpoints.describe(endpoint)
    config = EndpointConfig(
        f"{endpoint}-captured-{time.time_ns()}",
        tuple(current.variants),
        data_capture=DataCaptureConfig(100.0, json_content_types=("application/json",)),
    )
    ws.endpoints.create_endpoint_config(config, actor="demo")
    ws.endpoints.update_endpoint(
        endpoint, config_name=config.name, actor="demo", reason="demo: capture live traffic"
    )


def _send_drifted(url: str, endpoint: str, events: int, seed: int) -> None:
    scenario = FraudScenario(seed=seed + 1, drift=DRIFT, start=datetime.now(UTC))
    frame = pl.from_arrow(scenario.generate(events).events)
    assert isinstance(frame, pl.DataFrame)
    invoke = f"{url}/endpoints/{endpoint}/invocations"
    with httpx.Client(timeout=30) as http:
        for start in range(0, frame.height, EVENTS_PER_REQUEST):
            body = orjson.dumps(frame.slice(start, EVENTS_PER_REQUEST).to_dicts())
            answer = http.post(invoke, content=body, headers={"Content-Type": "application/json"})
            if answer.status_code != 200:
                raise StageFailed(
                    f"drift: the endpoint answered {answer.status_code}: {answer.text}"
                )


def _schedule(ws: Workspace, endpoint: str, baseline: str) -> MonitoringSchedule:
    """The endpoint's hourly drift schedule over the last hour's captured requests (kept from
    an earlier demo in the same home; `shipyard server` runs it on its cron)."""
    name = f"{endpoint}-drift"
    try:
        return ws.monitoring.get(name)
    except NotFoundError:
        pass
    return ws.monitoring.create(
        MonitoringSchedule(
            name=name,
            monitoring_type=DATA_DRIFT,
            schedule_expression="cron(0 * ? * * *)",
            current=f"capture:{endpoint}",
            baseline=baseline,
            endpoint=endpoint,
            columns=(*DRIFT, *STEADY),
            window_hours=1.0,
            time_column=INFERENCE_TIME,
        ),
        actor="demo",
    )
