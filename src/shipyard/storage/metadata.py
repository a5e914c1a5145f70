"""The metadata database: one SQLAlchemy engine, migrated to the latest schema on first use."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from shipyard.core.errors import ConfigError, StateError, StorageError
from shipyard.storage.schema import events


def utcnow() -> datetime:
    return datetime.now(UTC)


class MetadataStore:
    """Owns the engine; every write goes through :meth:`transaction`.

    SQLite runs in WAL mode with a busy timeout, so the server, the CLI and background
    workers can share one file. PostgreSQL is used through ``postgresql+psycopg://`` URLs.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            self.engine: Engine = _create_engine(url)
        except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as exc:
            raise ConfigError(f"database URL {redact(url)!r} is not usable: {exc}") from exc
        # On SQLite, writers take the write lock when they begin, so concurrent writers
        # queue on the busy timeout instead of failing with 'database is locked' on upgrade.
        self._writer = self.engine.execution_options(sqlite_immediate=True)
        if migrate:
            self.migrate()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def migrate(self) -> None:
        """Apply every Alembic migration not yet applied (a no-op when up to date)."""
        script_location = str(resources.files("shipyard.storage") / "migrations")
        config = AlembicConfig()
        config.set_main_option("script_location", script_location)
        try:
            with self._writer.begin() as connection:
                if self.engine.dialect.name == "postgresql":
                    # Serialise first-use migrations of several processes on one database.
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7218411)")
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise ConfigError(
                f"cannot reach the metadata database {redact(self.url)}: {_first_line(exc)}"
            ) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction; commits on success, rolls back on error."""
        try:
            with self._writer.begin() as connection:
                yield connection
        except sa.exc.IntegrityError as exc:
            raise StateError(f"conflicting change, not applied: {_first_line(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"metadata database error: {_first_line(exc)}") from exc

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()


def record_event(
    connection: Connection,
    *,
    entity_kind: str,
    entity_id: str,
    action: str,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str = "",
    actor: str = "system",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit event; call it inside the transaction that makes the change."""
    now = time.time()
    connection.execute(
        events.insert().values(
            at=datetime.fromtimestamp(now, UTC),
            at_epoch_s=now,
            entity_kind=entity_kind,
            entity_id=entity_id,
            action=action,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            actor=actor,
            details=details or {},
        )
    )


def insert_if_absent(connection: Connection, table: sa.Table, **values: Any) -> None:
    """Insert a row unless one with the same key exists; concurrent callers both succeed."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        connection.execute(pg_insert(table).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        connection.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing())
    else:
        with connection.begin_nested():
            try:
                connection.execute(table.insert().values(**values))
            except sa.exc.IntegrityError:
                pass


def list_events(
    store: MetadataStore, *, entity_kind: str | None = None, entity_id: str | None = None
) -> list[dict[str, Any]]:
    query = sa.select(events).order_by(events.c.id)
    if entity_kind is not None:
        query = query.where(events.c.entity_kind == entity_kind)
    if entity_id is not None:
        query = query.where(events.c.entity_id == entity_id)
    with store.reading() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def redact(url: str) -> str:
    """The URL with any password replaced, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def _first_line(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__


def _create_engine(url: str) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling defers BEGIN; we emit it ourselves below.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            immediate = connection.get_execution_options().get("sqlite_immediate", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args=_connect_args(parsed))


def _connect_args(parsed: sa.engine.URL) -> dict[str, Any]:
    if parsed.get_backend_name() == "postgresql":
        return {"connect_timeout": 5}
    return {}
