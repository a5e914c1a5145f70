from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.core.errors import ConfigError
from shipyard.storage import (
    MetadataStore,
    content_hash,
    finish_run,
    get_dataset,
    list_events,
    record_dataset,
    start_run,
)

TABLES = {
    "runs",
    "datasets",
    "model_package_groups",
    "model_versions",
    "model_aliases",
    "endpoint_configs",
    "endpoints",
    "events",
    "alembic_version",
}


def _exercise(meta: MetadataStore) -> None:
    run = start_run(meta, "validate", {"contract": "fraud@1"})
    parent = record_dataset(
        meta, name="s/landing", zone="landing", uri="file:///x", content_hash="h", rows=10
    )
    child = record_dataset(
        meta,
        name="s/curated",
        zone="curated",
        uri="file:///y",
        content_hash=content_hash([("k", "sha")]),
        rows=9,
        parents=[parent.id],
        run_id=run,
    )
    finish_run(meta, run, outputs={"curated": child.id})
    assert get_dataset(meta, child.id).parents == [parent.id]
    actions = [(e["entity_kind"], e["action"]) for e in list_events(meta)]
    assert actions == [
        ("run", "start"),
        ("dataset", "create"),
        ("dataset", "create"),
        ("run", "finish"),
    ]


def test_sqlite_is_migrated_on_first_use_in_wal_mode(tmp_path: Path) -> None:
    meta = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    assert TABLES <= set(sa.inspect(meta.engine).get_table_names())
    with meta.reading() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    _exercise(meta)
    MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")  # a second open finds it up to date


@pytest.mark.postgres
def test_postgresql_path(postgres_url: str) -> None:
    meta = MetadataStore(postgres_url)
    assert meta.engine.dialect.name == "postgresql"
    assert TABLES <= set(sa.inspect(meta.engine).get_table_names())
    _exercise(meta)
    meta.dispose()


def test_unreachable_database_is_one_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot reach the metadata database") as caught:
        MetadataStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(caught.value)


def test_content_hash_ignores_listing_order() -> None:
    assert content_hash([("a", "1"), ("b", "2")]) == content_hash([("b", "2"), ("a", "1")])
    assert content_hash([("a", "1")]) != content_hash([("a", "2")])


def test_a_database_url_without_its_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not usable"):
        MetadataStore("mysql://user@127.0.0.1/none")
