"""Metadata tables, as SQLAlchemy Core objects. Migrations in ``migrations/`` create them.

Each layer owns the meaning of its tables: ``datasets`` and ``runs`` (ingest, validate,
train), ``model_*`` (registry), ``endpoint*`` (serve), ``events`` (everyone: the audit log).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("outputs", JSON, nullable=False, default=dict),
    Column("code_version", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("failure_reason", Text),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("zone", String(32), nullable=False),
    Column("uri", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("parents", JSON, nullable=False, default=list),
    Column("run_id", String(64), ForeignKey("runs.id")),
    Column("details", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

model_package_groups = Table(
    "model_package_groups",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("next_version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_name", String(63), ForeignKey("model_package_groups.name"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("framework", String(32), nullable=False),
    Column("framework_version", String(32), nullable=False),
    Column("signature", JSON, nullable=False, default=dict),
    Column("metrics", JSON, nullable=False, default=dict),
    Column("params", JSON, nullable=False, default=dict),
    Column("lineage", JSON, nullable=False, default=dict),
    Column("approval_status", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("group_name", "version", name="uq_model_version"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("group_name", String(63), ForeignKey("model_package_groups.name"), primary_key=True),
    Column("alias", String(63), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

endpoint_configs = Table(
    "endpoint_configs",
    metadata,
    Column("name", String(127), primary_key=True),
    Column("variants", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("config_name", String(127), ForeignKey("endpoint_configs.name"), nullable=False),
    Column("failure_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("at_epoch_s", Float, nullable=False),
    Column("entity_kind", String(32), nullable=False),
    Column("entity_id", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("from_state", String(64)),
    Column("to_state", String(64)),
    Column("reason", Text, nullable=False, default=""),
    Column("actor", String(128), nullable=False, default="system"),
    Column("details", JSON, nullable=False, default=dict),
)
