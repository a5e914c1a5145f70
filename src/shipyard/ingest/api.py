"""HTTP ingest: Kinesis-shaped PutRecords and stream management on `shipyard server`.

Errors use Kinesis's JSON shape (``__type`` and ``message``): ResourceNotFoundException for an
unknown stream, ResourceInUseException for a name taken, ValidationException for a batch
over the limits, SerializationException for a body that is not JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.core.errors import InvalidRequestError, NotFoundError, StateError, StorageError
from shipyard.core.http import read_body_within
from shipyard.ingest.backend import MAX_RETENTION_HOURS, MAX_SHARDS, StreamSpec
from shipyard.ingest.hub import StreamDescription, StreamHub
from shipyard.ingest.metrics import IngestMetrics
from shipyard.ingest.records import MAX_REQUEST_BYTES, Entry, parse_batch
from shipyard.ingest.worker import lag


def kinesis_error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"__type": code, "message": message}, status_code=status)


def create_ingest_routes(
    hub: StreamHub,
    *,
    max_lag_records: int | None = None,
    metrics: IngestMetrics | None = None,
) -> list[Route]:
    """POST /streams/{stream}/records, POST /api/v1/streams, GET /api/v1/streams[/{stream}].

    With ``max_lag_records``, a stream whose landing drain is further behind than that is
    refused with 503 and Retry-After instead of growing without bound (backpressure).
    """

    async def put_records(request: Request) -> Response:
        name = request.path_params["stream"]
        try:
            stream = hub.get(name)
            behind = lag(hub, name) if max_lag_records is not None else 0
        except NotFoundError as exc:
            return kinesis_error(400, "ResourceNotFoundException", str(exc))
        # Owned by another process, shutting down, or the backend server is unreachable.
        except (StateError, StorageError) as exc:
            return _unavailable(str(exc))
        if max_lag_records is not None and behind > max_lag_records:
            if metrics is not None:
                metrics.backpressure.labels(name).inc()
            return _unavailable(
                f"stream {name!r} is more than {max_lag_records:,} records ahead of its "
                "landing drain; retry shortly"
            )
        body = await read_body_within(request, MAX_REQUEST_BYTES)
        if body is None:
            return kinesis_error(
                413, "ValidationException", f"a batch may hold at most {MAX_REQUEST_BYTES:,} bytes"
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            entries = parse_batch(body, content_type, hub.spec(name).partition_key_field)
        except InvalidRequestError as exc:
            code = (
                "SerializationException" if "not valid JSON" in str(exc) else "ValidationException"
            )
            status = 415 if "content type" in str(exc) else 400
            if metrics is not None:
                metrics.rejected.labels(name, code).inc()
            return kinesis_error(status, code, str(exc))
        good = [(e.partition_key, e.data) for e in entries if e.ok]
        try:
            # fsync happens in put_records: keep it off the event loop.
            results = iter(await run_in_threadpool(stream.put_records, good) if good else [])
        # Closed under us by a shutdown, or the backend failed: nothing was acknowledged.
        except (StateError, StorageError) as exc:
            return _unavailable(str(exc))
        shaped: list[dict[str, Any]] = []
        for entry in entries:
            shaped.append(_result(entry, next(results) if entry.ok else None))
        failed = sum(1 for entry in entries if not entry.ok)
        if metrics is not None:
            metrics.records_in.labels(name).inc(len(good))
            metrics.bytes_in.labels(name).inc(sum(len(data) for _, data in good))
            for entry in entries:
                if not entry.ok:
                    metrics.rejected.labels(name, entry.error_code).inc()
        return JSONResponse({"FailedRecordCount": failed, "Records": shaped})

    async def create_stream(request: Request) -> Response:
        try:
            spec = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return kinesis_error(
                400, "SerializationException", f"the body is not valid JSON: {exc}"
            )
        if not isinstance(spec, dict):
            return kinesis_error(400, "ValidationException", "the body must be a JSON object")
        parsed = _stream_spec(spec)
        if isinstance(parsed, str):
            return kinesis_error(400, "ValidationException", parsed)
        name, stream_spec = parsed
        try:
            created = hub.create(name, stream_spec)
        except StateError as exc:
            return kinesis_error(400, "ResourceInUseException", str(exc))
        except InvalidRequestError as exc:
            return kinesis_error(400, "ValidationException", str(exc))
        except StorageError as exc:
            return _unavailable(str(exc))
        return JSONResponse(_describe(created), status_code=201)

    async def describe_stream(request: Request) -> Response:
        try:
            return JSONResponse(_describe(hub.describe(request.path_params["stream"])))
        except NotFoundError as exc:
            return kinesis_error(400, "ResourceNotFoundException", str(exc))
        except (StateError, StorageError) as exc:
            return _unavailable(str(exc))

    async def list_streams(request: Request) -> Response:
        try:
            return JSONResponse({"StreamNames": hub.names()})
        except StorageError as exc:
            return _unavailable(str(exc))

    return [
        Route("/streams/{stream}/records", put_records, methods=["POST"]),
        Route("/api/v1/streams", create_stream, methods=["POST"]),
        Route("/api/v1/streams", list_streams, methods=["GET"]),
        Route("/api/v1/streams/{stream}", describe_stream, methods=["GET"]),
    ]


def _unavailable(message: str) -> Response:
    return JSONResponse(
        {"__type": "ServiceUnavailable", "message": message},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def _stream_spec(spec: dict[str, Any]) -> tuple[str, StreamSpec] | str:
    """The stream to create (Kinesis names or plain ones), or what is wrong with the request."""
    name = spec.get("StreamName", spec.get("name"))
    shards = spec.get("ShardCount", spec.get("shards", 2))
    retention = spec.get("RetentionPeriodHours", spec.get("retention_hours", 24))
    size = spec.get("RetentionBytes", spec.get("retention_bytes"))
    key_field = spec.get("PartitionKeyField", spec.get("partition_key_field", "card_id"))
    problems = []
    if not isinstance(name, str):
        problems.append("StreamName must be a string")
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        problems.append(f"ShardCount must be an integer from 1 to {MAX_SHARDS}")
    if (
        not isinstance(retention, int | float)
        or isinstance(retention, bool)
        or not 0 < retention <= MAX_RETENTION_HOURS
    ):
        problems.append(f"RetentionPeriodHours must be a number in (0, {MAX_RETENTION_HOURS:g}]")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        problems.append("RetentionBytes must be a positive integer")
    if not isinstance(key_field, str) or not key_field:
        problems.append("PartitionKeyField must be a field name")
    if problems:
        return "; ".join(problems)
    return str(name), StreamSpec(int(shards), float(retention), size, str(key_field))


def _result(entry: Entry, put: Any) -> dict[str, Any]:
    if put is None:
        return {"ErrorCode": entry.error_code, "ErrorMessage": entry.error_message}
    return {"SequenceNumber": f"{put.sequence:021d}", "ShardId": _shard_id(put.shard)}


def _shard_id(shard: int) -> str:
    return f"shardId-{shard:012d}"


def _describe(description: StreamDescription) -> dict[str, Any]:
    status = description.status
    return {
        "StreamDescription": {
            "StreamName": status.name,
            "StreamStatus": "ACTIVE",
            "RetentionPeriodHours": description.spec.retention_hours,
            "RetentionBytes": description.spec.retention_bytes,
            "PartitionKeyField": description.spec.partition_key_field,
            "Backend": status.backend,
            "Shards": [
                {
                    "ShardId": _shard_id(shard.shard),
                    "SequenceNumberRange": {
                        "StartingSequenceNumber": f"{shard.first_sequence:021d}",
                        "EndingSequenceNumber": f"{shard.end_sequence:021d}",
                    },
                    "Bytes": shard.bytes,
                }
                for shard in status.shards
            ],
            "ConsumerGroups": {group: list(offsets) for group, offsets in status.groups.items()},
        }
    }
