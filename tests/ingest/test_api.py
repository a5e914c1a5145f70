"""The HTTP ingest API over real HTTP: PutRecords shapes, limits and per-record errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from shipyard.core.config import Settings
from shipyard.ingest import drain_to_landing, read_landing
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.pipeline.landing import event_landing_schema


def _event(i: int) -> dict[str, object]:
    return {
        "event_id": f"evt-{i:016x}",
        "event_time": "2026-11-05T09:15:00.123Z",
        "card_id": f"card-{i:07d}",
        "amount": 10.0 + i,
    }


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[BackgroundServer, Workspace]]:
    workspace = Workspace.open(settings)
    with BackgroundServer(workspace) as running:
        created = httpx.post(
            f"{running.url}/api/v1/streams", json={"StreamName": "cards", "ShardCount": 2}
        )
        assert created.status_code == 201, created.text
        yield running, workspace
    workspace.close()


def test_put_records_json_and_base64_then_land(
    server: tuple[BackgroundServer, Workspace],
) -> None:
    running, workspace = server
    records = [{"Data": _event(i), "PartitionKey": f"card-{i}"} for i in range(5)]
    records.append(
        {"Data": base64.b64encode(orjson.dumps(_event(5))).decode(), "PartitionKey": "card-5"}
    )
    answer = httpx.post(f"{running.url}/streams/cards/records", json={"Records": records})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["FailedRecordCount"] == 0
    assert len(body["Records"]) == 6
    assert all(r["ShardId"].startswith("shardId-") and r["SequenceNumber"] for r in body["Records"])
    described = httpx.get(f"{running.url}/api/v1/streams/cards").json()["StreamDescription"]
    assert described["StreamName"] == "cards" and len(described["Shards"]) == 2

    drained = drain_to_landing(
        workspace.streams.get("cards"), workspace.store, schema=event_landing_schema()
    )
    assert drained.records == 6
    landed = read_landing(workspace.store, "landing/cards").collect()
    assert sorted(landed["event_id"].to_list()) == sorted(f"evt-{i:016x}" for i in range(6))


def test_one_bad_record_does_not_block_the_good_ones(
    server: tuple[BackgroundServer, Workspace],
) -> None:
    running, _ = server
    records = [
        {"Data": _event(1), "PartitionKey": "a"},
        {"PartitionKey": "b"},
        {"Data": "%%% not base64", "PartitionKey": "c"},
        {"Data": _event(2)},
        {"Data": {"blob": "x" * (1024 * 1024 + 10)}, "PartitionKey": "d"},
        {"Data": _event(3), "PartitionKey": "e"},
    ]
    answer = httpx.post(f"{running.url}/streams/cards/records", json={"Records": records})
    results = answer.json()["Records"]
    assert answer.json()["FailedRecordCount"] == 4
    assert [("SequenceNumber" in r) for r in results] == [True, False, False, False, False, True]
    assert "no Data" in results[1]["ErrorMessage"]
    assert "base64" in results[2]["ErrorMessage"]
    assert "PartitionKey" in results[3]["ErrorMessage"]
    assert "at most 1,048,576" in results[4]["ErrorMessage"]
    assert all(r.get("ErrorCode") == "InvalidArgumentException" for r in results[1:5])


def test_a_stream_is_described_with_its_retention(
    server: tuple[BackgroundServer, Workspace],
) -> None:
    running, _ = server
    spec = {"StreamName": "small", "ShardCount": 1, "RetentionPeriodHours": 2,
            "RetentionBytes": 10_000_000, "PartitionKeyField": "merchant_id"}  # fmt: skip
    assert httpx.post(f"{running.url}/api/v1/streams", json=spec).status_code == 201
    described = httpx.get(f"{running.url}/api/v1/streams/small").json()["StreamDescription"]
    assert described["RetentionPeriodHours"] == 2
    assert described["RetentionBytes"] == 10_000_000
    assert described["PartitionKeyField"] == "merchant_id"
    assert described["Backend"] == "embedded"
    assert described["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"] == "0" * 21


def test_ndjson_uses_the_streams_partition_key_field(
    server: tuple[BackgroundServer, Workspace],
) -> None:
    running, _ = server
    lines = b"\n".join(orjson.dumps(_event(i)) for i in range(3)) + b'\n{"amount": 1}\n'
    answer = httpx.post(
        f"{running.url}/streams/cards/records",
        content=lines,
        headers={"Content-Type": "application/x-ndjson"},
    )
    results = answer.json()["Records"]
    assert answer.json()["FailedRecordCount"] == 1
    assert "partition-key field 'card_id'" in results[3]["ErrorMessage"]


JSON = "application/json"
RECORDS = "/streams/cards/records"
STREAMS = "/api/v1/streams"


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "error_type"),
    [
        ("/streams/nope/records", b'{"Records": []}', JSON, 400, "ResourceNotFoundException"),
        (RECORDS, b"{nope", JSON, 400, "SerializationException"),
        (RECORDS, b'{"Records": []}', JSON, 400, "ValidationException"),
        (RECORDS, b'{"Records": 3}', JSON, 400, "ValidationException"),
        (RECORDS, b"x", "text/plain", 415, "ValidationException"),
        (STREAMS, b'{"StreamName": "cards"}', JSON, 400, "ResourceInUseException"),
        (STREAMS, b'{"StreamName": "x", "ShardCount": 0}', JSON, 400, "ValidationException"),
        (STREAMS, b'{"StreamName": "../x"}', JSON, 400, "ValidationException"),
        (STREAMS, b'{"StreamName": "x", "RetentionBytes": 0}', JSON, 400, "ValidationException"),
        (
            STREAMS,
            b'{"StreamName": "x", "RetentionPeriodHours": 1e9}',
            JSON,
            400,
            "ValidationException",
        ),  # fmt: skip
    ],
)
def test_bad_requests_name_the_problem(
    server: tuple[BackgroundServer, Workspace],
    path: str,
    body: bytes,
    content_type: str,
    status: int,
    error_type: str,
) -> None:
    running, _ = server
    answer = httpx.post(
        f"{running.url}{path}", content=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["__type"] == error_type
    assert answer.json()["message"]


def test_batches_over_the_limits_are_refused(server: tuple[BackgroundServer, Workspace]) -> None:
    running, _ = server
    too_many = {"Records": [{"Data": _event(i), "PartitionKey": "k"} for i in range(501)]}
    answer = httpx.post(f"{running.url}/streams/cards/records", json=too_many)
    assert answer.status_code == 400 and "at most 500" in answer.json()["message"]
    huge = b'{"Records": [' + b" " * (5 * 1024 * 1024) + b"]}"
    answer = httpx.post(
        f"{running.url}/streams/cards/records",
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413


def test_an_unreachable_stream_backend_is_a_retryable_503(tmp_path: Path) -> None:
    # Nothing listens on port 1: every call reaches the backend and fails there.
    settings = Settings(home=tmp_path / "home", stream_url="redis://127.0.0.1:1/0?prefix=down")
    workspace = Workspace.open(settings)
    with BackgroundServer(workspace) as running:
        calls = [
            httpx.post(f"{running.url}/streams/cards/records", json={"Records": [{"Data": {}}]}),
            httpx.post(f"{running.url}/api/v1/streams", json={"StreamName": "cards"}),
            httpx.get(f"{running.url}/api/v1/streams"),
            httpx.get(f"{running.url}/api/v1/streams/cards"),
        ]
    workspace.close()
    for answer in calls:
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"]
        assert "127.0.0.1:1" in answer.json()["message"]
