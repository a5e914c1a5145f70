"""Bulk JetStream I/O for the NATS stream: publish a batch with its acks, read a range.

Both run on a ``NatsLink``'s event loop. Publishing sends every record back to back with its
own reply subject and waits for all the acks at once (one round trip per batch, not per
record). Reading creates an ephemeral pull consumer at the start sequence and pulls chunks
bounded by count and bytes; each delivery's reply subject carries its stream sequence and
timestamp, so records need no headers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from nats.aio.msg import Msg

from shipyard.core.errors import StorageError
from shipyard.ingest._nats_link import (
    CONSUMER_NOT_FOUND,
    STREAM_NOT_FOUND,
    JetStreamError,
    NatsLink,
)
from shipyard.ingest._shardlog import RecordBatch

ACK_TIMEOUT_S = 30.0
READ_CHUNK_RECORDS = 20_000
READ_CHUNK_BYTES = 8 * 1024 * 1024
# A pull that delivers nothing for this long is over: return what came (a shorter batch).
READ_STALL_S = 5.0
# Ephemeral consumers of a process killed mid-read vanish after this long.
_CONSUMER_IDLE_NS = 30 * 1_000_000_000
_log = logging.getLogger("shipyard.ingest.nats_stream")


@dataclass
class _PendingPut:
    left: int
    done: asyncio.Future[None]
    sequences: list[int]


class Publisher:
    """Publishes a put's records back to back; one inbox subscription collects every ack."""

    def __init__(self, link: NatsLink) -> None:
        self._link = link
        self._inbox = ""
        self._pending: dict[str, _PendingPut] = {}
        self._ids = itertools.count()

    async def start(self) -> None:
        self._inbox = self._link.nc.new_inbox()
        await self._link.nc.subscribe(
            f"{self._inbox}.>", cb=self._on_ack, pending_msgs_limit=0, pending_bytes_limit=0
        )

    async def publish(self, subjects: list[str], payloads: list[bytes]) -> list[int]:
        """The JetStream sequences of the published records, in input order."""
        put_id, nc = str(next(self._ids)), self._link.nc
        put = _PendingPut(len(payloads), asyncio.get_running_loop().create_future(),
                          [0] * len(payloads))  # fmt: skip
        self._pending[put_id] = put
        reply = f"{self._inbox}.{put_id}."
        try:
            for index, (subject, payload) in enumerate(zip(subjects, payloads, strict=True)):
                await nc.publish(subject, payload, reply=reply + str(index))
            await asyncio.wait_for(put.done, ACK_TIMEOUT_S)
        except TimeoutError:
            raise StorageError(
                f"JetStream at {self._link.target.shown} acknowledged only "
                f"{len(payloads) - put.left} of {len(payloads)} records within "
                f"{ACK_TIMEOUT_S:g} s; none is reported delivered"
            ) from None
        finally:
            del self._pending[put_id]
        return put.sequences

    async def _on_ack(self, msg: Msg) -> None:
        put_id, _, index = msg.subject[len(self._inbox) + 1 :].partition(".")
        put = self._pending.get(put_id)
        if put is None or put.done.done():
            return  # a put that already failed or gave up
        status = msg.headers.get("Status") if msg.headers else None
        ack = {} if status else orjson.loads(msg.data)
        if "seq" not in ack:
            problem = ack.get("error", ack) if ack else f"status {status}: no stream took it"
            put.done.set_exception(StorageError(
                f"JetStream at {self._link.target.shown} refused a record ({problem}); "
                "none of the batch is reported delivered"
            ))  # fmt: skip
            return
        put.sequences[int(index)] = int(ack["seq"])
        put.left -= 1
        if put.left == 0:
            put.done.set_result(None)


class _PullRead:
    """Collects one read's deliveries; ``expect`` arms a future per pull request."""

    def __init__(self, shard: int) -> None:
        self.batch = RecordBatch(shard, [], [], [])
        self._left = self._bytes_left = 0
        self._done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def expect(self, count: int, max_bytes: int) -> asyncio.Future[bool]:
        """A future that says, once the request is over, whether more records may follow."""
        self._left, self._bytes_left = count, max_bytes
        self._done = asyncio.get_running_loop().create_future()
        return self._done

    async def on_msg(self, msg: Msg) -> None:
        reply = msg.reply
        if not reply:  # a status ends the request
            self._on_status(msg.headers or {})
            return
        tokens = reply.split(".")
        # $JS.ACK.<stream>.<consumer>.<delivered>.<seq>.<cseq>.<ns>.<pending>, or the newer
        # form with domain and account hash after $JS.ACK.
        at = 5 if len(tokens) == 9 else 7
        self.batch.sequences.append(int(tokens[at]) - 1)
        self.batch.arrival_ms.append(int(tokens[at + 2]) // 1_000_000)
        self.batch.payloads.append(msg.data)
        self._left -= 1
        # The server counts subject + reply + payload against max_bytes, and ends a request
        # whose bytes run out exactly without any status: count them the same way.
        self._bytes_left -= len(msg.subject) + len(reply) + len(msg.data)
        if (self._left <= 0 or self._bytes_left <= 0) and not self._done.done():
            self._done.set_result(True)

    def _on_status(self, headers: dict[str, str]) -> None:
        if self._done.done():
            return
        status, text = headers.get("Status", ""), " ".join(map(str, headers.values()))
        if status in ("404", "408"):  # no more records
            self._done.set_result(False)
        elif status == "409" and ("MaxBytes" in text or "Batch Completed" in text):
            self._done.set_result(True)
        else:
            self._done.set_exception(StorageError(f"JetStream ended a read: {headers}"))


async def read_range(
    link: NatsLink, stream: str, shard: int, from_sequence: int, max_records: int
) -> RecordBatch:
    """Records of ``stream`` from shard sequence ``from_sequence`` (or the first held) on."""
    created = await _ephemeral_consumer(
        link, stream, {"deliver_policy": "by_start_sequence", "opt_start_seq": from_sequence + 1}
    )
    consumer, reader = created["name"], _PullRead(shard)
    wanted = min(max_records, int(created["num_pending"]))
    try:
        if wanted > 0:
            await _pull(link, stream, consumer, reader, wanted)
    finally:
        await _delete_consumer(link, stream, consumer)
    batch = reader.batch
    if len(batch) > wanted:  # a request ended early by our count may still have delivered
        del batch.sequences[wanted:], batch.arrival_ms[wanted:], batch.payloads[wanted:]
    return batch


async def _pull(link: NatsLink, stream: str, consumer: str, reader: _PullRead, wanted: int) -> None:
    inbox = link.nc.new_inbox()
    sub = await link.nc.subscribe(
        inbox, cb=reader.on_msg, pending_msgs_limit=0, pending_bytes_limit=0
    )
    chunk_bytes = READ_CHUNK_BYTES
    try:
        while len(reader.batch) < wanted:
            before = len(reader.batch)
            count = min(READ_CHUNK_RECORDS, wanted - before)
            done = reader.expect(count, chunk_bytes)
            request = {"batch": count, "no_wait": True, "max_bytes": chunk_bytes}
            subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
            await link.nc.publish(subject, orjson.dumps(request), reply=inbox)
            if not await _settled(done, reader, stream):
                break  # fewer than counted: trimmed meanwhile, or the pull stalled
            if len(reader.batch) == before:  # the next record alone is bigger than the chunk
                chunk_bytes *= 2
    finally:
        await sub.unsubscribe()


async def _settled(done: asyncio.Future[bool], reader: _PullRead, stream: str) -> bool:
    """Wait for a pull request to end, as long as records keep coming."""
    seen = -1
    while True:
        try:
            return await asyncio.wait_for(asyncio.shield(done), READ_STALL_S)
        except TimeoutError:
            if len(reader.batch) == seen:
                done.cancel()
                _log.warning("a read of %s stalled after %d records; returning those", stream, seen)
                return False
            seen = len(reader.batch)


async def first_since(link: NatsLink, stream: str, cutoff_ms: int) -> int:
    """The first JetStream sequence stored at or after ``cutoff_ms`` (last + 1 if none)."""
    start = datetime.fromtimestamp(max(cutoff_ms, 0) / 1000, tz=UTC)
    created = await _ephemeral_consumer(
        link,
        stream,
        {
            "deliver_policy": "by_start_time",
            "opt_start_time": start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    )
    await _delete_consumer(link, stream, created["name"])
    return int(created["delivered"]["stream_seq"]) + 1


async def delete_stream(link: NatsLink, stream: str) -> None:
    """Delete a JetStream stream; one that is already gone is fine."""
    try:
        await link.api(f"STREAM.DELETE.{stream}")
    except JetStreamError as exc:
        if exc.err_code != STREAM_NOT_FOUND:
            raise


async def _ephemeral_consumer(
    link: NatsLink, stream: str, start: dict[str, object]
) -> dict[str, Any]:
    config = {**start, "ack_policy": "none", "mem_storage": True, "num_replicas": 1,
              "inactive_threshold": _CONSUMER_IDLE_NS}  # fmt: skip
    try:
        body = {"stream_name": stream, "config": config}
        return await link.api(f"CONSUMER.CREATE.{stream}", body)
    except JetStreamError as exc:
        if exc.err_code == STREAM_NOT_FOUND:
            raise StorageError(
                f"JetStream stream {stream} is missing on {link.target.shown}; "
                "the stream was deleted or damaged"
            ) from None
        raise


async def _delete_consumer(link: NatsLink, stream: str, consumer: str) -> None:
    try:
        await link.api(f"CONSUMER.DELETE.{stream}.{consumer}")
    except JetStreamError as exc:
        if exc.err_code not in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND):
            raise
