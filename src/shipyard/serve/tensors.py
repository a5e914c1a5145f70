"""Open Inference Protocol (v2) tensors: an infer request to event rows, scores to a response.

Each input tensor is one signature column (``shape`` ``[n]`` or ``[n, 1]``, row-major
``data``): FP16/FP32/FP64 or an integer type for a number, BOOL for true/false, BYTES for a
string. Data comes as JSON or, with Triton's binary tensor extension (what ``tritonclient``
sends by default), as raw little-endian bytes after a JSON header whose length is in the
``Inference-Header-Content-Length`` header. A tensor has no null, so NaN in a number tensor
means a missing value (as XGBoost reads it); infinity is refused. The answer is one FP64 tensor
named after the model's output, as JSON or as binary when the request asks for it.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import polars as pl

from shipyard.core.errors import InvalidRequestError
from shipyard.serve.codecs import POLARS_TYPES, check_finite

HEADER_LENGTH = "Inference-Header-Content-Length"
NUMERIC_TYPES = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}
SIGNATURE_TYPES = {"float": "FP64", "bool": "BOOL", "string": "BYTES"}
_ACCEPTED = {
    "float": tuple(NUMERIC_TYPES),
    "bool": ("BOOL",),
    "string": ("BYTES",),
}
_NON_FINITE = re.compile(rb"\b(NaN|Infinity)\b")
_KIND_NAMES = {"float": "a number", "bool": "true or false", "string": "a string"}


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    rows: int
    values: list[Any] | np.ndarray  # flattened, row-major


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: tuple[InputTensor, ...]
    outputs: dict[str, bool | None] | None  # requested name -> binary_data; None = all
    binary_output: bool  # the request's binary_data_output, for outputs that do not say

    def is_binary(self, output: str) -> bool:
        flag = (self.outputs or {}).get(output)
        return self.binary_output if flag is None else flag


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Split the JSON header from the binary section and read every tensor's values."""
    binary = b""
    if header_length is not None:
        if not header_length.strip().isdigit() or not 0 < int(header_length) <= len(body):
            raise InvalidRequestError(
                f"{HEADER_LENGTH} is {header_length!r}; it must be the JSON header's length, "
                f"between 1 and the body's {len(body)} bytes"
            )
        body, binary = body[: int(header_length)], body[int(header_length) :]
    if not body.strip():
        raise InvalidRequestError("the request body is empty; send an inference request")
    payload = _parse_json(body)
    if not isinstance(payload, dict):
        raise InvalidRequestError("the inference request must be a JSON object with 'inputs'")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequestError(f"'id' must be a string, got {_json_type(request_id)}")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError("'inputs' must be a non-empty list of input tensors")
    reader = _BinaryReader(binary)
    tensors = tuple(_input_tensor(item, index, reader) for index, item in enumerate(inputs))
    reader.check_consumed()
    parameters = _parameters(payload, "the request")
    return InferRequest(
        id=request_id,
        inputs=tensors,
        outputs=_requested_outputs(payload.get("outputs")),
        binary_output=parameters.get("binary_data_output") is True,
    )


def tensors_frame(inputs: tuple[InputTensor, ...], signature: dict[str, str]) -> pl.DataFrame:
    """One column per signature field, refusing unknown, missing or mistyped inputs."""
    names = [tensor.name for tensor in inputs]
    unknown = [n for n in names if n not in signature]
    if unknown:
        raise InvalidRequestError(
            f"input(s) {', '.join(unknown)} are not read by the model; its inputs: "
            + ", ".join(signature)
        )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidRequestError(f"input(s) {', '.join(duplicated)} are sent more than once")
    missing = [n for n in signature if n not in names]
    if missing:
        raise InvalidRequestError(f"the request lacks input(s) {', '.join(missing)}")
    counts = {tensor.rows for tensor in inputs}
    if len(counts) != 1:
        raise InvalidRequestError(
            "inputs hold different numbers of rows: "
            + ", ".join(f"{t.name}={t.rows}" for t in inputs)
        )
    columns = [_column(tensor, signature[tensor.name]) for tensor in inputs]
    frame = pl.DataFrame(columns)
    if frame.height == 0:
        raise InvalidRequestError("the inputs hold no rows; send at least one")
    check_finite(frame, signature)
    return frame


def encode_infer_response(
    scores: np.ndarray,
    *,
    model_name: str,
    model_version: str,
    output_name: str,
    request: InferRequest,
    parameters: dict[str, Any],
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers (binary when the request asks for it)."""
    values = np.ascontiguousarray(scores, dtype="<f8")
    output: dict[str, Any] = {"name": output_name, "datatype": "FP64", "shape": [len(values)]}
    binary = request.is_binary(output_name)
    if binary:
        output["parameters"] = {"binary_data_size": values.nbytes}
    else:
        output["data"] = values
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "parameters": parameters,
        "outputs": [output],
    }
    if request.id is not None:
        response["id"] = request.id
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return header, {"content-type": "application/json"}
    return header + values.tobytes(), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    if _NON_FINITE.search(body):
        # tritonclient writes a missing FP value (numpy's NaN) as the bare token NaN.
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            pass
    raise InvalidRequestError(f"the inference request is not valid JSON: {error}")


def _input_tensor(item: Any, index: int, reader: _BinaryReader) -> InputTensor:
    where = f"inputs[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidRequestError(f"{where} must be an object with a string 'name'")
    name = item["name"]
    datatype = item.get("datatype")
    if datatype not in NUMERIC_TYPES and datatype not in ("BOOL", "BYTES"):
        known = ", ".join([*NUMERIC_TYPES, "BOOL", "BYTES"])
        raise InvalidRequestError(f"input {name!r} has datatype {datatype!r}; use one of {known}")
    rows = _rows_of(item.get("shape"), name)
    parameters = _parameters(item, f"input {name!r}")
    size = parameters.get("binary_data_size")
    values: list[Any] | np.ndarray
    if size is not None:
        if "data" in item:
            raise InvalidRequestError(f"input {name!r} has both 'data' and binary_data_size")
        values = reader.read(name, datatype, rows, size)
    elif "data" in item:
        values = _flatten(item["data"], name)
        if len(values) != rows:
            raise InvalidRequestError(
                f"input {name!r} has shape [{rows}] but holds {len(values)} values"
            )
    else:
        raise InvalidRequestError(f"input {name!r} has no 'data' (nor binary_data_size)")
    return InputTensor(name, datatype, rows, values)


def _rows_of(shape: Any, name: str) -> int:
    valid = (
        isinstance(shape, list)
        and len(shape) in (1, 2)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        and (len(shape) == 1 or shape[1] == 1)
    )
    if not valid:
        raise InvalidRequestError(
            f"input {name!r} has shape {shape!r}; each input is one column: [n] or [n, 1]"
        )
    return int(shape[0])


def _parameters(item: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidRequestError(f"'parameters' of {where} must be an object")
    size = parameters.get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidRequestError(f"binary_data_size of {where} must be a whole number >= 0")
    return parameters


def _requested_outputs(outputs: Any) -> dict[str, bool | None] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidRequestError("'outputs' must be a list of objects with a string 'name'")
    requested: dict[str, bool | None] = {}
    for output in outputs:
        flag = _parameters(output, f"output {output['name']!r}").get("binary_data")
        requested[output["name"]] = flag if isinstance(flag, bool) else None
    return requested


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                if len(stack) > 2:
                    raise InvalidRequestError(f"input {name!r} nests its data too deeply")
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _column(tensor: InputTensor, kind: str) -> pl.Series:
    if tensor.datatype not in _ACCEPTED[kind]:
        raise InvalidRequestError(
            f"input {tensor.name!r} is {tensor.datatype}; the model reads it as "
            f"{SIGNATURE_TYPES[kind]} ({_KIND_NAMES[kind]})"
        )
    values = tensor.values
    if isinstance(values, np.ndarray):
        if kind == "float":
            values = values.astype(np.float64)
    else:
        for index, value in enumerate(values):
            if value is not None and not _fits(value, tensor.datatype):
                raise InvalidRequestError(
                    f"input {tensor.name!r} ({tensor.datatype}) holds {_json_type(value)} "
                    f"{value!r} at index {index}"
                )
    series = pl.Series(tensor.name, values, dtype=POLARS_TYPES[kind])
    # A tensor has no null: NaN is how a missing number travels (and what XGBoost reads as
    # missing). Infinity stays, for check_finite to refuse.
    return series.fill_nan(None) if kind == "float" else series


def _fits(value: Any, datatype: str) -> bool:
    if datatype == "BOOL":
        return isinstance(value, bool)
    if datatype == "BYTES":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if datatype.startswith("FP"):
        return True
    info = np.iinfo(np.dtype(NUMERIC_TYPES[datatype]))
    return isinstance(value, int) and info.min <= value <= info.max


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", str: "a string", dict: "an object", list: "a list"}
    return names.get(type(value), "a number")


class _BinaryReader:
    """Reads each binary input's bytes, in input order, from the section after the header."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def read(self, name: str, datatype: str, rows: int, size: int) -> np.ndarray:
        chunk = self._data[self._offset : self._offset + size]
        if len(chunk) != size:
            raise InvalidRequestError(
                f"input {name!r} declares {size} binary bytes; only {len(chunk)} remain"
            )
        self._offset += size
        if datatype == "BYTES":
            return _byte_strings(chunk, name, rows)
        itemsize = 1 if datatype == "BOOL" else np.dtype(NUMERIC_TYPES[datatype]).itemsize
        if size != rows * itemsize:
            raise InvalidRequestError(
                f"input {name!r} has shape [{rows}] of {datatype} ({rows * itemsize} bytes), "
                f"but declares {size} binary bytes"
            )
        if datatype == "BOOL":
            raw = np.frombuffer(chunk, dtype=np.uint8)
            if (raw > 1).any():
                raise InvalidRequestError(f"input {name!r} (BOOL) holds bytes other than 0 or 1")
            return raw.astype(bool)
        return np.frombuffer(chunk, dtype=NUMERIC_TYPES[datatype])

    def check_consumed(self) -> None:
        left = len(self._data) - self._offset
        if left:
            raise InvalidRequestError(
                f"{left} binary bytes follow the inputs' data; binary_data_size must cover "
                "the whole binary section"
            )


def _byte_strings(chunk: bytes, name: str, rows: int) -> np.ndarray:
    values: list[str] = []
    offset = 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise InvalidRequestError(f"input {name!r} (BYTES) ends inside a length prefix")
        (length,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        if offset + length > len(chunk):
            raise InvalidRequestError(f"input {name!r} (BYTES) ends inside element {len(values)}")
        try:
            values.append(chunk[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequestError(
                f"input {name!r} element {len(values)} is not UTF-8 text"
            ) from None
        offset += length
    if len(values) != rows:
        raise InvalidRequestError(
            f"input {name!r} has shape [{rows}] but holds {len(values)} values"
        )
    return np.array(values, dtype=object)
