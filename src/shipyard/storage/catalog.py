"""Runs and datasets: what was produced, from what, by which run (lineage)."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shipyard._version import __version__
from shipyard.core.errors import NotFoundError
from shipyard.storage.metadata import MetadataStore, record_event, utcnow
from shipyard.storage.schema import datasets, runs


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    name: str
    zone: str
    uri: str
    content_hash: str
    rows: int
    parents: list[str]
    run_id: str | None


@cache
def code_version() -> str:
    """Shipyard's version, plus the git commit when running from a checkout."""
    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}" if commit else __version__


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def start_run(meta: MetadataStore, kind: str, params: dict[str, Any] | None = None) -> str:
    run_id = new_id(kind)
    with meta.transaction() as connection:
        connection.execute(
            runs.insert().values(
                id=run_id,
                kind=kind,
                status="InProgress",
                params=params or {},
                outputs={},
                code_version=code_version(),
                started_at=utcnow(),
            )
        )
        record_event(
            connection, entity_kind="run", entity_id=run_id, action="start", to_state="InProgress"
        )
    return run_id


def finish_run(
    meta: MetadataStore,
    run_id: str,
    *,
    outputs: dict[str, Any] | None = None,
    failure: str | None = None,
) -> None:
    status = "Failed" if failure else "Completed"
    with meta.transaction() as connection:
        connection.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(status=status, outputs=outputs or {}, ended_at=utcnow(), failure_reason=failure)
        )
        record_event(
            connection,
            entity_kind="run",
            entity_id=run_id,
            action="finish",
            from_state="InProgress",
            to_state=status,
            reason=failure or "",
        )


def content_hash(parts: Sequence[tuple[str, str]]) -> str:
    """A dataset's hash from its (key, sha256) parts, independent of listing order."""
    digest = hashlib.sha256()
    for key, sha in sorted(parts):
        digest.update(f"{key}\0{sha}\n".encode())
    return digest.hexdigest()


def record_dataset(
    meta: MetadataStore,
    *,
    name: str,
    zone: str,
    uri: str,
    content_hash: str,
    rows: int,
    parents: Sequence[str] = (),
    run_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> DatasetInfo:
    dataset_id = new_id("ds")
    with meta.transaction() as connection:
        connection.execute(
            datasets.insert().values(
                id=dataset_id,
                name=name,
                zone=zone,
                uri=uri,
                content_hash=content_hash,
                rows=rows,
                parents=list(parents),
                run_id=run_id,
                details=details or {},
                created_at=utcnow(),
            )
        )
        record_event(
            connection,
            entity_kind="dataset",
            entity_id=dataset_id,
            action="create",
            to_state=zone,
            details={"name": name, "rows": rows, "parents": list(parents)},
        )
    return DatasetInfo(dataset_id, name, zone, uri, content_hash, rows, list(parents), run_id)


def get_dataset(meta: MetadataStore, dataset_id: str) -> DatasetInfo:
    with meta.reading() as connection:
        row = connection.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
    if row is None:
        raise NotFoundError(
            f"no dataset {dataset_id!r} in the catalog; `shipyard datasets` lists them"
        )
    return _dataset(row._mapping)


def list_datasets(meta: MetadataStore, *, limit: int | None = None) -> list[DatasetInfo]:
    """Datasets, newest first."""
    query = sa.select(datasets).order_by(datasets.c.created_at.desc(), datasets.c.id)
    if limit is not None:
        query = query.limit(limit)
    with meta.reading() as connection:
        return [_dataset(row._mapping) for row in connection.execute(query)]


def _dataset(m: Any) -> DatasetInfo:
    return DatasetInfo(
        m["id"],
        m["name"],
        m["zone"],
        m["uri"],
        m["content_hash"],
        m["rows"],
        list(m["parents"]),
        m["run_id"],
    )
