"""Captured requests as a frame: what a monitoring job reads when it checks live traffic.

Data capture writes SageMaker's JSON lines (``captureData.endpointInput``) under
``{destination}/{endpoint}/{variant}/YYYY/MM/DD/HH/``. A schedule names them with
``capture:ENDPOINT`` (or ``capture:ENDPOINT/VARIANT``); each JSON event of a request (an
object, a list of objects or JSON lines) becomes one row, with the capture time beside it in
``_inference_time`` (leading ``_``: never tested for drift).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
import polars as pl

from shipyard.core.errors import DataError
from shipyard.storage import ObjectStore

CAPTURE_SCHEME = "capture:"
CAPTURE_DESTINATION = "capture"
INFERENCE_TIME = "_inference_time"


def is_capture(source: object) -> bool:
    return isinstance(source, str) and source.startswith(CAPTURE_SCHEME)


def read_captured_inputs(
    store: ObjectStore, source: str, *, destination: str = CAPTURE_DESTINATION
) -> pl.DataFrame:
    """The JSON events captured for ``source`` (``capture:ENDPOINT[/VARIANT]``), one per row."""
    target = source[len(CAPTURE_SCHEME) :].strip("/") if is_capture(source) else ""
    if not target or target.count("/") > 1:
        raise DataError(
            f"captured data {source!r} must read capture:ENDPOINT or capture:ENDPOINT/VARIANT"
        )
    keys = store.list_keys(f"{destination}/{target}/", ".jsonl")
    rows: list[dict[str, Any]] = []
    for key in keys:
        for line in store.get_bytes(key).splitlines():
            if line.strip():
                rows.extend(_events(line, key))
    if not rows:
        raise DataError(
            f"no captured requests under {destination}/{target}/; turn data capture on for the "
            "endpoint (DataCaptureConfig) and send it traffic first"
        )
    try:
        return pl.from_dicts(rows, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise DataError(f"captured requests of {target} do not form a table: {exc}") from None


def _events(line: bytes, key: str) -> list[dict[str, Any]]:
    try:
        record = orjson.loads(line)
        section = record["captureData"].get("endpointInput")
        when = record.get("eventMetadata", {}).get("inferenceTime")
    except (orjson.JSONDecodeError, KeyError, AttributeError, TypeError):
        raise DataError(f"{key} holds a line that is not a capture record") from None
    if not isinstance(section, dict):
        return []  # an Output-only capture: no inputs to check
    data = section.get("data", "")
    try:
        body = base64.b64decode(data) if section.get("encoding") == "BASE64" else data.encode()
        parsed = [orjson.loads(part) for part in body.splitlines() if part.strip()]
    except (binascii.Error, orjson.JSONDecodeError, AttributeError):
        return []  # a CSV or unreadable request: it has no named fields to check
    if len(parsed) == 1 and isinstance(parsed[0], list):
        parsed = parsed[0]
    return [{**event, INFERENCE_TIME: when} for event in parsed if isinstance(event, dict)]
