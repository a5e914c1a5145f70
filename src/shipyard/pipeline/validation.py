"""The validation job: read a dataset, validate it against a contract, store the split and reports.

Outputs of run ``RUN`` for contract ``NAME``, all in the workspace's object store::

    curated/NAME/RUN.parquet                     valid rows, typed (only when the batch passes)
    quarantine/NAME/RUN.parquet                  failing raw rows with reason codes
    reports/validation/RUN/report.json           counts, dataset checks, timings, violations
    reports/validation/RUN/report.html           the same as one self-contained page
    reports/validation/RUN/constraint_violations.json   SageMaker Model Monitor's format

A batch that fails its thresholds still gets its quarantine and reports, but no curated
output: a failed batch must not feed training. Nothing is left half-written: if any step fails,
what this run wrote is deleted and the run is marked Failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from shipyard.core.errors import ConfigError, DataError
from shipyard.pipeline.workspace import Workspace
from shipyard.storage import (
    code_version,
    content_hash,
    finish_run,
    record_dataset,
    record_event,
    start_run,
)
from shipyard.storage.schema import datasets
from shipyard.validate import (
    Contract,
    ValidationOutcome,
    build_report,
    constraint_violations,
    render_html,
    validate_frame,
)

ENGINES = ("polars", "spark")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class ValidationRun:
    """What one validation run produced: the outcome, its stored outputs and their lineage."""

    run_id: str
    outcome: ValidationOutcome
    report: dict[str, Any]
    input_dataset_id: str
    quarantine_dataset_id: str
    curated_dataset_id: str | None
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome.passed


def run_validation(
    workspace: Workspace,
    contract: Contract,
    data: str | Path,
    *,
    engine: str = "polars",
    report_json: str | Path | None = None,
    report_html: str | Path | None = None,
    now: datetime | None = None,
) -> ValidationRun:
    """Validate ``data`` (Parquet file or folder, or JSON lines) and store split and reports."""
    validate = _engine(engine, now)
    files = _input_files(Path(data))
    for target in (report_json, report_html):
        if target is not None and Path(target).is_dir():
            raise DataError(f"{target}: is a folder; give a file path for the report")
    run_id = start_run(
        workspace.meta,
        "validate",
        {"contract": f"{contract.name}@{contract.version}", "data": str(data), "engine": engine},
    )
    job = _Job(workspace, run_id)
    try:
        result = job.run(contract, Path(data), files, engine, validate, report_json, report_html)
    except BaseException as exc:
        try:
            job.undo()
        finally:
            finish_run(workspace.meta, run_id, failure=f"{type(exc).__name__}: {exc}")
        raise
    finish_run(
        workspace.meta,
        run_id,
        outputs={"passed": result.passed, **result.outputs},
    )
    return result


_Validate = Callable[[Contract, Path, list[Path]], ValidationOutcome]


def _engine(engine: str, now: datetime | None) -> _Validate:
    if engine == "polars":
        return lambda contract, _path, files: validate_frame(contract, read_data(files), now=now)
    if engine != "spark":
        raise ConfigError(f"unknown validation engine {engine!r}; choose one of {ENGINES}")
    if importlib.util.find_spec("shipyard.validate.spark_engine") is None:
        raise ConfigError(
            "validation engine 'spark' is not available in this build "
            "(no shipyard.validate.spark_engine); use --engine polars"
        )
    try:
        module = importlib.import_module("shipyard.validate.spark_engine")
    except ImportError as exc:
        raise ConfigError(f"validation engine 'spark' cannot be loaded: {exc}") from exc
    spark_validate: Callable[..., ValidationOutcome] = module.validate_spark

    def validate_with_spark(contract: Contract, path: Path, files: list[Path]) -> ValidationOutcome:
        if any(f.suffix not in _PARQUET_SUFFIXES for f in files):
            raise DataError(f"{path}: the spark engine reads Parquet only; use --engine polars")
        return spark_validate(contract, str(path), now=now)

    return validate_with_spark


def _input_files(data: Path) -> list[Path]:
    """The files behind ``data``: itself, or the Parquet files under a folder."""
    if data.is_dir():
        # Parts starting with "_" or "." are not data: the drain's _undecodable/ records,
        # temporary files of writes in progress.
        files = sorted(
            p
            for p in data.rglob("*")
            if p.suffix in _PARQUET_SUFFIXES
            and p.is_file()
            and not any(part.startswith(("_", ".")) for part in p.relative_to(data).parts)
        )
        if not files:
            raise DataError(f"{data}: the folder holds no Parquet files (*.parquet)")
        return files
    if not data.is_file():
        raise DataError(f"{data}: no such file or folder")
    if data.suffix not in _PARQUET_SUFFIXES + _JSONL_SUFFIXES:
        raise DataError(f"{data}: expected a .parquet or .jsonl file, or a folder of Parquet files")
    return [data]


def read_data(files: list[Path]) -> pl.DataFrame:
    """Read Parquet or JSON-lines files into one frame; unreadable files raise ``DataError``."""
    frames = [_read_file(path) for path in files]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def _read_file(path: Path) -> pl.DataFrame:
    try:
        if path.suffix in _PARQUET_SUFFIXES:
            return pl.read_parquet(path)
        if path.stat().st_size == 0:
            return pl.DataFrame()
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        kind = "Parquet" if path.suffix in _PARQUET_SUFFIXES else "JSON lines"
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(
            f"{path}: not readable as {kind} (truncated or corrupt?): {problem}"
        ) from None


class _Job:
    """One run's steps, remembering every object and record it wrote so it can undo them."""

    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self.ws = workspace
        self.run_id = run_id
        self.keys: list[str] = []
        self.local_files: list[Path] = []
        self.timings_s: dict[str, float] = {}

    def run(
        self,
        contract: Contract,
        data: Path,
        files: list[Path],
        engine: str,
        validate: _Validate,
        report_json: str | Path | None,
        report_html: str | Path | None,
    ) -> ValidationRun:
        started = time.perf_counter()
        outcome = validate(contract, data, files)
        self.timings_s["read_and_validate"] = time.perf_counter() - started
        input_id = self._record_input(data, files, outcome.rows_in)
        started = time.perf_counter()
        prefix = f"{contract.name}/{self.run_id}.parquet"
        stored: dict[str, tuple[str, str]] = {}  # zone -> (key, sha256)
        stored["quarantine"] = self._put_parquet(f"quarantine/{prefix}", outcome.quarantine)
        if outcome.passed:
            stored["curated"] = self._put_parquet(f"curated/{prefix}", outcome.valid)
        outputs = {zone: self.ws.store.url(key) for zone, (key, _) in stored.items()}
        reports = f"reports/validation/{self.run_id}"
        for name in ("report.json", "report.html", "constraint_violations.json"):
            outputs[name] = self.ws.store.url(f"{reports}/{name}")
        self.timings_s["write"] = time.perf_counter() - started
        report = build_report(outcome, engine=engine, timings_s=self.timings_s, outputs=outputs)
        violations = json.dumps(constraint_violations(outcome), indent=2).encode()
        report_bytes = json.dumps(report, indent=2).encode()
        html_bytes = render_html(report, outcome.valid, contract).encode()
        self._put(f"{reports}/constraint_violations.json", violations)
        self._put(f"{reports}/report.json", report_bytes)
        self._put(f"{reports}/report.html", html_bytes)
        ids = self._record_outputs(contract, outcome, stored, input_id)
        # Last, so that no later failure has to take back a file the user can see.
        self._write_local(report_json, report_bytes)
        self._write_local(report_html, html_bytes)
        return ValidationRun(
            run_id=self.run_id,
            outcome=outcome,
            report=report,
            input_dataset_id=input_id,
            quarantine_dataset_id=ids["quarantine"],
            curated_dataset_id=ids.get("curated"),
            outputs=outputs,
        )

    def _record_input(self, data: Path, files: list[Path], rows: int) -> str:
        """The input's catalog id: an existing record of the same bytes, or a new one."""
        names = [p.relative_to(data).as_posix() if data.is_dir() else p.name for p in files]
        parts = [(name, _sha(path)) for name, path in zip(names, files, strict=True)]
        digest = content_hash(parts)
        uri, zone = self._input_location(data)
        with self.ws.meta.reading() as connection:
            known = connection.execute(
                sa.select(datasets.c.id)
                .where(datasets.c.uri == uri, datasets.c.content_hash == digest)
                .order_by(datasets.c.created_at)
            ).first()
        if known is not None:
            return str(known[0])
        info = record_dataset(
            self.ws.meta,
            name=f"{data.name}/input",
            zone=zone,
            uri=uri,
            content_hash=digest,
            rows=rows,
            run_id=self.run_id,
            details={"files": [str(p) for p in files]},
        )
        return info.id

    def _input_location(self, data: Path) -> tuple[str, str]:
        """(uri, zone): the store URL and top folder when ``data`` is in the store."""
        resolved = data.resolve()
        if self.ws.store.is_local:
            root = Path(self.ws.store.root).resolve()
            if resolved.is_relative_to(root) and resolved != root:
                key = resolved.relative_to(root).as_posix()
                return self.ws.store.url(key), key.split("/", 1)[0]
        return resolved.as_uri(), "external"

    def _put(self, key: str, data: bytes) -> str:
        self.keys.append(key)  # before the write: a failed write may still leave bytes behind
        return self.ws.store.put_bytes(key, data)

    def _put_parquet(self, key: str, frame: pl.DataFrame) -> tuple[str, str]:
        self.keys.append(key)
        return key, self.ws.store.put_parquet(key, frame)

    def _write_local(self, path: str | Path | None, data: bytes) -> None:
        if path is None:
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Temp file and rename: a reader never sees half a report, and a failed write leaves
        # the file that was there before.
        tmp = target.with_name(f".{target.name}.{self.run_id}.tmp")
        self.local_files.append(tmp)
        tmp.write_bytes(data)
        tmp.replace(target)

    def _record_outputs(
        self,
        contract: Contract,
        outcome: ValidationOutcome,
        stored: dict[str, tuple[str, str]],
        input_id: str,
    ) -> dict[str, str]:
        details = {
            "contract": f"{contract.name}@{contract.version}",
            "code_version": code_version(),
            "run": self.run_id,
            "passed": outcome.passed,
        }
        rows = {"curated": outcome.rows_valid, "quarantine": outcome.rows_quarantined}
        ids = {}
        for zone, (key, sha) in stored.items():
            ids[zone] = record_dataset(
                self.ws.meta,
                name=f"{contract.name}/{zone}",
                zone=zone,
                uri=self.ws.store.url(key),
                content_hash=content_hash([(key, sha)]),
                rows=rows[zone],
                parents=[input_id],
                run_id=self.run_id,
                details=details,
            ).id
        return ids

    def undo(self) -> None:
        """Delete every object, local report and dataset record this run wrote (best effort:
        one step failing does not stop the others)."""
        for key in self.keys:
            with contextlib.suppress(Exception):  # e.g. a key the store refused to write
                self.ws.store.delete(key)
        for path in self.local_files:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        with self.ws.meta.transaction() as connection:
            removed = connection.execute(
                datasets.delete().where(datasets.c.run_id == self.run_id).returning(datasets.c.id)
            ).all()
            for (dataset_id,) in removed:
                record_event(
                    connection,
                    entity_kind="dataset",
                    entity_id=str(dataset_id),
                    action="delete",
                    reason=f"validation run {self.run_id} failed; its outputs were removed",
                )


def _sha(path: Path) -> str:
    """The sha256 of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return digest.hexdigest()
