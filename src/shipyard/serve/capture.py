"""Data capture: sampled requests and responses as SageMaker capture JSONL in the object store.

The request path only draws the sample and puts a record on a bounded queue (never blocks; a
full queue counts a dropped record). A background writer redacts sensitive fields, encodes,
and writes files under ``{destination}/{endpoint}/{variant}/YYYY/MM/DD/HH/`` once a file holds
``flush_bytes`` or its oldest record is ``flush_age_s`` old.

Sensitive fields (``card_id``) are replaced by a salted sha256 before anything is written:
equal values still join (the same card hashes the same), the clear value never leaves memory.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import random
import threading
import time
import uuid
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


class CaptureWriter:
    """Owns the capture queue and the one background thread that writes it out."""

    def __init__(self, store: ObjectStore, policy: CapturePolicy) -> None:
        self.store = store
        self.policy = policy
        self.stats: dict[tuple[str, str], CaptureStats] = {}
        self._queue: queue.Queue[CaptureItem | None] = queue.Queue(policy.queue_records)
        self._buffers: dict[str, _Buffer] = {}
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def sampled(self, config: DataCaptureConfig) -> bool:
        return config.enabled and self._rng.random() * 100.0 < config.sampling_percentage

    def offer(self, item: CaptureItem) -> bool:
        """Queue ``item`` without waiting; False (and a dropped count) when the queue is full."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._stats(item.endpoint, item.variant).dropped += 1
            return False
        return True

    def flush(self, timeout_s: float = 10.0) -> None:
        """Write everything queued so far (tests, shutdown, an endpoint's deletion)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            for key in list(self._buffers):
                self._write(key)

    def close(self) -> None:
        if self._thread is not None:
            self.flush()
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    # background -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="capture-writer", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        tick_s = min(0.5, self.policy.flush_age_s / 2)
        while True:
            try:
                batch = [self._queue.get(timeout=tick_s)]
            except queue.Empty:
                self._flush_aged()
                continue
            # Take whatever else waits, so the locks are paid once per batch, not per record.
            while len(batch) < 1_000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                for item in batch:
                    if item is None:
                        return
                    try:
                        self._append(item)
                    except Exception:  # a record that cannot be encoded must not stop the writer
                        self._stats(item.endpoint, item.variant).errors += 1
            finally:
                for _ in batch:
                    self._queue.task_done()
            self._flush_aged()

    def _append(self, item: CaptureItem) -> None:
        line = orjson.dumps(self._record(item)) + b"\n"
        moment = datetime.fromtimestamp(item.at_s, UTC)
        folder = f"{item.config.destination}/{item.endpoint}/{item.variant}/{moment:%Y/%m/%d/%H}"
        with self._lock:
            buffer = self._buffers.setdefault(folder, _Buffer(opened_s=time.monotonic()))
            buffer.lines.append(line)
            buffer.size += len(line)
            self._stats(item.endpoint, item.variant).captured += 1
            if buffer.size >= self.policy.flush_bytes:
                self._write(folder)

    def _flush_aged(self) -> None:
        now = time.monotonic()
        with self._lock:
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
            "inferenceTime": datetime.fromtimestamp(item.at_s, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%f"
            )[:-3]
            + "Z",
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


def new_event_id() -> str:
    return str(uuid.uuid4())
