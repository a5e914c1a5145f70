from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from shipyard.core.errors import DataError, InvalidRequestError, NotFittedError
from shipyard.monitor import DriftDetector, detect_drift, drift_violations, write_drift_outputs
from shipyard.scenarios.fraud import FraudScenario
from shipyard.storage import ObjectStore

RNG = np.random.default_rng(4)


def test_statistics_equal_the_scipy_definitions_evidently_uses() -> None:
    # Unequal sizes, ties, NaN/inf/null to drop, a category only one side has.
    ref_x = np.round(RNG.lognormal(3, 1, 5_003), 1)
    cur_x = np.round(RNG.lognormal(3.1, 1, 4_001), 1)
    cur_with_junk = [*cur_x.tolist(), float("nan"), float("inf"), None]
    ref_c = RNG.choice(["a", "b", "c"], 5_003, p=[0.5, 0.3, 0.2])
    cur_c = RNG.choice(["a", "b", "d"], 4_004, p=[0.4, 0.4, 0.2])
    report = detect_drift(
        pl.DataFrame({"x": ref_x, "c": ref_c}),
        pl.DataFrame({"x": pl.Series(cur_with_junk, dtype=pl.Float64), "c": cur_c[:4_004]}),
    )

    expected_w = wasserstein_distance(ref_x, cur_x) / np.std(ref_x)
    keys = ["a", "b", "c", "d"]
    p = np.array([np.mean(ref_c == k) for k in keys])
    q = np.array([np.mean(cur_c == k) for k in keys])
    x, c = report.column("x"), report.column("c")
    assert (x.method, c.method) == ("wasserstein", "jensenshannon")
    assert x.statistic == pytest.approx(expected_w, rel=1e-9)
    assert c.statistic == pytest.approx(jensenshannon(p, q), rel=1e-9)
    assert x.current_rows == 4_001  # NaN, inf and null are not values


def test_method_follows_evidentlys_rule_for_type_size_and_distinct_values() -> None:
    big = 5_000
    reference = pl.DataFrame(
        {
            "many": RNG.normal(0, 1, big),
            "three_values": RNG.integers(0, 3, big),
            "flag": RNG.random(big) < 0.3,
        }
    )
    current = reference.with_columns(pl.col("many") + 0.5)
    large = detect_drift(reference, current)
    assert [large.column(n).method for n in ("many", "three_values", "flag")] == [
        "wasserstein",
        "jensenshannon",
        "jensenshannon",
    ]
    assert [c.name for c in large.drifted] == ["many"]

    small = detect_drift(reference.head(800), current.head(700))
    many, three, flag = (small.column(n) for n in ("many", "three_values", "flag"))
    assert (many.method, three.method, flag.method) == ("ks", "chisquare", "z")
    assert many.statistic == pytest.approx(
        ks_2samp(reference["many"][:800], current["many"][:700]).pvalue
    )
    ref_counts = np.bincount(reference["three_values"][:800].to_numpy(), minlength=3)
    cur_counts = np.bincount(current["three_values"][:700].to_numpy(), minlength=3)
    expected = chisquare(cur_counts, ref_counts * 700 / 800).pvalue
    assert three.statistic == pytest.approx(expected)
    assert many.drift_detected and many.statistic <= 0.05
    assert not three.drift_detected and three.threshold == 0.05


def test_fraud_drift_is_found_in_the_drifted_columns_only() -> None:
    start = datetime(2026, 11, 3, tzinfo=UTC)
    rows = 20_000
    scenario = FraudScenario(
        seed=2,
        events_per_day=rows,
        start=start,
        drift={"amount": 3.0, "merchant_risk_score": 1.5},
        drift_start=start + timedelta(days=1),
    )
    events = pl.from_arrow(scenario.generate(2 * rows).events)
    assert isinstance(events, pl.DataFrame)

    report = detect_drift(events.head(rows), events.tail(rows))

    assert {c.name for c in report.drifted} == {"amount", "merchant_risk_score"}
    assert not report.dataset_drift and report.share_of_drifted_columns < 0.5
    ids = {"event_id", "event_time", "card_id", "merchant_id"}
    assert {name for name, _ in report.skipped} == ids  # too many distinct values to test
    assert len(report.columns) == 17


def test_dataset_drift_needs_the_drift_share() -> None:
    reference = pl.DataFrame({"a": RNG.normal(0, 1, 3000), "b": RNG.normal(0, 1, 3000)})
    current = reference.with_columns(pl.col("a") + 1)
    assert detect_drift(reference, current).dataset_drift  # 1 of 2 drifted: 0.5 >= 0.5
    assert not detect_drift(reference, current, drift_share=0.6).dataset_drift
    overridden = detect_drift(reference, current, thresholds={"b": 0.0}, drift_share=0.6)
    assert overridden.dataset_drift and overridden.column("b").threshold == 0.0


def test_bad_use_says_what_is_wrong(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [1.0, 2.0, 3.0], "when": [datetime(2026, 1, 1, tzinfo=UTC)] * 3})
    with pytest.raises(NotFittedError, match="call fit"):
        DriftDetector().score(frame)
    with pytest.raises(DataError, match="'zz' not in the reference"):
        DriftDetector(["zz"]).fit(frame)
    with pytest.raises(DataError, match="does not exist"):
        DriftDetector().fit(tmp_path / "missing.parquet")
    with pytest.raises(InvalidRequestError, match="unknown drift method"):
        DriftDetector(methods={"a": "psi2"}).fit(frame)
    with pytest.raises(InvalidRequestError, match="cannot test the categorical"):
        DriftDetector(categorical=["a"], methods={"a": "wasserstein"}).fit(frame)
    fitted = DriftDetector().fit(frame)
    assert fitted.skipped_ == (
        ("when", "dtype Datetime(time_unit='us', time_zone='UTC') is not tested"),
    )
    with pytest.raises(DataError, match="lacks column"):
        fitted.score(pl.DataFrame({"b": [1.0]}))
    with pytest.raises(DataError, match="numerical in the reference"):
        fitted.score(pl.DataFrame({"a": ["x"]}))


def test_paths_file_urls_and_s3_urls_are_read_alike(tmp_path: Path, s3_endpoint: str) -> None:
    reference = pl.DataFrame({"x": RNG.normal(0, 1, 3_000), "c": RNG.choice(["a", "b"], 3_000)})
    current = pl.DataFrame({"x": RNG.normal(0.3, 1, 2_000), "c": RNG.choice(["a", "b"], 2_000)})
    expected = detect_drift(reference, current)
    local = tmp_path / "reference.parquet"
    reference.write_parquet(local)
    lines = tmp_path / "current.jsonl"
    current.write_ndjson(lines)
    boto3.client("s3").put_object(
        Bucket="shipyard-test", Key="ref/reference.parquet", Body=local.read_bytes()
    )
    for source, target in (
        (str(local), lines.as_uri()),
        (local.as_uri(), str(lines)),
        ("s3://shipyard-test/ref/reference.parquet", current),
    ):
        report = detect_drift(source, target)
        assert report.columns == expected.columns, source
    with pytest.raises(DataError, match="cannot read the reference data"):
        detect_drift("s3://shipyard-test/ref/missing.parquet", current)
    with pytest.raises(DataError, match="does not exist"):
        detect_drift((tmp_path / "missing.parquet").as_uri(), current)


def test_reports_are_written_in_model_monitors_shape(tmp_path: Path) -> None:
    reference = pl.DataFrame({"amount": RNG.lognormal(3, 1, 2000), "ch": ["pos", "ecom"] * 1000})
    current = pl.DataFrame({"amount": RNG.lognormal(4, 1, 2000), "ch": ["pos", "ecom"] * 1000})
    report = detect_drift(reference, current)
    store = ObjectStore(f"file://{tmp_path}")

    urls = write_drift_outputs(report, store, "reports/x", extra={"timings_s": {"all": 1.0}})

    document = json.loads((tmp_path / "reports/x/drift_report.json").read_text())
    assert document["number_of_drifted_columns"] == 1 and document["timings_s"] == {"all": 1.0}
    amount = document["columns"][0]
    assert amount["method_label"] == "Wasserstein distance (normed)" and amount["drift_detected"]
    assert math.isclose(sum(amount["distribution"]["reference"]), 1.0, abs_tol=1e-4)
    violations = json.loads((tmp_path / "reports/x/constraint_violations.json").read_text())
    assert violations == drift_violations(report)
    [violation] = violations["violations"]
    assert violation["feature_name"] == "amount"
    assert violation["constraint_check_type"] == "baseline_drift_check"
    assert ">= threshold 0.1" in violation["description"]
    page = (tmp_path / "reports/x/report.html").read_text()
    assert page.count("<svg") == 2 and "<script" not in page
    assert set(urls) == {"drift_report.json", "constraint_violations.json", "report.html"}
