"""Benchmark: durable HTTP ingest and draining to Parquet, against pipelined Redis XADD.

Goals (issue 3): >= 50,000 events/s of durable ingest over loopback HTTP in batches of 500,
>= 200,000 events/s draining to Parquet; the same records written with pipelined XADD to the
local Redis (127.0.0.1:6379) in the same run, and Shipyard's rate printed as a ratio of it.

    .venv/bin/python bench/ingest.py [--events 200000] [--connections 4] [--stream-url URL]

``--stream-url nats://127.0.0.1:4222`` (or redis://) runs the server on that backend instead of
the embedded log; the goals are the embedded log's, none is set for external backends.

The Redis client lives in a separate, git-ignored venv (.bench-venv) that this script makes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx
import orjson
from _peers import peer_python

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--stream-url", default="embedded", help="SHIPYARD_STREAM_URL to test")
    args = parser.parse_args()
    url = args.stream_url

    from shipyard.scenarios.fraud import FraudScenario

    events = FraudScenario(seed=1).generate(args.events).events.to_pylist()
    bodies = [
        orjson.dumps(
            {"Records": [{"Data": e, "PartitionKey": e["card_id"]} for e in events[i : i + BATCH]]}
        )
        for i in range(0, len(events), BATCH)
    ]
    payload_mb = sum(len(b) for b in bodies) / 1e6
    print(
        f"{len(events):,} fraud events in {len(bodies)} PutRecords batches of {BATCH} "
        f"({payload_mb:.0f} MB of JSON)"
    )

    with tempfile.TemporaryDirectory(prefix="shipyard-bench-ingest-") as home:
        try:
            ingest_rate = _shipyard_ingest(home, bodies, args.connections, url)
            drain_rate = _shipyard_drain(home, len(events), url)
        finally:
            _delete_bench_stream(home, url)
    redis_rate = _redis_xadd(events)

    print()
    how = "fsync per batch" if url == "embedded" else url.split(":")[0]
    print(
        f"{'shipyard HTTP ingest (' + how + '):':<40}{ingest_rate:>10,.0f} events/s"
        f"{_goal(ingest_rate, 50_000, url)}"
    )
    print(
        f"shipyard drain to Parquet:              {drain_rate:>10,.0f} events/s"
        f"{_goal(drain_rate, 200_000, url)}"
    )
    if redis_rate:
        print(f"redis pipelined XADD (no fsync):        {redis_rate:>10,.0f} events/s")
        print(f"shipyard ingest / redis XADD:           {ingest_rate / redis_rate:>10.2f}x")
    return 0


def _goal(rate: float, goal: int, stream_url: str) -> str:
    if stream_url != "embedded":
        return ""  # issue 3 sets its goals for the embedded log only
    return f" (goal >= {goal:,}: {'met' if rate >= goal else 'MISSED'})"


def _shipyard_ingest(home: str, bodies: list[bytes], connections: int, stream_url: str) -> float:
    """Start a real server in its own process and post every batch over keep-alive HTTP."""
    script = textwrap.dedent(
        """
        import sys
        from shipyard.core.config import Settings
        from shipyard.pipeline import BackgroundServer, Workspace
        ws = Workspace.open(Settings(home=sys.argv[1], stream_url=sys.argv[2]))
        with BackgroundServer(ws) as server:
            print(server.url, flush=True)
            sys.stdin.read()
        ws.close()
        """
    )
    server = subprocess.Popen(
        [sys.executable, "-c", script, home, stream_url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None and server.stdin is not None
    url = server.stdout.readline().strip()
    try:
        created = httpx.post(f"{url}/api/v1/streams", json={"StreamName": "bench", "ShardCount": 2})
        created.raise_for_status()
        failures: list[int] = []
        lock = threading.Lock()
        queue = list(reversed(bodies))

        def sender() -> None:
            with httpx.Client(timeout=60) as client:
                while True:
                    with lock:
                        if not queue:
                            return
                        body = queue.pop()
                    answer = client.post(
                        f"{url}/streams/bench/records",
                        content=body,
                        headers={"Content-Type": "application/json"},
                    )
                    failed = answer.json()["FailedRecordCount"] if answer.is_success else BATCH
                    if failed:
                        with lock:
                            failures.append(failed)

        started = time.perf_counter()
        threads = [threading.Thread(target=sender) for _ in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        if failures:
            raise SystemExit(f"{sum(failures)} records were not acknowledged")
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    events = len(bodies) * BATCH
    print(
        f"shipyard: {events:,} events acknowledged in {seconds:.2f} s over {connections} "
        "keep-alive connections"
    )
    return events / seconds


def _shipyard_drain(home: str, expected: int, stream_url: str) -> float:
    from shipyard.core.config import Settings
    from shipyard.ingest import drain_to_landing, open_stream
    from shipyard.pipeline.landing import event_landing_schema
    from shipyard.storage import ObjectStore

    settings = Settings(home=Path(home), stream_url=stream_url)
    stream = open_stream(settings, "bench", create=False)
    store = ObjectStore(settings.resolved_store_url)
    started = time.perf_counter()
    result = drain_to_landing(stream, store, schema=event_landing_schema())
    seconds = time.perf_counter() - started
    stream.close()
    if result.records != expected:
        raise SystemExit(f"drained {result.records:,} records, expected {expected:,}")
    print(
        f"shipyard: drained {result.records:,} records into {len(result.files)} Parquet files "
        f"in {seconds:.2f} s"
    )
    return result.records / seconds


def _delete_bench_stream(home: str, stream_url: str) -> None:
    """An external backend keeps the bench stream after the run: remove it."""
    from shipyard.core.config import Settings
    from shipyard.core.errors import NotFoundError
    from shipyard.ingest import stream_store

    if stream_url == "embedded":
        return  # it lives in the temporary home
    store = stream_store(Settings(home=Path(home), stream_url=stream_url))
    try:
        store.delete("bench")
    except NotFoundError:
        pass
    finally:
        store.close()


def _redis_xadd(events: list[dict[str, object]]) -> float | None:
    python = peer_python("redis")
    lines = b"\n".join(orjson.dumps(e) for e in events)
    script = textwrap.dedent(
        f"""
        import sys, time, redis
        lines = sys.stdin.buffer.read().split(b"\\n")
        client = redis.Redis(host="127.0.0.1", port=6379)
        key = "shipyard-bench:{os.getpid()}"
        client.delete(key)
        started = time.perf_counter()
        for i in range(0, len(lines), {BATCH}):
            pipe = client.pipeline(transaction=False)
            for line in lines[i:i + {BATCH}]:
                pipe.xadd(key, {{"data": line}})
            pipe.execute()
        seconds = time.perf_counter() - started
        count = client.xlen(key)
        client.delete(key)
        print(count, seconds)
        """
    )
    done = subprocess.run([str(python), "-c", script], input=lines, capture_output=True, check=True)
    count, seconds = done.stdout.decode().split()
    print(f"redis: {int(count):,} XADDs pipelined in batches of {BATCH} in {float(seconds):.2f} s")
    return int(count) / float(seconds)


if __name__ == "__main__":
    sys.exit(main())
