"""Request bodies to event frames, and scores to response bodies.

Endpoints take raw events exactly as the stream carries them: JSON (one object, an array of
objects, ``{"instances": [...]}`` and MLflow's ``dataframe_records`` / ``dataframe_split`` /
``inputs``), JSON lines, or CSV with the signature's columns in order and no header.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
import polars as pl

from shipyard.core.errors import InvalidRequestError

JSON_TYPES = ("application/json",)
JSONLINES_TYPES = ("application/jsonlines", "application/jsonl", "application/x-ndjson")
CSV_TYPES = ("text/csv",)
_POLARS_TYPES: dict[str, type[pl.DataType]] = {
    "float": pl.Float64,
    "bool": pl.Boolean,
    "string": pl.String,
}


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def decode_events(body: bytes, content_type: str | None, signature: dict[str, str]) -> pl.DataFrame:
    """Parse a request body into one row per event."""
    kind = media_type(content_type) or "application/json"
    if not body.strip():
        raise InvalidRequestError("the request body is empty; send at least one event")
    if kind in JSON_TYPES:
        return _records_frame(_json_records(body))
    if kind in JSONLINES_TYPES:
        return _records_frame(_jsonlines_records(body))
    if kind in CSV_TYPES:
        return _csv_frame(body, signature)
    raise InvalidRequestError(
        f"content type {kind!r} is not supported; use application/json, "
        "application/jsonlines or text/csv"
    )


def encode_scores(scores: np.ndarray, accept: str | None) -> tuple[bytes, str]:
    """Serialise fraud probabilities in the format the caller accepts (JSON by default)."""
    kind = media_type(accept)
    values = [round(float(s), 7) for s in scores]
    if kind in CSV_TYPES:
        return "".join(f"{v}\n" for v in values).encode(), "text/csv"
    if kind in JSONLINES_TYPES:
        lines = b"".join(orjson.dumps({"fraud_probability": v}) + b"\n" for v in values)
        return lines, "application/jsonlines"
    body = orjson.dumps({"predictions": [{"fraud_probability": v} for v in values]})
    return body, "application/json"


def _json_records(body: bytes) -> list[dict[str, Any]]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not valid JSON: {exc}") from None
    if isinstance(payload, dict):
        for key in ("instances", "dataframe_records", "inputs"):
            if key in payload:
                return _check_objects(payload[key], key)
        if "dataframe_split" in payload:
            return _split_records(payload["dataframe_split"])
        return [payload]
    return _check_objects(payload, "body")


def _split_records(split: Any) -> list[dict[str, Any]]:
    if not isinstance(split, dict) or "columns" not in split or "data" not in split:
        raise InvalidRequestError("dataframe_split needs 'columns' and 'data'")
    columns = split["columns"]
    rows = split["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidRequestError("dataframe_split.columns must be a list of field names")
    if not isinstance(rows, list) or not all(
        isinstance(r, list) and len(r) == len(columns) for r in rows
    ):
        raise InvalidRequestError(
            f"every row of dataframe_split.data must be a list of {len(columns)} values"
        )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _check_objects(items: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise InvalidRequestError(f"{where} must be an event object or a list of event objects")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequestError(
                f"{where}[{index}] is {type(item).__name__}, not an event object"
            )
    if not items:
        raise InvalidRequestError(f"{where} holds no events; send at least one")
    return items


def _jsonlines_records(body: bytes) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"line {number} is not valid JSON: {exc}") from None
        if not isinstance(item, dict):
            raise InvalidRequestError(f"line {number} is not an event object")
        records.append(item)
    return _check_objects(records, "body")


def _records_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    try:
        frame = pl.DataFrame(records, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidRequestError(f"events have inconsistent field types: {message}") from None
    nested = [n for n, t in frame.schema.items() if t.is_nested() or t == pl.Object]
    if nested:
        raise InvalidRequestError(
            f"field(s) {', '.join(nested)} hold objects or lists; event fields are plain values"
        )
    return frame


def _csv_frame(body: bytes, signature: dict[str, str]) -> pl.DataFrame:
    names = list(signature)
    text = body.decode("utf-8", errors="replace")
    first = text.lstrip().split("\n", 1)[0].strip().split(",")
    has_header = [c.strip() for c in first] == names
    try:
        frame = pl.read_csv(
            io.BytesIO(body),
            has_header=has_header,
            new_columns=None if has_header else names,
            schema_overrides={n: _POLARS_TYPES[t] for n, t in signature.items()},
            infer_schema_length=0,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.PolarsError as exc:
        message = str(exc).strip().splitlines()[0]
        raise InvalidRequestError(
            f"CSV rows must hold {len(names)} values in the order {','.join(names)}: {message}"
        ) from None
    if frame.width != len(names):
        raise InvalidRequestError(
            f"CSV rows hold {frame.width} values; the model expects {len(names)}: "
            + ",".join(names)
        )
    return frame
