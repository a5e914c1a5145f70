from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

from shipyard.ingest import EmbeddedStream

# Appends batches forever; prints each batch's acknowledgements only after put_records returns.
PRODUCER = textwrap.dedent(
    """
    import sys
    import orjson
    from shipyard.ingest import EmbeddedStream

    stream = EmbeddedStream.create(sys.argv[1], "fraud", shards=2)
    batch = 0
    while True:
        records = [(b"card-%d" % i, b"%d:%d:" % (batch, i) + b"x" * 300) for i in range(500)]
        acks = [[r.shard, r.sequence] for r in stream.put_records(records)]
        sys.stdout.buffer.write(orjson.dumps({"batch": batch, "acks": acks}) + b"\\n")
        sys.stdout.buffer.flush()
        batch += 1
    """
)


def expected_data(batch: int, index: int) -> bytes:
    return b"%d:%d:" % (batch, index) + b"x" * 300


def test_every_acknowledged_record_survives_sigkill(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(15)]
    os.kill(child.pid, signal.SIGKILL)
    rest, errors = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, errors.decode()
    # A line cut short by the kill was never a complete acknowledgement.
    lines += [line for line in rest.splitlines(keepends=True) if line.endswith(b"\n")]
    acks = [orjson.loads(line) for line in lines]
    assert len(acks) >= 15

    with EmbeddedStream.open(tmp_path, "fraud") as stream:
        stored = {
            (shard, record.sequence): record.data
            for shard in range(stream.shard_count)
            for record in stream.read(shard, 0, 1_000_000)
        }
        for ack in acks:
            for index, (shard, sequence) in enumerate(ack["acks"]):
                assert stored[(shard, sequence)] == expected_data(ack["batch"], index)
        for shard in range(stream.shard_count):
            assert sorted(seq for s, seq in stored if s == shard) == list(
                range(stream.end_sequence(shard))
            )
        ends = [stream.end_sequence(shard) for shard in range(stream.shard_count)]
        (after,) = stream.put_records([(b"card-1", b"after the crash")])
        assert after.sequence == ends[after.shard]
        assert stream.read(after.shard, after.sequence, 1)[0].data == b"after the crash"
