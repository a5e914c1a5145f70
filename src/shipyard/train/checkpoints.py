"""A job's checkpoints in the object store: ``checkpoints/<job id>/round-000050.<ext>``.

Puts are atomic (a crash never leaves half a checkpoint under its name) and the job record
names the latest one with its sha256, which is checked when it is read back. Only the latest
checkpoint is kept once the record points at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.artifacts import ARTIFACT_NAMES

if TYPE_CHECKING:
    from shipyard.storage import ObjectStore

PREFIX = "checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    round: int
    key: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "key": self.key, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Checkpoint | None:
        if not data:
            return None
        return cls(int(data["round"]), str(data["key"]), str(data["sha256"]))


class CheckpointStore:
    """Checkpoints of one job, in the framework's native format."""

    def __init__(self, store: ObjectStore, job_id: str, framework: str) -> None:
        self.store = store
        self.prefix = f"{PREFIX}/{job_id}"
        self.extension = ARTIFACT_NAMES[framework].rsplit(".", 1)[-1]

    def save(self, round_index: int, data: bytes) -> Checkpoint:
        key = f"{self.prefix}/round-{round_index:06d}.{self.extension}"
        return Checkpoint(round_index, key, self.store.put_bytes(key, data))

    def load(self, checkpoint: Checkpoint) -> bytes:
        """The checkpoint's bytes; ``IntegrityError`` if they are not the ones recorded."""
        return self.store.get_bytes(checkpoint.key, sha256=checkpoint.sha256)

    def discard_all_but(self, latest: Checkpoint) -> None:
        for key in self.store.list_keys(self.prefix):
            if key != latest.key:
                self.store.delete(key)
