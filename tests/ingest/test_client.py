"""The ingest client: batching, retrying only failed records, reporting what it could not send."""

from __future__ import annotations

import httpx
import orjson
import pytest

from shipyard.core.config import Settings
from shipyard.core.errors import InvalidRequestError, NotFoundError
from shipyard.ingest import Client, drain_to_landing, open_stream, read_landing
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.pipeline.landing import event_landing_schema


def _events(n: int) -> list[dict[str, object]]:
    return [
        {"event_id": f"evt-{i:016x}", "event_time": "2026-11-05T09:15:00.123Z",
         "card_id": f"card-{i % 97:07d}", "amount": float(i)}
        for i in range(n)
    ]  # fmt: skip


def test_delivers_in_batches_to_a_real_server(settings: Settings) -> None:
    workspace = Workspace.open(settings)
    try:
        with BackgroundServer(workspace) as server:
            httpx.post(f"{server.url}/api/v1/streams", json={"StreamName": "cards"})
            events = _events(1200)
            events[7]["card_id"] = None
            events[7]["event_id"] = None  # no partition key at all: refused, not retried
            with Client(server.url) as client:
                report = client.put("cards", events)
                with pytest.raises(NotFoundError, match="nope"):
                    client.put("nope", _events(1))
        assert (report.sent, report.delivered) == (1200, 1199)
        assert [u.index for u in report.undelivered] == [7]
        assert report.undelivered[0].error_code == "InvalidArgumentException"
        assert report.attempts == 3  # 500 + 500 + 200
        with open_stream(settings, "cards", create=False) as stream:  # the server has stopped
            drain_to_landing(stream, workspace.store, schema=event_landing_schema())
        assert read_landing(workspace.store, "landing/cards").collect().height == 1199
    finally:
        workspace.close()


def test_retries_only_the_failed_records() -> None:
    seen: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        records = orjson.loads(request.content)["Records"]
        seen.append([r["Data"]["event_id"] for r in records])
        if len(seen) == 2:
            return httpx.Response(503, json={"__type": "ServiceUnavailable", "message": "busy"})
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            if len(seen) == 1 and i % 2
            else {"SequenceNumber": "1", "ShardId": "shardId-000000000000"}
            for i, _ in enumerate(records)
        ]
        return httpx.Response(200, json={"FailedRecordCount": 0, "Records": results})

    client = Client(transport=httpx.MockTransport(handler), sleep=lambda s: None)
    report = client.put("s", _events(4))
    assert seen == [
        ["evt-0000000000000000", "evt-0000000000000001", "evt-0000000000000002",
         "evt-0000000000000003"],
        ["evt-0000000000000001", "evt-0000000000000003"],
        ["evt-0000000000000001", "evt-0000000000000003"],
    ]  # fmt: skip
    assert report.ok and report.delivered == 4 and report.attempts == 3


def test_gives_up_after_max_attempts_and_says_why() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"__type": "ServiceUnavailable", "message": "busy"})

    client = Client(transport=httpx.MockTransport(handler), max_attempts=3, sleep=lambda s: None)
    report = client.put("s", _events(2))
    assert report.delivered == 0 and report.attempts == 3
    assert [u.index for u in report.undelivered] == [0, 1]
    assert "after 3 attempts" in report.undelivered[0].message


def test_events_the_server_would_refuse_are_reported_and_the_rest_sent() -> None:
    sent: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        records = orjson.loads(request.content)["Records"]
        sent.append(len(records))
        ok = {"SequenceNumber": "1", "ShardId": "shardId-000000000000"}
        return httpx.Response(200, json={"FailedRecordCount": 0, "Records": [ok] * len(records)})

    events: list[object] = [*_events(3), {"blob": "x" * (1024 * 1024 + 1)}, [1, 2], *_events(2)]
    report = Client(transport=httpx.MockTransport(handler), sleep=lambda s: None).put("s", events)
    assert sent == [5]
    assert report.delivered == 5
    assert [(u.index, u.error_code) for u in report.undelivered] == [
        (3, "InvalidArgumentException"),
        (4, "InvalidArgumentException"),
    ]


def test_retry_after_is_honoured_and_non_json_answers_are_clear() -> None:
    waits: list[float] = []
    calls = iter(
        [
            httpx.Response(
                503, headers={"Retry-After": "2"}, json={"__type": "ServiceUnavailable"}
            ),
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.Response(404, text="Not Found"),
        ]
    )
    client = Client(transport=httpx.MockTransport(lambda r: next(calls)), sleep=waits.append)
    with pytest.raises(InvalidRequestError, match="not JSON"):
        client.put("s", _events(1))
    assert waits[0] >= 2.0
