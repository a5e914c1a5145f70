"""The whole loop at small size: generate -> ... -> faulty version -> alarm -> rollback."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from shipyard.core.config import Settings
from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.pipeline.demo import ENDPOINT, GROUP, run_demo
from shipyard.pipeline.demo_drift import DRIFT, STEADY
from shipyard.pipeline.narration import QuietNarrator
from shipyard.registry import APPROVED, REJECTED
from shipyard.storage import list_events


def test_demo_catches_the_faulty_version_and_state_lasts(settings: Settings) -> None:
    workspace = Workspace.open(settings)
    narrator = QuietNarrator()
    try:
        report = run_demo(workspace, narrator, events=60_000, seed=11, traffic_seconds=1.0)
    finally:
        workspace.close()

    names = [stage.name for stage in report.stages]
    assert names == [
        "generate", "ingest", "land", "validate", "train", "register", "deploy", "serve",
        "register faulty", "fault drill", "drift", "register slow", "canary",
    ]  # fmt: skip
    assert report.good == ModelRef(GROUP, 1)
    assert report.faulty == ModelRef(GROUP, 2)
    drill = report.drill
    assert drill is not None
    assert 0 < drill.fault_to_detection_s <= drill.fault_to_rollback_s < 10
    assert drill.traffic.lost == 0
    assert drill.traffic.model_errors > 0  # the faulty version really failed requests

    drift = report.drift
    assert drift is not None
    assert set(drift.drifted) == set(DRIFT)  # the shifted features, and only those
    assert {c["name"] for c in drift.columns} == {*DRIFT, *STEADY}
    assert all(c["statistic"] is not None for c in drift.columns)
    assert drift.execution.status == "CompletedWithViolations"
    assert "DRIFT" in Path(drift.report_uri.removeprefix("file://")).read_text()
    assert any(line.startswith("amount ") and line.endswith("DRIFT") for line in narrator.lines)

    canary = report.canary  # the latency regression's canary, rolled back by its p99 alarm
    assert canary is not None and canary.slow == ModelRef(GROUP, 3)
    assert "canary-p99-latency in ALARM" in canary.alarm_reason
    assert canary.traffic.sent > 0 and canary.traffic.ok == canary.traffic.sent

    validate = next(s for s in report.stages if s.name == "validate")
    assert validate.details["valid"] + validate.details["quarantined"] == 60_000
    assert validate.details["quarantined"] > 0

    # State lasts: a new workspace (as `shipyard server` would open) serves version 1.
    reopened = Workspace.open(settings)
    try:
        assert reopened.registry.alias_version(GROUP, "production") == 1
        assert reopened.registry.get(GROUP, 1).approval_status == APPROVED
        assert reopened.registry.get(GROUP, 2).approval_status == REJECTED
        history = list_events(reopened.meta, entity_kind="endpoint", entity_id=ENDPOINT)
        assert any(
            "rollback from fraud-detector@2 to fraud-detector@1" in e["reason"] for e in history
        )
        datasets = list_events(reopened.meta, entity_kind="dataset")
        assert {e["to_state"] for e in datasets} == {"landing", "curated", "quarantine", "labels"}
        with BackgroundServer(reopened) as server:
            event = {
                "event_id": "evt-0000000000000001", "event_time": "2026-11-01T10:00:00.000Z",
                "card_id": "card-0000001", "amount": 42.0, "currency": "USD",
                "merchant_id": "m-00001", "merchant_category": "5411", "country": "US",
                "channel": "pos", "card_age_days": 400, "txn_count_1h": 1, "txn_count_24h": 3,
                "avg_amount_30d": 50.0, "distance_from_home_km": 2.0, "is_foreign": False,
                "device_trust_score": 0.9, "hour_of_day": 10, "is_weekend": False,
                "merchant_risk_score": 0.1, "prev_chargebacks": 0, "account_balance": 1200.0,
            }  # fmt: skip
            answer = httpx.post(
                f"{server.url}/endpoints/{ENDPOINT}/invocations", content=orjson.dumps(event)
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Shipyard-Model-Version"] == "fraud-detector@1"
    finally:
        reopened.close()
