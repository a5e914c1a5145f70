"""Data capture over real HTTP: SageMaker's JSONL format, sampling, and no card_id in clear."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import httpx
import orjson
import pytest

from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.train import TrainResult
from tests.serve.conftest import register


def _deploy(client: httpx.Client, ref: str, percentage: float, **capture: object) -> None:
    config = {
        "EndpointConfigName": "cap",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": ref}],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": percentage,
            "DestinationS3Uri": "capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            **capture,
        },
    }
    assert client.post("/api/v1/endpoint-configs", json=config).status_code == 201
    made = client.post(
        "/api/v1/endpoints", json={"EndpointName": "ep", "EndpointConfigName": "cap"}
    )
    assert made.json()["EndpointStatus"] == "InService", made.text


def _records(workspace: Workspace) -> list[tuple[str, dict[str, object]]]:
    workspace.endpoints.capture.flush()
    keys = workspace.store.list_keys("capture/ep/AllTraffic", ".jsonl")
    return [
        (key, orjson.loads(line))
        for key in keys
        for line in workspace.store.get_bytes(key).splitlines()
    ]


def test_capture_format_and_sensitive_fields(workspace: Workspace, trained: TrainResult) -> None:
    ref = register(workspace, trained.contents)
    events = trained.holdout_events.head(30).drop("is_fraud").to_dicts()
    cards = {e["card_id"] for e in events}
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        _deploy(
            client, str(ref), 100,
            CaptureContentTypeHeader={"JsonContentTypes": ["application/json"]},
        )  # fmt: skip
        for event in events[:20]:
            answer = client.post(
                "/endpoints/ep/invocations",
                content=orjson.dumps(event),
                headers={"Content-Type": "application/json", "X-Amzn-SageMaker-Inference-Id": "i1"},
            )
            assert answer.status_code == 200
        # A content type not declared as JSON or CSV is captured base64, redacted first.
        lines = b"\n".join(orjson.dumps(e) for e in events[20:])
        client.post(
            "/endpoints/ep/invocations",
            content=lines,
            headers={"Content-Type": "application/jsonlines"},
        )
        records = _records(workspace)
    assert len(records) == 21
    key, first = records[0]
    assert re.fullmatch(r"capture/ep/AllTraffic/\d{4}/\d\d/\d\d/\d\d/[^/]+\.jsonl", key)
    assert first["eventVersion"] == "0"
    meta = first["eventMetadata"]
    assert isinstance(meta, dict) and meta["inferenceTime"].endswith("Z")
    assert meta["inferenceId"] == "i1" and len(meta["eventId"]) == 36
    data = first["captureData"]
    assert isinstance(data, dict)
    entry, answer = data["endpointInput"], data["endpointOutput"]
    assert entry["mode"] == "INPUT" and entry["encoding"] == "JSON"
    assert entry["observedContentType"] == "application/json"
    captured = orjson.loads(entry["data"])
    assert captured["amount"] == events[0]["amount"]
    assert captured["card_id"].startswith("sha256:") and captured["card_id"] != events[0]["card_id"]
    assert answer["mode"] == "OUTPUT" and answer["encoding"] == "JSON"
    assert "fraud_probability" in answer["data"]
    every = b""
    for _, record in records:
        sections = record["captureData"]
        assert isinstance(sections, dict)
        for section in sections.values():
            text = section["data"]
            every += base64.b64decode(text) if section["encoding"] == "BASE64" else text.encode()
    assert b"sha256:" in every
    assert not any(card.encode() in every for card in cards)


def test_sampling_percentage_within_tolerance(workspace: Workspace, trained: TrainResult) -> None:
    ref = register(workspace, trained.contents)
    body = orjson.dumps(trained.holdout_events.head(1).drop("is_fraud").to_dicts()[0])
    sent = 600
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        _deploy(client, str(ref), 25)
        for _ in range(sent):
            assert client.post("/endpoints/ep/invocations", content=body).status_code == 200
        records = _records(workspace)
        described = client.get("/api/v1/endpoints/ep").json()["DataCaptureConfig"]
    # Binomial(600, 0.25): mean 150, sd ~10.6; 5 sd either way.
    assert 97 <= len(records) <= 203
    assert described["CaptureStatus"] == "Started"
    assert described["Variants"]["AllTraffic"]["Captured"] == len(records)
    assert described["Variants"]["AllTraffic"]["Dropped"] == 0


def test_full_capture_queue_drops_and_counts(workspace: Workspace) -> None:
    from shipyard.serve import CapturePolicy, DataCaptureConfig
    from shipyard.serve.capture import CaptureItem, CaptureWriter

    writer = CaptureWriter(workspace.store, CapturePolicy(queue_records=1, flush_age_s=60))
    config = DataCaptureConfig(100)

    def item(n: int) -> CaptureItem:
        return CaptureItem("ep", "v", config, 0.0, str(n), b"{}", "application/json", (), None)

    writer._start()
    with writer._lock:  # hold the writer so the queue fills
        outcomes = [writer.offer(item(n)) for n in range(50)]
    writer.close()
    assert outcomes.count(False) >= 1
    assert writer.stats[("ep", "v")].dropped == outcomes.count(False)
    assert writer.stats[("ep", "v")].captured == outcomes.count(True)


@pytest.mark.parametrize("percentage", [0])
def test_zero_percent_captures_nothing(
    workspace: Workspace, trained: TrainResult, percentage: float
) -> None:
    ref = register(workspace, trained.contents)
    body = orjson.dumps(trained.holdout_events.head(1).drop("is_fraud").to_dicts()[0])
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        _deploy(client, str(ref), percentage)
        for _ in range(20):
            client.post("/endpoints/ep/invocations", content=body)
        assert _records(workspace) == []


def test_writer_drains_on_its_own_and_writes_whole_files(workspace: Workspace) -> None:
    from shipyard.serve import CapturePolicy, DataCaptureConfig
    from shipyard.serve.capture import CaptureItem, CaptureWriter

    policy = CapturePolicy(
        sensitive_fields=frozenset({"card_id"}), salt=b"s", drain_s=0.02, flush_age_s=0.1
    )
    writer = CaptureWriter(workspace.store, policy)
    config = DataCaptureConfig(100, json_content_types=("application/json",))
    at_s = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z
    for n in range(40):
        body = orjson.dumps({"card_id": f"card-{n}", "amount": n})
        item = CaptureItem("ep", "v", config, at_s + n, str(n), body, "application/json", (), None)
        assert writer.offer(item)
    deadline = time.monotonic() + 5
    records: list[dict[str, Any]] = []
    while len(records) < 40:  # no flush(): the writer's own tick writes them
        assert time.monotonic() < deadline, writer.counters("ep", "v")
        time.sleep(0.02)
        keys = workspace.store.list_keys("capture/ep/v/2023/11/14/22", ".jsonl")
        lines = b"\n".join(workspace.store.get_bytes(k) for k in keys).splitlines()
        records = sorted(
            (orjson.loads(line) for line in lines), key=lambda r: int(r["eventMetadata"]["eventId"])
        )
    writer.close()
    assert [r["eventMetadata"]["eventId"] for r in records] == [str(n) for n in range(40)]
    assert records[0]["eventMetadata"]["inferenceTime"] == "2023-11-14T22:13:20.250Z"
    assert records[39]["eventMetadata"]["inferenceTime"] == "2023-11-14T22:13:59.250Z"
    for n, record in enumerate(records):
        data = orjson.loads(record["captureData"]["endpointInput"]["data"])
        assert data["amount"] == n and data["card_id"] == writer.hash(f"card-{n}")


def test_hour_folders_follow_each_record_time(workspace: Workspace) -> None:
    from shipyard.serve import CapturePolicy, DataCaptureConfig
    from shipyard.serve.capture import CaptureItem, CaptureWriter

    writer = CaptureWriter(workspace.store, CapturePolicy(flush_age_s=60))
    config = DataCaptureConfig(100)
    for n, at_s in enumerate((1_700_002_799.75, 1_700_002_800.0, 1_700_002_799.5)):
        writer.offer(CaptureItem("ep", "v", config, at_s, str(n), b"{}", None, (), None))
    writer.flush()
    writer.close()
    folders = sorted(k.rsplit("/", 1)[0] for k in workspace.store.list_keys("capture/ep/v", ""))
    assert folders == ["capture/ep/v/2023/11/14/22", "capture/ep/v/2023/11/14/23"]
    late = workspace.store.list_keys("capture/ep/v/2023/11/14/22", "")
    times = sorted(
        orjson.loads(line)["eventMetadata"]["inferenceTime"]
        for line in workspace.store.get_bytes(late[0]).splitlines()
    )
    assert times == ["2023-11-14T22:59:59.500Z", "2023-11-14T22:59:59.750Z"]


def test_event_ids_are_distinct_version_4_uuids() -> None:
    import uuid

    from shipyard.serve.capture import new_event_id

    ids = [new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
