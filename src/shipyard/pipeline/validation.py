"""The validation job: read a dataset, validate it against a contract, store the split and reports.

Outputs of run ``RUN`` for contract ``NAME``, all in the workspace's object store::

    curated/NAME/RUN.parquet/part-*.parquet      valid rows, typed (only when the batch passes)
    quarantine/NAME/RUN.parquet/part-*.parquet   failing raw rows with reason codes
    reports/validation/RUN/report.json           counts, dataset checks, timings, violations
    reports/validation/RUN/report.html           the same as one self-contained page
    reports/validation/RUN/constraint_violations.json   SageMaker Model Monitor's format

Each Parquet output is a folder of part files in input order, as both engines write it (the
Spark engine keeps timestamps in microseconds, the Polars engine in milliseconds). The engine
streams the split into folders staged beside their targets, and a rename publishes each one
whole, so the data is never held in memory at once. A batch that fails its
thresholds still gets its quarantine and reports, but no curated output: a failed batch must not
feed training. Nothing is left half-written: if any step fails, what this run wrote is deleted
and the run is marked Failed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import polars as pl
import sqlalchemy as sa

from shipyard.core.errors import ConfigError, DataError, StorageError
from shipyard.pipeline.validation_files import (
    PARQUET_SUFFIXES,
    data_files,
    file_parts,
    files_digest,
    fsync_entry,
    fsync_tree,
    input_files,
    one_line,
    scan_data,
)
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
    ValidationResult,
    WrittenSplit,
    build_report,
    constraint_violations,
    render_html,
    validate_to_parquet,
)

ENGINES = ("polars", "spark")


@dataclass(frozen=True)
class ValidationRun:
    """What one validation run produced: the outcome, its stored outputs and their lineage."""

    run_id: str
    outcome: ValidationResult
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
    files = input_files(Path(data))
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


class _Validate(Protocol):
    """An engine run: validate ``files`` (behind ``data``), writing the split to the two paths."""

    def __call__(
        self, contract: Contract, data: Path, files: list[Path], valid: Path, quarantine: Path
    ) -> WrittenSplit: ...


def _engine(engine: str, now: datetime | None) -> _Validate:
    if engine == "polars":

        def validate_with_polars(
            contract: Contract, data: Path, files: list[Path], valid: Path, quarantine: Path
        ) -> WrittenSplit:
            source = scan_data(files)
            try:
                return validate_to_parquet(
                    contract, source, valid_path=valid, quarantine_path=quarantine, now=now
                )
            except (pl.exceptions.PolarsError, OSError) as exc:
                # The footers were read up front: what fails now is a page that does not
                # decode, or (rarely) writing the split.
                raise DataError(
                    f"{data}: validation stopped midway (a corrupt Parquet page, or no room to "
                    f"write the split?): {one_line(exc)}"
                ) from None

        return validate_with_polars
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
    spark_validate: Callable[..., WrittenSplit] = module.validate_spark_to_parquet

    def validate_with_spark(
        contract: Contract, data: Path, files: list[Path], valid: Path, quarantine: Path
    ) -> WrittenSplit:
        if any(f.suffix not in PARQUET_SUFFIXES for f in files):
            raise DataError(f"{data}: the spark engine reads Parquet only; use --engine polars")
        return spark_validate(
            contract, str(data), valid_path=valid, quarantine_path=quarantine, now=now
        )

    return validate_with_spark


class _Job:
    """One run's steps, remembering every object and record it wrote so it can undo them."""

    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self.ws = workspace
        self.run_id = run_id
        self.keys: list[str] = []
        self.local_files: list[Path] = []
        self.staging: Path | None = None
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
        prefix = f"{contract.name}/{self.run_id}.parquet"
        keys = {"curated": f"curated/{prefix}", "quarantine": f"quarantine/{prefix}"}
        # Hashing releases the GIL: the input is hashed while the engine works, and the
        # published outputs while the reports are rendered.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-hash") as hasher:
            input_digest = hasher.submit(files_digest, data, files)
            split, published = self._split(contract, data, files, validate, keys)
            output_parts = hasher.submit(
                lambda: {zone: file_parts(keys[zone], path) for zone, path in published.items()}
            )
            outputs = {zone: self.ws.store.url(keys[zone]) for zone in published}
            report, report_bytes, html_bytes = self._store_reports(contract, split, engine, outputs)
            result = split.result
            input_id = self._record_input(data, files, result.rows_in, input_digest.result())
            ids = self._record_outputs(contract, result, keys, output_parts.result(), input_id)
        self._remove_staging()
        # Last, so that no later failure has to take back a file the user can see.
        self._write_local(report_json, report_bytes)
        self._write_local(report_html, html_bytes)
        return ValidationRun(
            run_id=self.run_id,
            outcome=result,
            report=report,
            input_dataset_id=input_id,
            quarantine_dataset_id=ids["quarantine"],
            curated_dataset_id=ids.get("curated"),
            outputs=outputs,
        )

    def _split(
        self,
        contract: Contract,
        data: Path,
        files: list[Path],
        validate: _Validate,
        keys: dict[str, str],
    ) -> tuple[WrittenSplit, dict[str, Path]]:
        """Run the engine into staged files, then publish them: where each zone's data now is."""
        staged = {zone: self._stage(key) for zone, key in keys.items()}
        started = time.perf_counter()
        split = validate(contract, data, files, staged["curated"], staged["quarantine"])
        self.timings_s["validate_and_split"] = time.perf_counter() - started
        # A failed batch must not feed training: its valid rows are never published.
        zones = ["quarantine", "curated"] if split.result.passed else ["quarantine"]
        return split, {zone: self._publish(staged[zone], keys[zone]) for zone in zones}

    def _store_reports(
        self, contract: Contract, split: WrittenSplit, engine: str, outputs: dict[str, str]
    ) -> tuple[dict[str, Any], bytes, bytes]:
        """Write report.json, report.html and constraint_violations.json; adds their URLs to
        ``outputs``. Returns the report and the bytes of the JSON and HTML pages."""
        reports = f"reports/validation/{self.run_id}"
        for name in ("report.json", "report.html", "constraint_violations.json"):
            outputs[name] = self.ws.store.url(f"{reports}/{name}")
        report = build_report(
            split.result, engine=engine, timings_s=self.timings_s, outputs=outputs
        )
        report_bytes = json.dumps(report, indent=2).encode()
        html_bytes = render_html(report, split.sample, contract).encode()
        violations = json.dumps(constraint_violations(split.result), indent=2).encode()
        self._put(f"{reports}/constraint_violations.json", violations)
        self._put(f"{reports}/report.json", report_bytes)
        self._put(f"{reports}/report.html", html_bytes)
        return report, report_bytes, html_bytes

    def _stage(self, key: str) -> Path:
        """Where the engine writes ``key``'s data before it is published: beside the target
        in a local store (a rename then publishes it), else in a local temporary folder."""
        if self.staging is None:
            if self.ws.store.is_local:
                root = Path(self.ws.store.root) / f".validation-{self.run_id}"
                root.mkdir(parents=True)
                self.staging = root
            else:
                self.staging = Path(tempfile.mkdtemp(prefix=f"shipyard-{self.run_id}-"))
        return self.staging / key.replace("/", "--")

    def _publish(self, staged: Path, key: str) -> Path:
        """Move a staged folder of part files to ``key``; returns where it now is. Locally one
        rename publishes it whole; on S3 each part is one atomic PUT (``undo`` takes back a
        folder published in part)."""
        self.keys.append(key)  # before the move: a failed move may still leave bytes behind
        if not self.ws.store.is_local:
            for path in data_files(staged):
                part = f"{key}/{path.relative_to(staged).as_posix()}"
                self.ws.store.fs.put_file(str(path), self.ws.store.path(part))
            return staged
        target = Path(self.ws.store.path(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        fsync_tree(staged)
        if target.exists():
            raise StorageError(f"{self.ws.store.url(key)} already exists; run ids are unique")
        os.replace(staged, target)
        fsync_entry(target.parent)  # the rename itself
        return target

    def _remove_staging(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _record_input(self, data: Path, files: list[Path], rows: int, digest: str) -> str:
        """The input's catalog id: an existing record of the same bytes, or a new one."""
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
        result: ValidationResult,
        keys: dict[str, str],
        parts: dict[str, list[tuple[str, str]]],
        input_id: str,
    ) -> dict[str, str]:
        details = {
            "contract": f"{contract.name}@{contract.version}",
            "code_version": code_version(),
            "run": self.run_id,
            "passed": result.passed,
        }
        rows = {"curated": result.rows_valid, "quarantine": result.rows_quarantined}
        ids = {}
        for zone, zone_parts in parts.items():
            ids[zone] = record_dataset(
                self.ws.meta,
                name=f"{contract.name}/{zone}",
                zone=zone,
                uri=self.ws.store.url(keys[zone]),
                content_hash=content_hash(zone_parts),
                rows=rows[zone],
                parents=[input_id],
                run_id=self.run_id,
                details=details,
            ).id
        return ids

    def undo(self) -> None:
        """Delete every object, staged file, local report and dataset record this run wrote
        (best effort: one step failing does not stop the others)."""
        for key in self.keys:
            with contextlib.suppress(Exception):  # e.g. a key the store refused to write
                self.ws.store.delete_prefix(key)
        self._remove_staging()
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
