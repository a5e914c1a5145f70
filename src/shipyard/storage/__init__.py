"""Object store and metadata database backends (embedded by default, S3/PostgreSQL at scale)."""

from __future__ import annotations

from shipyard.storage.catalog import (
    DatasetInfo,
    code_version,
    content_hash,
    finish_run,
    get_dataset,
    list_datasets,
    new_id,
    record_dataset,
    start_run,
)
from shipyard.storage.metadata import (
    MetadataStore,
    insert_if_absent,
    list_events,
    record_event,
    utcnow,
)
from shipyard.storage.objectstore import ObjectStore, sha256_hex

__all__ = [
    "DatasetInfo",
    "MetadataStore",
    "ObjectStore",
    "code_version",
    "content_hash",
    "finish_run",
    "get_dataset",
    "insert_if_absent",
    "list_datasets",
    "list_events",
    "new_id",
    "record_dataset",
    "record_event",
    "sha256_hex",
    "start_run",
    "utcnow",
]
