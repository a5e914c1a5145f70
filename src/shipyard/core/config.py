"""Typed settings: environment (SHIPYARD_*) beats defaults; bad values fail loudly."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipyard.core.errors import ConfigError

EMBEDDED = "embedded"


class Settings(BaseSettings):
    """Where Shipyard keeps its state, and which engines back each seam.

    Every field can be set with an environment variable named ``SHIPYARD_<FIELD>``.
    Unset URLs default to embedded engines inside ``home``.
    """

    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".shipyard"), description="folder for all local state")
    store_url: str | None = Field(default=None, description="object store URL (fsspec)")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of metadata")
    stream_url: str = Field(default=EMBEDDED, description="'embedded', nats://, redis://")
    host: str = Field(default="127.0.0.1", description="address the server binds")
    port: int = Field(default=8080, ge=0, le=65535, description="port the server binds")
    drain_flush_records: int = Field(
        default=50_000, ge=1, description="the server lands a stream once this many wait"
    )
    drain_flush_age_s: float = Field(
        default=5.0, gt=0, description="... or once the oldest has waited this long"
    )
    ingest_max_lag_records: int = Field(
        default=2_000_000, ge=1, description="beyond this drain lag, ingest answers 503"
    )
    api_keys: SecretStr | None = Field(
        default=None, description="'KEY:ROLE,...' or '@FILE' (roles invoke, admin); unset = open"
    )
    api_key: SecretStr | None = Field(
        default=None, description="the key this machine's CLI and clients send to a server"
    )
    request_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="a request's body, then its scores, must each come within this",
    )
    workers: int | None = Field(
        default=None, ge=1, le=256, description="inference worker processes (unset: one per core)"
    )
    batch_max_size: int = Field(
        default=64, ge=1, description="most requests one model call scores together"
    )
    batch_max_wait_ms: float = Field(
        default=0.0, ge=0, le=1000, description="longest an idle worker waits for batch-mates"
    )
    autoscale_max_workers: int | None = Field(
        default=None, ge=1, le=256, description="scale workers up to this (unset: fixed count)"
    )
    autoscale_target: float = Field(
        default=30_000, gt=0, description="invocations per worker per minute to track"
    )
    autoscale_out_cooldown_s: float = Field(default=60.0, ge=0, description="between scale-outs")
    autoscale_in_cooldown_s: float = Field(default=300.0, ge=0, description="before a scale-in")

    @property
    def worker_count(self) -> int:
        """Inference workers to start: ``workers``, or one per core."""
        return self.workers or os.cpu_count() or 1

    @cached_property
    def home_path(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_store_url(self) -> str:
        # Not Path.as_uri(): it percent-encodes spaces, and fsspec would take "%20" literally.
        return self.store_url or f"file://{self.home_path / 'objects'}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_path / 'shipyard.db'}"

    @property
    def stream_path(self) -> Path:
        """Folder of the embedded stream's logs (used when ``stream_url`` is embedded)."""
        return self.home_path / "streams"

    def ensure_home(self) -> Path:
        """Create the home folder, or say in one line why it cannot be used."""
        path = self.home_path
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"SHIPYARD_HOME={self.home} cannot be created: {exc.strerror}"
            ) from exc
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"SHIPYARD_HOME={self.home} is not writable; choose another folder")
        return path


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning pydantic's report into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            problems.append(
                f"SHIPYARD_{field.upper()}={error.get('input')!r}: {error['msg'].lower()}"
            )
        raise ConfigError("bad setting: " + "; ".join(problems)) from None


def auth_headers(api_key: SecretStr | None) -> dict[str, str]:
    """The header a client sends to present ``api_key`` (none when no key is configured)."""
    if api_key is None:
        return {}
    return {"Authorization": f"Bearer {api_key.get_secret_value()}"}
