"""Request bodies to event frames, and scores to response bodies.

Endpoints take raw events exactly as the stream carries them:

- JSON: one event object, an array of them, or MLflow's scoring shapes (exactly one key):
  ``dataframe_split`` (``columns`` + ``data`` rows; no ``columns`` = signature order),
  ``dataframe_records`` (event objects), ``instances`` and ``inputs`` (event objects, rows of
  values in signature order, or columnar ``{field: [values]}``);
- JSON lines, one event object per line;
- CSV: the signature's columns in order and no header, or a header naming them in any order.

The frame holds the signature's columns only, one row per event. A value that is NaN or
infinite is refused: a missing value is ``null`` (JSON) or an empty field (CSV).
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import orjson
import polars as pl

from shipyard.core.errors import InvalidRequestError
from shipyard.serve.errors import UnsupportedMediaType

JSON_TYPES = ("application/json",)
JSONLINES_TYPES = ("application/jsonlines", "application/jsonl", "application/x-ndjson")
CSV_TYPES = ("text/csv",)
DEFAULT_OUTPUT = "fraud_probability"  # a package whose signature names no output
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
POLARS_TYPES: dict[str, type[pl.DataType]] = {
    "float": pl.Float64,
    "bool": pl.Boolean,
    "string": pl.String,
}
_JSON_NAMES = {bool: "boolean", int: "number", float: "number", str: "string", dict: "object"}
_NON_FINITE_JSON = re.compile(rb"\b(NaN|Infinity)\b")


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def decode_events(body: bytes, content_type: str | None, signature: dict[str, str]) -> pl.DataFrame:
    """Parse a request body into one row per event, refusing what the model cannot score."""
    kind = media_type(content_type) or "application/json"
    if not body.strip():
        raise InvalidRequestError("the request body is empty; send at least one event")
    if kind in JSON_TYPES:
        frame = _json_frame(body, signature)
    elif kind in JSONLINES_TYPES:
        frame = records_frame(_jsonlines_records(body), signature)
    elif kind in CSV_TYPES:
        frame = _csv_frame(body, signature)
    else:
        raise UnsupportedMediaType(
            f"content type {kind!r} is not supported; use application/json, "
            "application/jsonlines or text/csv"
        )
    if frame.height == 0:
        raise InvalidRequestError("the body holds no events; send at least one")
    check_finite(frame, signature)
    return frame


class RequestRows:
    """A request body's events for the runtime: the frame of :func:`decode_events`, or, for a
    JSON body of event objects, the objects themselves, so that the feature prep can skip
    building a frame (what dominates the cost of a request of a few events)."""

    __slots__ = ("body", "content_type", "_records")

    def __init__(self, body: bytes, content_type: str | None) -> None:
        self.body = body
        self.content_type = content_type
        self._records: list[dict[str, Any]] | None | bool = False  # False: not parsed yet

    def __call__(self, signature: dict[str, str]) -> pl.DataFrame:
        return decode_events(self.body, self.content_type, signature)

    @property
    def is_json(self) -> bool:
        """A JSON body (no content type means JSON, as SageMaker's default)."""
        return (media_type(self.content_type) or "application/json") in JSON_TYPES

    def records(self) -> list[dict[str, Any]] | None:
        """The body's event objects; None for any other body (CSV, JSON lines, columns, rows
        of values, or JSON that does not parse), which only the frame path reads."""
        if self._records is False:
            self._records = None
            if self.is_json:
                try:
                    payload = orjson.loads(self.body)
                except orjson.JSONDecodeError:
                    return None
                self._records = _json_records(payload)
        assert self._records is not True
        return self._records


def _json_records(payload: Any) -> list[dict[str, Any]] | None:
    """The event objects of the shapes :func:`_json_frame` reads as objects, else None."""
    if isinstance(payload, dict):
        formats = [key for key in MLFLOW_KEYS if key in payload]
        if not formats:
            return [payload]
        if len(formats) > 1 or formats[0] == "dataframe_split":
            return None
        payload = payload[formats[0]]
    if isinstance(payload, list) and payload and set(map(type, payload)) == {dict}:
        return payload
    return None


def encode_scores(
    scores: np.ndarray, accept: str | None, output: str = DEFAULT_OUTPUT
) -> tuple[bytes, str]:
    """Serialise scores in the format the caller accepts (JSON, MLflow's shape, by default)."""
    kind = media_type(accept)
    values = [round(s, 7) for s in scores.tolist()]
    if kind in CSV_TYPES:
        return "".join(f"{v}\n" for v in values).encode(), "text/csv"
    if kind in JSONLINES_TYPES:
        lines = b"".join(orjson.dumps({output: v}) + b"\n" for v in values)
        return lines, "application/jsonlines"
    body = orjson.dumps({"predictions": [{output: v} for v in values]})
    return body, "application/json"


def records_frame(records: list[dict[str, Any]], signature: dict[str, str]) -> pl.DataFrame:
    """The signature's columns of ``records``; fields the model does not read are dropped."""
    names = [n for n in signature if any(n in r for r in records)]
    if len(records) > 1:
        _check_uniform_types(records, names)
    rows = [{n: r[n] for n in names if n in r} for r in records]
    try:
        frame = pl.DataFrame(rows, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError) as exc:
        message = _first_line(exc)
        raise InvalidRequestError(f"events have inconsistent field types: {message}") from None
    nested = [n for n, t in frame.schema.items() if t.is_nested() or t == pl.Object]
    if nested:
        raise InvalidRequestError(
            f"field(s) {', '.join(nested)} hold objects or lists; event fields are plain values"
        )
    return frame


def check_finite(frame: pl.DataFrame, signature: dict[str, str]) -> None:
    """Refuse NaN and infinity in the signature's numeric columns, naming the first one."""
    floats = [c for c in signature if c in frame.columns and frame.schema[c].is_float()]
    if not floats:
        return
    flags = frame.select(~pl.col(floats).is_finite().fill_null(True).all())
    if not any(flags.row(0)):
        return
    for column in floats:
        series = frame[column]
        bad = (~series.is_finite()).fill_null(False)
        if bad.any():
            row = int(bad.arg_true()[0])
            value = series[row]
            raise InvalidRequestError(
                f"field {column!r} of event {row} is {value}; numbers must be finite "
                "(send null in JSON, or an empty CSV field, for a missing value)"
            )


def _json_frame(body: bytes, signature: dict[str, str]) -> pl.DataFrame:
    payload = _parse_json(body)
    if isinstance(payload, dict):
        formats = [key for key in MLFLOW_KEYS if key in payload]
        if len(formats) > 1:
            raise InvalidRequestError(
                f"the body holds {' and '.join(formats)}; send exactly one of "
                + ", ".join(MLFLOW_KEYS)
            )
        if not formats:
            return records_frame([payload], signature)
        key = formats[0]
        if key == "dataframe_split":
            return _split_frame(payload[key], signature)
        if key == "dataframe_records":
            return records_frame(_check_objects(payload[key], key), signature)
        return _tensor_frame(payload[key], key, signature)
    return records_frame(_check_objects(payload, "body"), signature)


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if _NON_FINITE_JSON.search(body) or "infinity" in str(exc):
            hint = "; JSON has no NaN or Infinity: send null for a missing value"
        raise InvalidRequestError(f"the body is not valid JSON: {exc}{hint}") from None


def _split_frame(split: Any, signature: dict[str, str]) -> pl.DataFrame:
    if not isinstance(split, dict) or "data" not in split:
        raise InvalidRequestError(
            "dataframe_split needs 'data' (and 'columns', or none for the signature's order)"
        )
    columns = split.get("columns", list(signature))
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidRequestError("dataframe_split.columns must be a list of field names")
    return records_frame(
        _positional_records(split["data"], columns, "dataframe_split.data"), signature
    )


def _tensor_frame(value: Any, key: str, signature: dict[str, str]) -> pl.DataFrame:
    """MLflow's ``instances`` / ``inputs``: rows as objects or lists, or columns as lists."""
    if isinstance(value, dict):
        if not value:
            raise InvalidRequestError(
                f"{key} is an empty object; send a list of events, a list of rows of values "
                "in signature order, or an object of field -> list of values"
            )
        lengths = {name: len(v) if isinstance(v, list) else -1 for name, v in value.items()}
        if -1 in lengths.values() or len(set(lengths.values())) != 1:
            raise InvalidRequestError(
                f"{key} as an object must map each field to a list of values, all of one "
                f"length; got lengths {lengths}"
            )
        count = next(iter(lengths.values()))
        if count == 0:
            raise InvalidRequestError(f"{key} holds no events; send at least one")
        records = [{name: v[i] for name, v in value.items()} for i in range(count)]
        return records_frame(records, signature)
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
        return records_frame(_positional_records(value, list(signature), key), signature)
    if isinstance(value, list) and value and any(isinstance(row, list) for row in value):
        raise InvalidRequestError(
            f"{key} mixes lists and other values; send rows as all objects or all lists"
        )
    return records_frame(_check_objects(value, key), signature)


def _positional_records(rows: Any, columns: list[str], where: str) -> list[dict[str, Any]]:
    if not isinstance(rows, list) or not rows:
        raise InvalidRequestError(f"{where} must be a non-empty list of rows")
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise InvalidRequestError(
                f"{where}[{index}] holds {got}; every row holds {len(columns)} values in the "
                f"order {','.join(columns)}"
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


def _check_uniform_types(records: list[dict[str, Any]], names: list[str]) -> None:
    """Refuse a field whose events disagree on its type (polars would coerce true to 1)."""
    for name in names:
        kinds = {type(r.get(name)) for r in records} - {type(None)}
        if len(kinds) > 1 and kinds != {int, float}:
            found = sorted({_JSON_NAMES.get(k, k.__name__) for k in kinds})
            raise InvalidRequestError(
                f"field {name!r} holds {' and '.join(found)} values in different events; "
                "every event must send it with one type"
            )


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


def _csv_frame(body: bytes, signature: dict[str, str]) -> pl.DataFrame:
    names = list(signature)
    text = body.decode("utf-8", errors="replace")
    first = [cell.strip().strip('"') for cell in text.lstrip().split("\n", 1)[0].split(",")]
    has_header = set(names) <= set(first) and len(first) == len(names)
    try:
        frame = pl.read_csv(
            io.BytesIO(body),
            has_header=has_header,
            new_columns=None if has_header else names,
            schema_overrides={n: POLARS_TYPES[t] for n, t in signature.items()},
            infer_schema_length=0,
            truncate_ragged_lines=False,
        )
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        raise InvalidRequestError(
            f"CSV rows must hold {len(names)} values in the order {','.join(names)}: "
            f"{_first_line(exc)}"
        ) from None
    if frame.width != len(names):
        raise InvalidRequestError(
            f"CSV rows hold {frame.width} values; the model expects {len(names)}: "
            + ",".join(names)
        )
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
