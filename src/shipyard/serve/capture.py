"""Data capture: sampled requests and responses as SageMaker capture JSONL in the object store.

The request path only draws the sample and appends references (the raw body, the scores) to a
bounded buffer (never blocks; a full buffer counts a dropped record). A background writer wakes
every ``drain_s``, redacts sensitive fields, encodes the batch, and writes files under
``{destination}/{endpoint}/{variant}/YYYY/MM/DD/HH/`` once a file holds ``flush_bytes`` or its
oldest record is ``flush_age_s`` old. Files appear whole (the store writes atomically).

Sensitive fields (``card_id``) are replaced by a salted sha256 before anything is written:
equal values still join (the same card hashes the same), the clear value never leaves memory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from shipyard.serve.endpoint_config import DataCaptureConfig
from shipyard.storage import ObjectStore


@dataclass(frozen=True)
class CapturePolicy:
    """Deployment-wide capture settings: which fields are sensitive, and the salt hashing them."""

    sensitive_fields: frozenset[str] = frozenset()
    salt: bytes = b""
    queue_records: int = 10_000
    flush_bytes: int = 4 * 1024 * 1024
    flush_age_s: float = 5.0
    drain_s: float = 0.1


@dataclass(frozen=True)
class Payload:
    """A request as it arrived, for capture: raw body and headers."""

    body: bytes
    content_type: str | None
    accept: str | None = None
    inference_id: str | None = None


@dataclass(frozen=True)
class CaptureItem:
    endpoint: str
    variant: str
    config: DataCaptureConfig
    at_s: float
    event_id: str
    input_body: bytes | None
    input_type: str | None
    input_columns: tuple[str, ...]  # CSV column order, to find sensitive columns
    output: Callable[[], tuple[bytes, str]] | None
    inference_id: str | None = None


@dataclass
class CaptureStats:
    captured: int = 0
    dropped: int = 0
    files: int = 0
    errors: int = 0


@dataclass
class _Buffer:
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    opened_s: float = 0.0


class _Clock:
    """Formats capture timestamps, reusing the text of the last second and hour seen: a
    batch's records mostly share them, and ``strftime`` per record was a tenth of the cost."""

    def __init__(self) -> None:
        self._second = -1
        self._second_text = ""
        self._hour = -1
        self._hour_text = ""

    def inference_time(self, at_s: float) -> str:
        second = int(at_s)
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC)
            self._second, self._second_text = second, f"{moment:%Y-%m-%dT%H:%M:%S}"
        return f"{self._second_text}.{int((at_s - second) * 1000):03d}Z"

    def hour_folder(self, at_s: float) -> str:
        hour = int(at_s) // 3600
        if hour != self._hour:
            moment = datetime.fromtimestamp(hour * 3600, UTC)
            self._hour, self._hour_text = hour, f"{moment:%Y/%m/%d/%H}"
        return self._hour_text


class CaptureWriter:
    """Owns the capture buffer and the one background thread that writes it out.

    The request path appends to a deque and returns: no lock, no condition variable, no
    wake-up. The writer wakes on its own every ``drain_s`` and encodes what accumulated in one
    go; waking it per record made the serving thread hand the GIL over once per request,
    which cost more throughput than the encoding itself.
    """

    def __init__(self, store: ObjectStore, policy: CapturePolicy) -> None:
        self.store = store
        self.policy = policy
        self.stats: dict[tuple[str, str], CaptureStats] = {}
        self._pending: deque[CaptureItem] = deque()
        self._buffers: dict[str, _Buffer] = {}
        self._rng = random.Random()
        self._lock = threading.Lock()  # held while encoding or writing; flush() takes it too
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._clock = _Clock()

    def sampled(self, config: DataCaptureConfig) -> bool:
        return config.enabled and self._rng.random() * 100.0 < config.sampling_percentage

    def offer(self, item: CaptureItem) -> bool:
        """Queue ``item`` without waiting; False (and a dropped count) when the buffer is full.

        The length check and the append are not one atomic step, so threads offering at the
        same instant may overshoot ``queue_records`` by at most their number.
        """
        if self._thread is None:
            self._start()
        if len(self._pending) >= self.policy.queue_records:
            self._stats(item.endpoint, item.variant).dropped += 1
            return False
        self._pending.append(item)
        return True

    def flush(self) -> None:
        """Write everything queued so far (tests, shutdown, an endpoint's deletion)."""
        with self._lock:
            self._drain()
            for key in list(self._buffers):
                self._write(key)

    def close(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    # background -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._stopping.clear()
                    self._thread = threading.Thread(
                        target=self._run, name="capture-writer", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        tick_s = min(self.policy.drain_s, self.policy.flush_age_s / 2)
        while not self._stopping.wait(tick_s):
            with self._lock:
                self._drain()
                self._flush_aged()

    def _drain(self) -> None:
        # What is there now, not until empty: under a flood, aged files must still be written.
        pending = self._pending
        for _ in range(len(pending)):
            item = pending.popleft()
            try:
                self._append(item)
            except Exception:  # a record that cannot be encoded must not stop the writer
                self._stats(item.endpoint, item.variant).errors += 1

    def _append(self, item: CaptureItem) -> None:
        line = orjson.dumps(self._record(item)) + b"\n"
        folder = f"{item.config.destination}/{item.endpoint}/{item.variant}/"
        folder += self._clock.hour_folder(item.at_s)
        buffer = self._buffers.get(folder)
        if buffer is None:
            buffer = self._buffers[folder] = _Buffer(opened_s=time.monotonic())
        buffer.lines.append(line)
        buffer.size += len(line)
        self._stats(item.endpoint, item.variant).captured += 1
        if buffer.size >= self.policy.flush_bytes:
            self._write(folder)

    def _flush_aged(self) -> None:
        now = time.monotonic()
        for folder, buffer in list(self._buffers.items()):
            if now - buffer.opened_s >= self.policy.flush_age_s:
                self._write(folder)

    def _write(self, folder: str) -> None:
        buffer = self._buffers.pop(folder, None)
        if buffer is None or not buffer.lines:
            return
        name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.jsonl"
        endpoint, variant = folder.split("/")[-6:-4]
        try:
            self.store.put_bytes(f"{folder}/{name}", b"".join(buffer.lines))
            self._stats(endpoint, variant).files += 1
        except Exception:  # the store is down: count the loss, keep serving
            self._stats(endpoint, variant).errors += len(buffer.lines)

    def _record(self, item: CaptureItem) -> dict[str, Any]:
        capture: dict[str, Any] = {}
        config = item.config
        if config.capture_input and item.input_body is not None:
            body = self._redact(item.input_body, item.input_type, item.input_columns)
            capture["endpointInput"] = _section(body, item.input_type, "INPUT", config)
        if config.capture_output and item.output is not None:
            body, media = item.output()
            capture["endpointOutput"] = _section(body, media, "OUTPUT", config)
        metadata: dict[str, Any] = {
            "eventId": item.event_id,
            "inferenceTime": self._clock.inference_time(item.at_s),
        }
        if item.inference_id is not None:
            metadata["inferenceId"] = item.inference_id
        return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}

    def _redact(self, body: bytes, content_type: str | None, columns: tuple[str, ...]) -> bytes:
        sensitive = self.policy.sensitive_fields
        if not sensitive:
            return body
        media = _media(content_type)
        if media == "text/csv":
            return _redact_csv(body, [i for i, c in enumerate(columns) if c in sensitive], self)
        try:
            if media in ("application/jsonlines", "application/x-ndjson", "application/jsonl"):
                return b"\n".join(
                    orjson.dumps(_redact_json(orjson.loads(line), sensitive, self.hash))
                    for line in body.splitlines()
                    if line.strip()
                )
            return orjson.dumps(_redact_json(orjson.loads(body), sensitive, self.hash))
        except orjson.JSONDecodeError:
            # Unreadable, so unredactable: keep nothing rather than risk a value in clear.
            return b""

    def hash(self, value: Any) -> str:
        digest = hashlib.sha256(self.policy.salt + str(value).encode()).hexdigest()
        return f"sha256:{digest[:32]}"

    def counters(self, endpoint: str, variant: str) -> CaptureStats:
        """The live counters of ``endpoint``'s ``variant``, created at zero if new."""
        return self._stats(endpoint, variant)

    def _stats(self, endpoint: str, variant: str) -> CaptureStats:
        key = (endpoint, variant)
        found = self.stats.get(key)
        if found is None:
            found = self.stats.setdefault(key, CaptureStats())
        return found


def _section(body: bytes, content_type: str | None, mode: str, config: DataCaptureConfig) -> Any:
    media = _media(content_type)
    if media in config.csv_content_types:
        encoding, data = "CSV", body.decode("utf-8", "replace")
    elif media in config.json_content_types:
        encoding, data = "JSON", body.decode("utf-8", "replace")
    else:
        encoding, data = "BASE64", base64.b64encode(body).decode()
    return {
        "observedContentType": content_type or "",
        "mode": mode,
        "data": data,
        "encoding": encoding,
    }


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _redact_json(value: Any, sensitive: frozenset[str], hash_: Callable[[Any], str]) -> Any:
    if isinstance(value, dict):
        columns = value.get("columns")
        if isinstance(columns, list) and isinstance(value.get("data"), list):
            # MLflow's dataframe_split: values sit by position under "data".
            hidden = [i for i, c in enumerate(columns) if c in sensitive]
            value = {**value, "data": [_hide_positions(r, hidden, hash_) for r in value["data"]]}
        return {
            k: (hash_(v) if k in sensitive and v is not None else _redact_json(v, sensitive, hash_))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(v, sensitive, hash_) for v in value]
    return value


def _hide_positions(row: Any, positions: list[int], hash_: Callable[[Any], str]) -> Any:
    if not isinstance(row, list) or not positions:
        return row
    return [hash_(v) if i in positions else v for i, v in enumerate(row)]


def _redact_csv(body: bytes, positions: list[int], writer: CaptureWriter) -> bytes:
    if not positions:
        return body
    lines = []
    for line in body.decode("utf-8", "replace").splitlines():
        cells = line.split(",")
        lines.append(",".join(writer.hash(c) if i in positions else c for i, c in enumerate(cells)))
    return "\n".join(lines).encode()


_EVENT_IDS = random.Random()  # seeded from the OS once per process (so per worker)
os.register_at_fork(after_in_child=_EVENT_IDS.seed)  # a forked child must not repeat ids
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version (4) and variant (RFC 4122) bits
_NOT_VERSION = ~((0xF000 << 64) | (0xC000 << 48))


def new_event_id() -> str:
    """A random (version 4) UUID as text, for a record's ``eventId``.

    Not ``uuid.uuid4()``: it reads ``os.urandom`` on the request path, a system call that was
    most of capture's per-request cost. An event id must be unique, not unguessable.
    """
    text = f"{(_EVENT_IDS.getrandbits(128) & _NOT_VERSION) | _VERSION_4:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
