from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import polars as pl
import pytest
import sqlalchemy as sa

from shipyard.core.config import Settings
from shipyard.core.errors import ConfigError, DataError, StorageError
from shipyard.pipeline import Workspace
from shipyard.pipeline import validation as validation_module
from shipyard.pipeline.validation import run_validation
from shipyard.scenarios.fraud import FraudScenario
from shipyard.storage import content_hash, get_dataset
from shipyard.storage.schema import datasets, runs
from shipyard.validate import ColumnSpec, Contract, packaged_contract

CONTRACT = Contract(
    name="pay",
    version="2",
    columns=(
        ColumnSpec(name="id", type="string", required=True, unique=True),
        ColumnSpec(name="amount", type="float", min=0),
        ColumnSpec(name="note", type="string"),
    ),
    max_bad_row_share=0.5,
)


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    ws = Workspace.open(settings)
    yield ws
    ws.close()


def parquet(tmp_path: Path, frame: pl.DataFrame, name: str = "in.parquet") -> Path:
    path = tmp_path / name
    frame.write_parquet(path)
    return path


def good_frame() -> pl.DataFrame:
    return pl.DataFrame({"id": ["a", "b", "c", "d"], "amount": [1.0, -1.0, 2.0, 3.0]})


def stored_keys(workspace: Workspace) -> list[str]:
    zones = ("curated", "quarantine", "reports")
    return [key for zone in zones for key in workspace.store.list_keys(zone)]


def test_a_run_writes_split_reports_and_lineage(workspace: Workspace, tmp_path: Path) -> None:
    data = parquet(tmp_path, good_frame())
    local_json, local_html = tmp_path / "out" / "r.json", tmp_path / "out" / "r.html"

    run = run_validation(workspace, CONTRACT, data, report_json=local_json, report_html=local_html)

    assert run.passed
    prefix = f"reports/validation/{run.run_id}"
    assert sorted(stored_keys(workspace)) == sorted(
        [
            f"curated/pay/{run.run_id}.parquet/part-00000.parquet",
            f"quarantine/pay/{run.run_id}.parquet/part-00000.parquet",
            f"{prefix}/constraint_violations.json",
            f"{prefix}/report.html",
            f"{prefix}/report.json",
        ]
    )
    curated = pl.read_parquet(workspace.store.path(f"curated/pay/{run.run_id}.parquet"))
    assert run.outputs["curated"] == workspace.store.url(f"curated/pay/{run.run_id}.parquet")
    assert curated["id"].to_list() == ["a", "c", "d"]
    report = json.loads(workspace.store.get_bytes(f"{prefix}/report.json"))
    assert report == json.loads(local_json.read_text())
    assert report["rows_quarantined"] == 1 and report["engine"] == "polars"
    assert local_html.read_text().startswith("<!DOCTYPE html>")
    violations = json.loads(workspace.store.get_bytes(f"{prefix}/constraint_violations.json"))
    assert [v["feature_name"] for v in violations["violations"]] == ["amount", "note"]

    source = get_dataset(workspace.meta, run.input_dataset_id)
    assert (source.zone, source.rows, source.uri) == ("external", 4, data.resolve().as_uri())
    assert run.curated_dataset_id is not None
    for dataset_id in (run.curated_dataset_id, run.quarantine_dataset_id):
        info = get_dataset(workspace.meta, dataset_id)
        assert info.parents == [run.input_dataset_id] and info.run_id == run.run_id
    with workspace.meta.reading() as connection:
        details = connection.execute(
            sa.select(datasets.c.details).where(datasets.c.id == run.curated_dataset_id)
        ).scalar_one()
        status = connection.execute(
            sa.select(runs.c.status).where(runs.c.id == run.run_id)
        ).scalar_one()
    assert details["contract"] == "pay@2" and details["run"] == run.run_id
    assert details["code_version"]
    assert status == "Completed"


def test_the_same_input_is_recorded_once(workspace: Workspace, tmp_path: Path) -> None:
    data = parquet(tmp_path, good_frame())

    first = run_validation(workspace, CONTRACT, data)
    second = run_validation(workspace, CONTRACT, data)

    assert first.input_dataset_id == second.input_dataset_id


def test_a_folder_of_parquet_and_json_lines_are_read(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    parquet(folder, good_frame().head(2), "a.parquet")
    parquet(folder, good_frame().tail(2), "b.parquet")
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"id": "x", "amount": 1}\n{"id": "y", "amount": "oops"}\n')

    from_folder = run_validation(workspace, CONTRACT, folder)
    from_lines = run_validation(workspace, CONTRACT, lines)

    assert from_folder.outcome.rows_in == 4
    assert from_lines.outcome.rows_valid == 1
    quarantine = pl.read_parquet(
        workspace.store.path(f"quarantine/pay/{from_lines.run_id}.parquet")
    )
    assert quarantine["reason_codes"].to_list() == [["amount:type"]]


def test_a_failing_batch_gets_quarantine_and_reports_but_no_curated(
    workspace: Workspace, tmp_path: Path
) -> None:
    frame = pl.DataFrame({"id": ["a", "a", "b"], "amount": [1.0, 1.0, 1.0]})

    run = run_validation(workspace, CONTRACT, parquet(tmp_path, frame))

    assert not run.passed
    assert run.curated_dataset_id is None
    assert not any(key.startswith("curated/") for key in stored_keys(workspace))
    assert f"quarantine/pay/{run.run_id}.parquet/part-00000.parquet" in stored_keys(workspace)


def test_a_failure_after_the_first_write_leaves_nothing_behind(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_json = tmp_path / "r.json"
    real_put = workspace.store.put_bytes

    def flaky_put(key: str, data: bytes) -> str:
        if key.endswith("report.html"):
            raise StorageError("disk full")
        return real_put(key, data)

    monkeypatch.setattr(workspace.store, "put_bytes", flaky_put)

    with pytest.raises(StorageError, match="disk full"):
        run_validation(workspace, CONTRACT, parquet(tmp_path, good_frame()), report_json=local_json)

    assert stored_keys(workspace) == []
    assert not local_json.exists()
    with workspace.meta.reading() as connection:
        assert connection.execute(sa.select(datasets.c.id)).all() == []
        ((status, reason),) = connection.execute(sa.select(runs.c.status, runs.c.failure_reason))
    assert status == "Failed" and "disk full" in reason


def test_a_failure_recording_lineage_removes_the_objects(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = validation_module.record_dataset

    def flaky_record(meta: object, **fields: object) -> object:
        if fields["zone"] == "curated":
            raise StorageError("database gone")
        return real_record(meta, **fields)  # type: ignore[arg-type]

    monkeypatch.setattr(validation_module, "record_dataset", flaky_record)

    with pytest.raises(StorageError):
        run_validation(workspace, CONTRACT, parquet(tmp_path, good_frame()))

    assert stored_keys(workspace) == []
    with workspace.meta.reading() as connection:
        assert connection.execute(sa.select(datasets.c.id)).all() == []


def test_truncated_parquet_is_a_data_error_naming_the_file(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = parquet(tmp_path, good_frame())
    data.write_bytes(data.read_bytes()[:-40])

    with pytest.raises(DataError, match=f"^{data}: not readable as Parquet"):
        run_validation(workspace, CONTRACT, data)

    assert stored_keys(workspace) == []


def test_missing_and_extra_columns(workspace: Workspace, tmp_path: Path) -> None:
    frame = pl.DataFrame({"id": ["a"], "amount": [1.0], "surprise": [1]})

    run = run_validation(workspace, CONTRACT, parquet(tmp_path, frame))

    assert run.outcome.missing_columns == ("note",)
    assert run.outcome.extra_columns == ("surprise",)
    types = {v["constraint_check_type"] for v in run.report["violations"]}
    assert types == {"missing_column_check", "extra_column_check"}
    with pytest.raises(DataError, match="lacks required column\\(s\\) 'id'"):
        run_validation(workspace, CONTRACT, parquet(tmp_path, frame.drop("id"), "b.parquet"))


def test_empty_data_is_validated(workspace: Workspace, tmp_path: Path) -> None:
    empty = pl.DataFrame(schema={"id": pl.String, "amount": pl.Float64})

    run = run_validation(workspace, CONTRACT, parquet(tmp_path, empty))

    assert run.passed and run.outcome.rows_in == 0
    assert get_dataset(workspace.meta, run.input_dataset_id).rows == 0


def test_freshness_uses_the_given_now(workspace: Workspace, tmp_path: Path) -> None:
    contract = Contract.from_dict(
        {
            "name": "f", "version": "1", "freshness": {"column": "at", "max_age_hours": 1},
            "columns": [{"name": "at", "type": "timestamp"}],
        }
    )  # fmt: skip
    frame = pl.DataFrame({"at": [dt.datetime(2026, 1, 1)]})

    run = run_validation(
        workspace, contract, parquet(tmp_path, frame), now=dt.datetime(2026, 1, 1, 3, tzinfo=dt.UTC)
    )

    assert not run.passed
    assert run.report["dataset_checks"]["freshness"]["observed"] == 3.0


def test_inputs_that_are_not_data(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.csv").write_text("a\n1\n")

    with pytest.raises(DataError, match="no such file or folder"):
        run_validation(workspace, CONTRACT, tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="holds no Parquet files"):
        run_validation(workspace, CONTRACT, tmp_path / "empty")
    with pytest.raises(DataError, match="expected a .parquet or .jsonl file"):
        run_validation(workspace, CONTRACT, tmp_path / "x.csv")


def test_unknown_or_missing_engines_are_config_errors(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = parquet(tmp_path, good_frame())
    monkeypatch.setattr(validation_module.importlib.util, "find_spec", lambda name: None)

    with pytest.raises(ConfigError, match="engine 'spark' is not available"):
        run_validation(workspace, CONTRACT, data, engine="spark")
    with pytest.raises(ConfigError, match="unknown validation engine 'duck'"):
        run_validation(workspace, CONTRACT, data, engine="duck")


def test_a_failed_run_leaves_an_existing_local_report_alone(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_json = tmp_path / "r.json"
    local_json.write_text("the user's previous report")
    real_record = validation_module.record_dataset

    def flaky_record(meta: object, **fields: object) -> object:
        if fields["zone"] == "quarantine":
            raise StorageError("database gone")
        return real_record(meta, **fields)  # type: ignore[arg-type]

    monkeypatch.setattr(validation_module, "record_dataset", flaky_record)
    with pytest.raises(StorageError, match="database gone"):
        run_validation(workspace, CONTRACT, parquet(tmp_path, good_frame()), report_json=local_json)
    assert local_json.read_text() == "the user's previous report"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_report_path_that_is_a_folder_is_refused_before_any_work(
    workspace: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="is a folder"):
        run_validation(workspace, CONTRACT, parquet(tmp_path, good_frame()), report_json=tmp_path)
    assert stored_keys(workspace) == []


def test_a_landing_folder_skips_the_drains_undecodable_records(
    workspace: Workspace, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    (landing / "dt=2026-11-01" / "hour=00").mkdir(parents=True)
    (landing / "_undecodable").mkdir()
    good_frame().write_parquet(landing / "dt=2026-11-01" / "hour=00" / "part.parquet")
    pl.DataFrame({"payload": [b"{"], "reason": ["payload:json"]}).write_parquet(
        landing / "_undecodable" / "part.parquet"
    )
    run = run_validation(workspace, CONTRACT, landing)
    assert run.outcome.rows_in == good_frame().height
    assert run.passed


def test_lineage_hashes_are_those_of_the_published_files(
    workspace: Workspace, tmp_path: Path
) -> None:
    run = run_validation(workspace, CONTRACT, parquet(tmp_path, good_frame()))

    assert run.curated_dataset_id is not None
    for zone, dataset_id in (
        ("curated", run.curated_dataset_id),
        ("quarantine", run.quarantine_dataset_id),
    ):
        key = f"{zone}/pay/{run.run_id}.parquet"
        part = f"{key}/part-00000.parquet"
        sha = hashlib.sha256(Path(workspace.store.path(part)).read_bytes()).hexdigest()
        info = get_dataset(workspace.meta, dataset_id)
        assert (info.uri, info.content_hash) == (
            workspace.store.url(key),
            content_hash([(part, sha)]),
        )
        assert info.rows == pl.read_parquet(workspace.store.path(key)).height
    assert staged_files(workspace) == []


def staged_files(workspace: Workspace) -> list[Path]:
    """Anything the engine wrote before publishing (hidden from list_keys by its '.')."""
    return [p for p in Path(workspace.store.root).rglob("*") if p.name.startswith(".")]


def test_a_failure_inside_the_engine_leaves_no_staged_or_published_file(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_validate = validation_module.validate_to_parquet
    seen: list[Path] = []

    def crash_after_writing(*args: object, **kwargs: object) -> object:
        real_validate(*args, **kwargs)  # type: ignore[arg-type]
        seen.extend(Path(str(kwargs[name])) for name in ("valid_path", "quarantine_path"))
        raise StorageError("disk full")

    monkeypatch.setattr(validation_module, "validate_to_parquet", crash_after_writing)

    with pytest.raises(StorageError, match="disk full"):
        run_validation(workspace, CONTRACT, parquet(tmp_path, good_frame()))

    assert len(seen) == 2 and not any(path.exists() for path in seen)
    assert staged_files(workspace) == []
    assert stored_keys(workspace) == []


def test_parquet_that_breaks_midway_is_a_data_error_and_leaves_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "in.parquet"
    frame = pl.DataFrame({"id": [f"id-{i}" for i in range(50_000)], "amount": [1.0] * 50_000})
    frame.write_parquet(path, compression="zstd", row_group_size=10_000)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2_000] = bytes(2_000)  # a damaged page; the footer is intact
    path.write_bytes(bytes(data))

    with pytest.raises(
        DataError, match=f"^{path}: validation stopped midway \\(a corrupt Parquet page"
    ):
        run_validation(workspace, CONTRACT, path)

    assert stored_keys(workspace) == [] and staged_files(workspace) == []


def test_no_raw_value_of_a_sensitive_column_reaches_any_report(
    workspace: Workspace, tmp_path: Path
) -> None:
    events = pl.from_arrow(FraudScenario(seed=5, bad_row_rate=0.05).generate(3_000).events)
    assert isinstance(events, pl.DataFrame)
    row = pl.int_range(pl.len())
    # Card ids that fail the pattern and a duplicated one: the ones a report would show first.
    events = events.with_columns(
        pl.when(row < 5)
        .then(pl.format("CARD-{}", row))
        .otherwise(pl.col("card_id"))
        .alias("card_id")
    )
    contract = packaged_contract("fraud")
    assert contract.column("card_id").sensitive
    local_json, local_html = tmp_path / "r.json", tmp_path / "r.html"

    run = run_validation(
        workspace,
        contract,
        parquet(tmp_path, events),
        report_json=local_json,
        report_html=local_html,
    )

    card_ids = set(events["card_id"].drop_nulls().to_list())
    quarantine = pl.read_parquet(
        workspace.store.path(f"quarantine/fraud-events/{run.run_id}.parquet")
    )
    assert {"CARD-0", "CARD-4"} <= set(quarantine["card_id"])  # the data does hold them
    assert run.outcome.check_counts["card_id:pattern"] == 5
    reports = [Path(workspace.store.path(k)) for k in workspace.store.list_keys("reports")]
    assert len(reports) == 3
    for report in [*reports, local_json, local_html]:
        text = report.read_text()
        leaked = [card for card in card_ids if card in text]
        assert leaked == [], f"{report.name} shows card ids {leaked[:3]}"


@pytest.fixture(scope="module")
def spark_session() -> Iterator[object]:
    from pyspark.sql import SparkSession

    from shipyard.validate.spark_engine import get_spark

    existing = SparkSession.getActiveSession()
    session = get_spark()
    yield session
    if existing is None:
        session.stop()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
def test_the_spark_engine_publishes_folders_of_parts_that_match_polars(
    workspace: Workspace, tmp_path: Path, spark_session: object
) -> None:
    events = pl.from_arrow(FraudScenario(seed=6, bad_row_rate=0.05).generate(3_000).events)
    assert isinstance(events, pl.DataFrame)
    data = parquet(tmp_path, pl.concat([events, events.slice(10, 3)]))
    contract = packaged_contract("fraud")

    by_polars = run_validation(workspace, contract, data)
    by_spark = run_validation(workspace, contract, data, engine="spark")

    assert by_spark.passed and by_polars.passed
    assert by_spark.outcome.check_counts == by_polars.outcome.check_counts
    assert by_spark.outcome.check_counts["event_id:unique"] == 6
    assert by_spark.report["engine"] == "spark"
    assert by_spark.input_dataset_id == by_polars.input_dataset_id
    for zone in ("curated", "quarantine"):
        key = f"{zone}/fraud-events/{by_spark.run_id}.parquet"
        folder = Path(workspace.store.path(key))
        parts = sorted(folder.iterdir())
        assert parts and all(p.name.startswith("part-") and p.suffix == ".parquet" for p in parts)
        written = pl.read_parquet(parts)
        expected = pl.read_parquet(
            workspace.store.path(f"{zone}/fraud-events/{by_polars.run_id}.parquet")
        )
        if zone == "curated":  # Spark keeps microseconds
            written = written.with_columns(pl.col("event_time").dt.cast_time_unit("ms"))
        assert written.equals(expected)
        dataset_id = by_spark.curated_dataset_id if zone == "curated" else None
        dataset_id = dataset_id or by_spark.quarantine_dataset_id
        info = get_dataset(workspace.meta, dataset_id)
        shas = [(f"{key}/{p.name}", hashlib.sha256(p.read_bytes()).hexdigest()) for p in parts]
        assert (info.uri, info.content_hash) == (workspace.store.url(key), content_hash(shas))
    assert staged_files(workspace) == []


@pytest.fixture
def s3_workspace(tmp_path: Path, s3_endpoint: str) -> Iterator[Workspace]:
    """A workspace whose object store is S3 (moto's server on loopback)."""
    ws = Workspace.open(Settings(home=tmp_path / "home", store_url="s3://shipyard-test/home"))
    try:
        yield ws
    finally:
        ws.close()


def test_a_run_on_s3_uploads_the_split_with_its_hashes(
    s3_workspace: Workspace, tmp_path: Path
) -> None:
    run = run_validation(s3_workspace, CONTRACT, parquet(tmp_path, good_frame()))

    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket="shipyard-test", Prefix="home/")
    keys = sorted(item["Key"].removeprefix("home/") for item in listed["Contents"])
    prefix = f"reports/validation/{run.run_id}"
    assert keys == sorted(
        [
            f"curated/pay/{run.run_id}.parquet/part-00000.parquet",
            f"quarantine/pay/{run.run_id}.parquet/part-00000.parquet",
            f"{prefix}/constraint_violations.json",
            f"{prefix}/report.html",
            f"{prefix}/report.json",
        ]
    )
    assert run.curated_dataset_id is not None
    key = f"curated/pay/{run.run_id}.parquet/part-00000.parquet"
    body = s3.get_object(Bucket="shipyard-test", Key=f"home/{key}")["Body"].read()
    assert pl.read_parquet(io.BytesIO(body))["id"].to_list() == ["a", "c", "d"]
    info = get_dataset(s3_workspace.meta, run.curated_dataset_id)
    assert info.content_hash == content_hash([(key, hashlib.sha256(body).hexdigest())])
    assert info.uri == f"s3://shipyard-test/home/curated/pay/{run.run_id}.parquet"
    assert list(Path(tempfile.gettempdir()).glob(f"shipyard-{run.run_id}-*")) == []
