"""Captured requests read back as a table: JSON and base64 sections, lists and JSON lines."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from shipyard.core.errors import DataError
from shipyard.monitor.captured import INFERENCE_TIME, read_captured_inputs
from shipyard.storage import ObjectStore


def _record(data: str, encoding: str, when: str) -> bytes:
    section = {"observedContentType": "application/json", "mode": "INPUT", "data": data,
               "encoding": encoding}  # fmt: skip
    output = {**section, "mode": "OUTPUT", "data": "0.1"}
    return orjson.dumps(
        {
            "captureData": {"endpointInput": section, "endpointOutput": output},
            "eventMetadata": {"eventId": "e", "inferenceTime": when},
            "eventVersion": "0",
        }
    )


def test_every_event_of_every_captured_request_becomes_a_row(tmp_path: Path) -> None:
    store = ObjectStore(f"file://{tmp_path}")
    one = orjson.dumps({"amount": 1.5, "channel": "web"}).decode()
    many = orjson.dumps([{"amount": 2, "channel": "pos"}, {"amount": 3, "channel": "pos"}])
    lines = b'{"amount": 4, "channel": "atm"}\n{"amount": 5, "channel": "atm"}'
    records = [
        _record(one, "JSON", "2026-11-01T10:00:00.000Z"),
        _record(base64.b64encode(many).decode(), "BASE64", "2026-11-01T10:00:01.000Z"),
        _record(base64.b64encode(lines).decode(), "BASE64", "2026-11-01T10:00:02.000Z"),
        _record("a,b,c", "CSV", "2026-11-01T10:00:03.000Z"),  # no names: nothing to check
    ]
    store.put_bytes("capture/fraud/AllTraffic/2026/11/01/10/a.jsonl", b"\n".join(records))
    store.put_bytes("capture/other/AllTraffic/2026/11/01/10/b.jsonl", records[0])

    frame = read_captured_inputs(store, "capture:fraud")
    assert frame["amount"].to_list() == [1.5, 2, 3, 4, 5]
    assert frame["channel"].to_list() == ["web", "pos", "pos", "atm", "atm"]
    assert frame[INFERENCE_TIME].to_list()[0] == "2026-11-01T10:00:00.000Z"
    assert read_captured_inputs(store, "capture:fraud/AllTraffic").height == 5
    assert read_captured_inputs(store, "capture:other").height == 1


def test_no_capture_or_a_bad_name_is_a_one_line_data_error(tmp_path: Path) -> None:
    store = ObjectStore(f"file://{tmp_path}")
    with pytest.raises(DataError, match="no captured requests under capture/fraud/"):
        read_captured_inputs(store, "capture:fraud")
    with pytest.raises(DataError, match="must read capture:ENDPOINT"):
        read_captured_inputs(store, "capture:a/b/c")
    store.put_bytes("capture/fraud/AllTraffic/x.jsonl", b"not json\n")
    with pytest.raises(DataError, match="not a capture record"):
        read_captured_inputs(store, "capture:fraud")
