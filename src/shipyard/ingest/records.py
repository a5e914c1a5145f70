"""PutRecords requests: parse a batch, check its limits, and shape each record's result.

A batch is Kinesis PutRecords JSON (``{"Records": [{"Data": ..., "PartitionKey": ...}]}``,
``Data`` an event object or base64 of its bytes) or NDJSON events whose partition key is a
field named by the stream. A bad record gets its own error; the good ones are still written.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from shipyard.core.errors import InvalidRequestError

MAX_RECORDS = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256
JSON_TYPES = ("application/json", "application/x-amz-json-1.1")
NDJSON_TYPES = ("application/x-ndjson", "application/jsonlines", "application/jsonl")


@dataclass(frozen=True)
class Entry:
    """One record of a batch: ready to append, or refused with a Kinesis-style error."""

    partition_key: bytes = b""
    data: bytes = b""
    error_code: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_code


def parse_batch(body: bytes, content_type: str, partition_key_field: str) -> list[Entry]:
    """Entries in request order; raises InvalidRequestError when the batch as a whole is bad."""
    if len(body) > MAX_REQUEST_BYTES:
        raise InvalidRequestError(
            f"the request is {len(body):,} bytes; a batch may hold at most {MAX_REQUEST_BYTES:,}"
        )
    if content_type in NDJSON_TYPES:
        lines = [line for line in body.splitlines() if line.strip()]
        entries = [_ndjson_entry(i, line, partition_key_field) for i, line in enumerate(lines)]
    elif content_type in JSON_TYPES:
        entries = _records_entries(body)
    else:
        raise InvalidRequestError(
            f"content type {content_type or 'none'!r} is not supported; send application/json "
            "(PutRecords) or application/x-ndjson"
        )
    if not entries:
        raise InvalidRequestError("the batch holds no records; send 1 to 500")
    if len(entries) > MAX_RECORDS:
        raise InvalidRequestError(
            f"the batch holds {len(entries)} records; PutRecords takes at most {MAX_RECORDS}"
        )
    return entries


def _records_entries(body: bytes) -> list[Entry]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not valid JSON: {exc}") from None
    records = payload.get("Records") if isinstance(payload, dict) else None
    if not isinstance(records, list):
        raise InvalidRequestError(
            'the body must be {"Records": [{"Data": ..., "PartitionKey": ...}]}'
        )
    return [_record_entry(index, record) for index, record in enumerate(records)]


def _record_entry(index: int, record: Any) -> Entry:
    if not isinstance(record, dict):
        return _refused(f"Records[{index}] is not an object")
    key = record.get("PartitionKey")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_PARTITION_KEY_CHARS:
        return _refused(
            f"Records[{index}].PartitionKey must be a string of "
            f"1-{MAX_PARTITION_KEY_CHARS} characters"
        )
    if "Data" not in record:
        return _refused(f"Records[{index}] has no Data")
    data = record["Data"]
    if isinstance(data, dict):
        raw = orjson.dumps(data)
    elif isinstance(data, str):
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return _refused(f"Records[{index}].Data is neither an event object nor valid base64")
    else:
        return _refused(f"Records[{index}].Data must be an event object or a base64 string")
    return _sized(index, key.encode(), raw)


def _ndjson_entry(index: int, line: bytes, partition_key_field: str) -> Entry:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _refused(f"line {index + 1} is not valid JSON: {exc}")
    if not isinstance(event, dict):
        return _refused(f"line {index + 1} is not an event object")
    key = event.get(partition_key_field)
    if key is None or key == "":
        return _refused(f"line {index + 1} has no partition-key field {partition_key_field!r}")
    return _sized(index, str(key)[:MAX_PARTITION_KEY_CHARS].encode(), orjson.dumps(event))


def _sized(index: int, key: bytes, data: bytes) -> Entry:
    if len(data) > MAX_RECORD_BYTES:
        return _refused(
            f"record {index} is {len(data):,} bytes; a record may hold at most {MAX_RECORD_BYTES:,}"
        )
    return Entry(partition_key=key, data=data)


def _refused(message: str) -> Entry:
    return Entry(error_code="InvalidArgumentException", error_message=message)
