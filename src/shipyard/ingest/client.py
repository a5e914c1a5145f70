"""`shipyard.ingest.Client`: send events to a Shipyard stream over HTTP, retrying what failed.

Records are batched within PutRecords' limits. A batch answered with per-record errors is
retried with only its failed records, with exponential backoff and jitter; records refused
for a reason that retrying cannot fix are reported, not retried. Delivery is at least once: a
batch whose answer is lost in transit is sent again, so consumers dedupe on ``event_id``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic import SecretStr

from shipyard.core.config import auth_headers
from shipyard.core.errors import InvalidRequestError, NotFoundError
from shipyard.ingest.records import MAX_RECORD_BYTES, MAX_RECORDS, MAX_REQUEST_BYTES

# Per-record codes that a later attempt can succeed with.
RETRYABLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "InternalFailure", "ServiceUnavailable"}
)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Undelivered:
    """An event that could not be delivered, with the last reason given."""

    index: int
    error_code: str
    message: str


@dataclass
class DeliveryReport:
    sent: int = 0
    delivered: int = 0
    attempts: int = 0
    undelivered: list[Undelivered] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.undelivered


class Client:
    """A PutRecords client for one Shipyard server."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        *,
        max_attempts: int = 6,
        backoff_s: float = 0.05,
        max_backoff_s: float = 5.0,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        api_key: SecretStr | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=timeout_s, transport=transport, headers=auth_headers(api_key)
        )

    def put(
        self,
        stream: str,
        events: Iterable[Any],
        *,
        partition_key: str | Callable[[dict[str, Any]], str] = "card_id",
        progress: Callable[[int], None] | None = None,
    ) -> DeliveryReport:
        """Send every event; returns what was delivered and what could not be."""
        key_of = partition_key if callable(partition_key) else _field(partition_key)
        report = DeliveryReport()
        batch: list[tuple[int, dict[str, Any]]] = []
        size = 0
        for index, event in enumerate(events):
            report.sent += 1
            refused = _refusal(event)
            if refused:
                # Refused here, not by the server: one bad event must not sink its batch.
                report.undelivered.append(Undelivered(index, "InvalidArgumentException", refused))
                continue
            entry = {"Data": event, "PartitionKey": str(key_of(event))}
            entry_size = len(orjson.dumps(entry)) + 1
            if batch and (len(batch) == MAX_RECORDS or size + entry_size > _BATCH_BYTES):
                self._send(stream, batch, report, progress)
                batch, size = [], 0
            batch.append((index, entry))
            size += entry_size
        if batch:
            self._send(stream, batch, report, progress)
        return report

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(
        self,
        stream: str,
        batch: list[tuple[int, dict[str, Any]]],
        report: DeliveryReport,
        progress: Callable[[int], None] | None,
    ) -> None:
        pending = batch
        last_error: dict[int, tuple[str, str]] = {}
        retry_after = 0.0
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(max(retry_after, self._delay(attempt)))
            report.attempts += 1
            results, retry_after = self._post(stream, [entry for _, entry in pending])
            if results is None:  # the whole request failed in a retryable way
                last_error = {i: ("RequestFailed", "no answer from the server") for i, _ in pending}
                continue
            retry = []
            for (index, entry), result in zip(pending, results, strict=True):
                code = result.get("ErrorCode")
                if code is None:
                    report.delivered += 1
                    if progress is not None:
                        progress(1)
                elif code in RETRYABLE_CODES:
                    retry.append((index, entry))
                    last_error[index] = (code, result.get("ErrorMessage", ""))
                else:
                    report.undelivered.append(
                        Undelivered(index, code, result.get("ErrorMessage", ""))
                    )
            pending = retry
            if not pending:
                return
        for index, _ in pending:
            code, message = last_error.get(index, ("RequestFailed", "retries exhausted"))
            report.undelivered.append(
                Undelivered(index, code, f"{message} (after {self.max_attempts} attempts)")
            )

    def _post(
        self, stream: str, entries: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]] | None, float]:
        """Per-record results, or None to retry the whole batch; and the server's Retry-After."""
        try:
            response = self._http.post(
                f"{self.url}/streams/{quote(stream, safe='')}/records",
                content=orjson.dumps({"Records": entries}),
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError:
            return None, 0.0
        if response.status_code in RETRYABLE_STATUS:
            return None, _retry_after(response)
        try:
            body = response.json()
        except ValueError:
            raise InvalidRequestError(
                f"{self.url} answered {response.status_code} with a body that is not JSON; "
                "is it a Shipyard server?"
            ) from None
        if response.status_code != 200 or not isinstance(body, dict):
            message = body.get("message", response.text) if isinstance(body, dict) else body
            if isinstance(body, dict) and body.get("__type") == "ResourceNotFoundException":
                raise NotFoundError(str(message))
            raise InvalidRequestError(f"stream {stream!r} refused the batch: {message}")
        results = body.get("Records")
        if not isinstance(results, list) or len(results) != len(entries):
            raise InvalidRequestError(
                f"{self.url} answered {len(entries)} records with a malformed result list"
            )
        return results, 0.0

    def _delay(self, attempt: int) -> float:
        # Full jitter: spreads the retries of many clients after one shared hiccup.
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return random.uniform(0, ceiling)


# Leave headroom under the server's 5 MB limit for the JSON envelope.
_BATCH_BYTES = int(MAX_REQUEST_BYTES * 0.9)


def _refusal(event: Any) -> str:
    """Why the server would refuse ``event`` whatever we do, or "" if it is sendable."""
    if not isinstance(event, dict):
        return f"an event must be a JSON object, got {type(event).__name__}"
    size = len(orjson.dumps(event))
    if size > MAX_RECORD_BYTES:
        return f"the event is {size:,} bytes; a record may hold at most {MAX_RECORD_BYTES:,}"
    return ""


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return min(float(value), 60.0) if value else 0.0
    except ValueError:
        return 0.0


def _field(name: str) -> Callable[[dict[str, Any]], str]:
    def key(event: dict[str, Any]) -> str:
        value = event.get(name) or event.get("event_id") or ""
        return str(value)

    return key
