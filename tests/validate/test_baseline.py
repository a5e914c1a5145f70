from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shipyard.core.errors import ContractError, DataError, StorageError
from shipyard.scenarios.fraud import FraudScenario
from shipyard.validate import ColumnSpec, packaged_contract, validate_frame
from shipyard.validate.baseline import (
    Baseline,
    contract_from_baseline,
    infer_baseline,
    write_baseline,
)

DATA = Path(__file__).parent / "data"


def feature(section: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [f for f in section["features"] if f["name"] == name]
    assert len(matches) == 1, name
    return matches[0]


def numerical(baseline: Baseline, name: str) -> dict[str, Any]:
    stats: dict[str, Any] = feature(baseline.statistics, name)["numerical_statistics"]
    return stats


def string_stats(baseline: Baseline, name: str) -> dict[str, Any]:
    stats: dict[str, Any] = feature(baseline.statistics, name)["string_statistics"]
    return stats


# --- statistics -----------------------------------------------------------------------------


def test_statistics_of_a_tiny_frame_are_exact() -> None:
    frame = pl.DataFrame(
        {
            "n": [1, 2, 3, None],
            "x": [0.5, float("nan"), 2.5, -1.0],
            "s": ["a", "b", "a", None],
            "flag": [True, False, True, True],
        }
    )

    baseline = infer_baseline(frame)

    assert baseline.statistics["version"] == 0.0
    assert baseline.statistics["dataset"] == {"item_count": 4}
    assert baseline.item_count == 4
    n = numerical(baseline, "n")
    assert n["common"] == {"num_present": 3, "num_missing": 1}
    assert (n["sum"], n["mean"], n["min"], n["max"]) == (6.0, 2.0, 1.0, 3.0)
    assert n["std_dev"] == pytest.approx(math.sqrt(2 / 3))  # population, as Deequ
    x = numerical(baseline, "x")
    assert x["common"] == {"num_present": 3, "num_missing": 1}  # NaN is missing
    assert (x["sum"], x["min"], x["max"]) == (2.0, -1.0, 2.5)
    assert x["mean"] == pytest.approx(2 / 3)
    s = string_stats(baseline, "s")
    assert s["common"] == {"num_present": 3, "num_missing": 1}
    assert s["distinct_count"] == 2.0 and isinstance(s["distinct_count"], float)
    assert s["distribution"] == {
        "categorical": {"buckets": [{"value": "a", "count": 2}, {"value": "b", "count": 1}]}
    }
    flag = string_stats(baseline, "flag")
    assert flag["distribution"]["categorical"]["buckets"] == [
        {"value": "true", "count": 3},
        {"value": "false", "count": 1},
    ]


def test_statistics_features_have_sagemakers_keys() -> None:
    baseline = infer_baseline(pl.DataFrame({"n": [1, 2], "s": ["a", "b"]}))

    n, s = baseline.statistics["features"]
    assert set(n) == {"name", "inferred_type", "numerical_statistics"}
    assert set(n["numerical_statistics"]) == {
        "common",
        "mean",
        "sum",
        "std_dev",
        "min",
        "max",
        "distribution",
    }
    assert set(n["numerical_statistics"]["distribution"]["kll"]) == {"buckets", "sketch"}
    assert set(s) == {"name", "inferred_type", "string_statistics"}
    assert set(s["string_statistics"]) == {"common", "distinct_count", "distribution"}


def test_kll_buckets_are_ten_equal_widths_from_min_to_max() -> None:
    baseline = infer_baseline(pl.DataFrame({"v": list(range(101))}))

    kll = numerical(baseline, "v")["distribution"]["kll"]
    buckets = kll["buckets"]
    assert [(b["lower_bound"], b["upper_bound"]) for b in buckets] == [
        (10.0 * i, 10.0 * (i + 1)) for i in range(10)
    ]
    # Each bucket is [lower, upper); the last one also holds the max.
    assert [b["count"] for b in buckets] == [10] * 9 + [11]
    assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    assert kll["sketch"]["data"] == [[float(v) for v in range(101)]]


def test_sketch_of_many_values_is_k_sorted_quantiles_from_min_to_max() -> None:
    values = [(i * 7919) % 10_007 for i in range(10_007)]  # 0..10006, shuffled

    sketch = numerical(infer_baseline(pl.DataFrame({"v": values})), "v")["distribution"]["kll"][
        "sketch"
    ]

    (sample,) = sketch["data"]
    assert len(sample) == 2048
    assert sample == sorted(sample)
    assert (sample[0], sample[-1]) == (0.0, 10_006.0)
    assert sample[1024] == pytest.approx(5003, abs=3)


def test_a_constant_column_has_every_value_in_the_last_bucket() -> None:
    kll = numerical(infer_baseline(pl.DataFrame({"c": [5.0, 5.0, 5.0]})), "c")["distribution"][
        "kll"
    ]

    assert {(b["lower_bound"], b["upper_bound"]) for b in kll["buckets"]} == {(5.0, 5.0)}
    assert [b["count"] for b in kll["buckets"]] == [0] * 9 + [3]


def test_infinities_count_as_missing() -> None:
    stats = numerical(infer_baseline(pl.DataFrame({"x": [1.0, float("inf"), 3.0]})), "x")

    assert stats["common"] == {"num_present": 2, "num_missing": 1}
    assert stats["max"] == 3.0


def test_categorical_buckets_keep_the_50_most_frequent_values_ties_by_value() -> None:
    values = [f"v{i:03d}" for i in range(120)] + ["v119"] * 3

    buckets = string_stats(infer_baseline(pl.DataFrame({"s": values})), "s")["distribution"][
        "categorical"
    ]["buckets"]

    assert len(buckets) == 50
    assert buckets[0] == {"value": "v119", "count": 4}
    assert [b["value"] for b in buckets[1:]] == [f"v{i:03d}" for i in range(49)]


# --- inferred types -------------------------------------------------------------------------


def test_inferred_types_follow_the_dtypes() -> None:
    frame = pl.DataFrame(
        {
            "i8": pl.Series([1, 2], dtype=pl.Int8),
            "u32": pl.Series([1, 2], dtype=pl.UInt32),
            "f32": pl.Series([1.5, 2.5], dtype=pl.Float32),
            "dec": pl.Series([Decimal("1.25"), Decimal("2.50")], dtype=pl.Decimal(10, 2)),
            "text": ["a", "b"],
            "flag": [True, False],
            "when": [dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)],
            "day": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
            "cat": pl.Series(["x", "y"], dtype=pl.Categorical),
            "nothing": pl.Series([None, None], dtype=pl.Null),
            "empty_int": pl.Series([None, None], dtype=pl.Int64),
        }
    )

    baseline = infer_baseline(frame)

    assert baseline.feature_types == {
        "i8": "Integral",
        "u32": "Integral",
        "f32": "Fractional",
        "dec": "Fractional",
        "text": "String",
        "flag": "String",
        "when": "String",
        "day": "String",
        "cat": "String",
        "nothing": "Unknown",
        "empty_int": "Unknown",
    }
    assert {f["name"]: f["inferred_type"] for f in baseline.statistics["features"]} == (
        baseline.feature_types
    )
    assert numerical(baseline, "dec")["sum"] == pytest.approx(3.75)
    # Unknown features carry no statistics block and a completeness of 0.
    assert feature(baseline.statistics, "nothing") == {
        "name": "nothing",
        "inferred_type": "Unknown",
    }
    assert feature(baseline.constraints, "empty_int") == {
        "name": "empty_int",
        "inferred_type": "Unknown",
        "completeness": 0.0,
    }


def test_metadata_columns_are_left_out() -> None:
    baseline = infer_baseline(pl.DataFrame({"_offset": [1, 2], "x": [1, 2]}))

    assert list(baseline.feature_types) == ["x"]


def test_lazy_and_eager_frames_give_the_same_baseline() -> None:
    frame = pl.DataFrame({"x": [3.0, 1.0, None], "s": ["b", "a", "b"]})

    assert infer_baseline(frame.lazy()) == infer_baseline(frame)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"x": pl.Series([], dtype=pl.Int64)}), "0 rows"),
        (pl.DataFrame({"_meta": [1]}), "no columns to baseline"),
        (pl.DataFrame({"tags": [[1, 2]]}), "column 'tags' has dtype List"),
        (pl.DataFrame({"blob": [b"\x00"]}), "column 'blob' has dtype Binary"),
    ],
)
def test_unusable_frames_raise_data_error(frame: pl.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=message):
        infer_baseline(frame)


# --- suggested constraints ------------------------------------------------------------------


def test_suggested_constraints() -> None:
    frame = pl.DataFrame(
        {
            "count": [0, 1, 2, 3] * 10,
            "delta": [-1.0, 1.0, 2.0, 3.0] * 10,
            "maybe": [1.0, None, None, None] * 10,
            "colour": ["red", "green", "blue", "red"] * 10,
            "id": [f"id-{i}" for i in range(40)],
        }
    )

    constraints = infer_baseline(frame).constraints

    assert constraints["version"] == 0.0
    assert constraints["features"] == [
        {
            "name": "count",
            "inferred_type": "Integral",
            "completeness": 1.0,
            "num_constraints": {"is_non_negative": True},
        },
        {
            "name": "delta",
            "inferred_type": "Fractional",
            "completeness": 1.0,
            "num_constraints": {"is_non_negative": False},
        },
        {
            "name": "maybe",
            "inferred_type": "Fractional",
            "completeness": 0.25,
            "num_constraints": {"is_non_negative": True},
        },
        {
            "name": "colour",
            "inferred_type": "String",
            "completeness": 1.0,
            "string_constraints": {"domains": ["blue", "green", "red"]},
        },
        {"name": "id", "inferred_type": "String", "completeness": 1.0},
    ]
    assert constraints["monitoring_config"] == {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
        },
    }


@pytest.mark.parametrize(
    ("n_distinct", "repeats", "has_domain"),
    [
        (50, 10, True),  # at the size limit, each value seen 10 times
        (51, 10, False),  # one value too many
        (5, 2, False),  # few values, but not repeated enough to look categorical
        (4, 10, True),
    ],
)
def test_domain_needs_few_values_that_repeat(
    n_distinct: int, repeats: int, has_domain: bool
) -> None:
    values = [f"v{i:02d}" for i in range(n_distinct)] * repeats

    suggested = feature(infer_baseline(pl.DataFrame({"s": values})).constraints, "s")

    assert ("string_constraints" in suggested) is has_domain
    if has_domain:
        assert suggested["string_constraints"]["domains"] == sorted(set(values))


# --- writing --------------------------------------------------------------------------------


def test_write_baseline_writes_both_files_as_json(tmp_path: Path) -> None:
    baseline = infer_baseline(pl.DataFrame({"x": [1, 2, 3], "s": ["a", "a", "b"]}))
    out = tmp_path / "nested" / "baseline"

    written = write_baseline(baseline, out)

    assert written == (out / "statistics.json", out / "constraints.json")
    assert json.loads(written[0].read_text()) == baseline.statistics
    assert json.loads(written[1].read_text()) == baseline.constraints
    assert sorted(p.name for p in out.iterdir()) == ["constraints.json", "statistics.json"]


def test_write_baseline_replaces_existing_files(tmp_path: Path) -> None:
    (tmp_path / "constraints.json").write_text("old")
    baseline = infer_baseline(pl.DataFrame({"x": [1]}))

    write_baseline(baseline, tmp_path)

    assert json.loads((tmp_path / "constraints.json").read_text()) == baseline.constraints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["constraints.json", "statistics.json"]


def test_write_baseline_into_a_file_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(StorageError, match=f"cannot write the baseline to {blocker}"):
        write_baseline(infer_baseline(pl.DataFrame({"x": [1]})), blocker)


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    baseline = Baseline(statistics={"bad": float("nan")}, constraints={})

    with pytest.raises(ValueError):
        write_baseline(baseline, tmp_path)

    assert list(tmp_path.iterdir()) == []


# --- contracts from baselines ---------------------------------------------------------------


def test_round_trip_quarantines_rows_that_break_the_baseline(tmp_path: Path) -> None:
    reference = pl.DataFrame(
        {
            "amount": [1.5, 2.0, 3.25, 4.0] * 10,
            "items": [1, 2, 3, 4] * 10,
            "channel": ["pos", "ecom", "pos", "atm"] * 10,
            "note": [None if i % 2 else f"note {i}" for i in range(40)],
        }
    )
    statistics, constraints = write_baseline(infer_baseline(reference), tmp_path)
    contract = contract_from_baseline(constraints, statistics, name="payments")
    today = pl.DataFrame(
        {
            "amount": [2.0, -1.0, None, 9.0],
            "items": [1, 2, 3, -4],
            "channel": ["pos", "pos", "atm", "fax"],
            "note": [None, "z", None, None],
        }
    )

    outcome = validate_frame(contract, today)

    assert contract.name == "payments"
    assert contract.column("amount") == ColumnSpec(
        name="amount", type="float", required=True, min=0
    )
    assert contract.column("note") == ColumnSpec(name="note", type="string")
    assert outcome.valid.to_dicts() == [{"amount": 2.0, "items": 1, "channel": "pos", "note": None}]
    assert [list(r) for r in outcome.quarantine["reason_codes"]] == [
        ["amount:min"],
        ["amount:not_null"],
        ["items:min", "channel:allowed"],
    ]


def test_contract_maps_types_required_min_and_allowed() -> None:
    constraints = {
        "features": [
            {"name": "i", "inferred_type": "Integral", "completeness": 1.0},
            {
                "name": "f",
                "inferred_type": "Fractional",
                "completeness": 0.5,
                "num_constraints": {"is_non_negative": True},
            },
            {
                "name": "g",
                "inferred_type": "Fractional",
                "num_constraints": {"is_non_negative": False},
            },
            {
                "name": "s",
                "inferred_type": "String",
                "completeness": 1.0,
                "string_constraints": {"domains": ["b", "a"]},
            },
        ]
    }

    contract = contract_from_baseline(constraints)

    assert contract.name == "baseline"
    assert contract.columns == (
        ColumnSpec(name="i", type="int", required=True),
        ColumnSpec(name="f", type="float", min=0),
        ColumnSpec(name="g", type="float"),
        ColumnSpec(name="s", type="string", required=True, allowed=("b", "a")),
    )


def test_contract_is_lenient_about_optional_and_unfamiliar_keys() -> None:
    constraints = {
        "version": 0,
        "features": [
            {"name": "u", "inferred_type": "Unknown", "completeness": 0.0},
            {"name": "b", "inferred_type": "Boolean", "monitoringConfigOverrides": {}},
            {"name": "code", "string_constraints": {"domains": [5411, 5812]}},
            {"name": "free", "inferred_type": "String", "string_constraints": {"domains": []}},
            {"name": "bare"},
        ],
        "extra": {"anything": True},
    }

    contract = contract_from_baseline(constraints)

    assert contract.columns == (
        ColumnSpec(name="u", type="string"),
        ColumnSpec(name="b", type="string"),
        ColumnSpec(name="code", type="string", allowed=("5411", "5812")),
        ColumnSpec(name="free", type="string"),
        ColumnSpec(name="bare", type="string"),
    )


def test_contract_version_is_a_digest_of_the_constraints() -> None:
    one = {"features": [{"name": "x", "inferred_type": "Integral"}]}
    other = {"features": [{"name": "x", "inferred_type": "Fractional"}]}

    version = contract_from_baseline(one).version

    assert version.startswith("sha256:") and len(version) == len("sha256:") + 12
    assert contract_from_baseline(dict(one)).version == version
    assert contract_from_baseline(other).version != version


def test_sagemaker_written_files_load_as_a_contract() -> None:
    contract = contract_from_baseline(
        DATA / "sagemaker_constraints.json", DATA / "sagemaker_statistics.json", name="churn"
    )

    assert contract.columns == (
        ColumnSpec(name="churn", type="int", required=True, min=0),
        ColumnSpec(name="account_length", type="int", required=True, min=0),
        ColumnSpec(name="day_mins", type="float", min=0),
        ColumnSpec(name="balance_delta", type="float", required=True),
        ColumnSpec(name="intl_plan", type="string", required=True, allowed=("no", "yes")),
        ColumnSpec(name="area_code", type="string", required=True, allowed=("408", "415", "510")),
        ColumnSpec(name="phone", type="string", required=True),
        ColumnSpec(name="promo_code", type="string"),
    )


def test_our_baseline_has_the_shape_of_the_sagemaker_fixture() -> None:
    fixture = json.loads((DATA / "sagemaker_statistics.json").read_text())
    ours = infer_baseline(
        pl.DataFrame({"n": [1, 2], "x": [0.5, 1.5], "s": ["a", "b"], "u": [None, None]})
    ).statistics

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k != "name"}
        if isinstance(value, list):
            return shape(value[0]) if value and isinstance(value[0], dict | list) else "list"
        return type(value).__name__ if not isinstance(value, int | float) else "number"

    fixture_shapes = {f["inferred_type"]: shape(f) for f in fixture["features"]}
    assert [shape(f) for f in ours["features"]] == [
        fixture_shapes["Integral"],
        fixture_shapes["Fractional"],
        fixture_shapes["String"],
        fixture_shapes["Unknown"],
    ]
    assert shape(ours["dataset"]) == shape(fixture["dataset"])


def _write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _features(*features: Any) -> dict[str, Any]:
    return {"version": 0.0, "features": list(features)}


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{not json", "not valid JSON at line 1 column 2"),
        ("[]", "constraints must be a JSON object, got list"),
        ({"version": 0.0}, "features: must be a non-empty list"),
        (_features(), "features: must be a non-empty list"),
        (_features("x"), "features[0]: must be an object"),
        (_features({"inferred_type": "String"}), "features[0].name: must be a non-empty string"),
        (_features({"name": "_x"}), "features[0].name: '_x' starts with '_'"),
        (_features({"name": "a"}, {"name": "a"}), "features[1].name: 'a' is already features[0]"),
        (_features({"name": "a", "completeness": "high"}), "features[0].completeness: must be"),
        (_features({"name": "a", "completeness": 1.5}), "features[0].completeness: must be"),
        (_features({"name": "a", "completeness": True}), "features[0].completeness: must be"),
        (
            _features({"name": "a", "num_constraints": []}),
            "features[0].num_constraints: must be an object",
        ),
        (
            _features(
                {
                    "name": "a",
                    "inferred_type": "Integral",
                    "num_constraints": {"is_non_negative": "yes"},
                }
            ),
            "features[0].num_constraints.is_non_negative: must be true or false",
        ),
        (
            _features(
                {
                    "name": "a",
                    "inferred_type": "String",
                    "num_constraints": {"is_non_negative": True},
                }
            ),
            "features[0].num_constraints.is_non_negative: applies to Integral and Fractional",
        ),
        (
            _features({"name": "a", "string_constraints": {"domains": "abc"}}),
            "features[0].string_constraints.domains: must be a list",
        ),
        (
            _features({"name": "a", "string_constraints": {"domains": ["x", None]}}),
            "features[0].string_constraints.domains[1]: must be a string",
        ),
        (
            _features(
                {"name": "a", "inferred_type": "Integral", "string_constraints": {"domains": ["1"]}}
            ),
            "features[0].string_constraints.domains: applies to String features",
        ),
    ],
)
def test_bad_constraints_files_name_the_file_and_the_field(
    tmp_path: Path, content: Any, field: str
) -> None:
    path = _write(tmp_path, "constraints.json", content)

    with pytest.raises(ContractError) as raised:
        contract_from_baseline(path)

    assert str(raised.value).startswith(f"{path}: ")
    assert field in str(raised.value)


def test_a_missing_constraints_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"

    with pytest.raises(ContractError, match=f"^{path}: cannot read constraints"):
        contract_from_baseline(path)


def test_bad_dicts_are_named_as_such() -> None:
    with pytest.raises(ContractError, match=r"^<constraints>: features\[0\]\.name"):
        contract_from_baseline({"features": [{"name": ""}]})


@pytest.mark.parametrize(
    ("statistics", "field"),
    [
        ({"features": [{"name": "b", "inferred_type": "Integral"}]}, "has no feature 'a'"),
        (
            {"features": [{"name": "a", "inferred_type": "String"}]},
            "features[0].inferred_type: 'String' for 'a', but",
        ),
        ({"dataset": {}}, "features: must be a non-empty list"),
    ],
)
def test_statistics_that_do_not_match_the_constraints_are_refused(
    tmp_path: Path, statistics: dict[str, Any], field: str
) -> None:
    constraints = _write(
        tmp_path, "constraints.json", _features({"name": "a", "inferred_type": "Integral"})
    )
    path = _write(tmp_path, "statistics.json", statistics)

    with pytest.raises(ContractError) as raised:
        contract_from_baseline(constraints, path)

    assert str(raised.value).startswith(f"{path}: ")
    assert field in str(raised.value)


# --- a realistic dataset --------------------------------------------------------------------


def test_fraud_baseline_catches_the_corruptions_a_baseline_can_see() -> None:
    reference = pl.from_arrow(FraudScenario(seed=2).generate(20_000).events)
    batch = FraudScenario(seed=1, bad_row_rate=0.05).generate(20_000)
    assert isinstance(reference, pl.DataFrame)

    baseline = infer_baseline(reference)
    contract = contract_from_baseline(baseline.constraints, baseline.statistics, name="fraud")
    outcome = validate_frame(contract, pl.DataFrame(pl.from_arrow(batch.events)))

    assert contract.column("amount").min == 0
    assert contract.column("channel").allowed == ("atm", "ecom", "pos")
    assert contract.column("is_foreign").allowed == ("false", "true")
    assert len(contract.column("country").allowed or ()) == 30
    corrupted = pl.DataFrame(pl.from_arrow(batch.corrupted))
    caught = corrupted["event_id"].is_in(outcome.quarantine["event_id"].implode())
    # Nulls, negative amounts and unknown categories break the baseline; a malformed timestamp
    # does not, since a baseline types event_time as plain text without a domain.
    assert corrupted.filter(caught)["kind"].unique().sort().to_list() == [
        "negative_amount",
        "null_required",
        "unknown_category",
    ]
    assert corrupted.filter(~caught)["kind"].unique().to_list() == ["malformed_timestamp"]
    assert outcome.rows_quarantined == int(caught.sum())  # no clean row is quarantined


# --- sensitive columns ----------------------------------------------------------------------


def test_a_sensitive_column_records_counts_only() -> None:
    frame = pl.DataFrame(
        {
            "card_id": ["card-0000001", "card-0000002", "card-0000001", None] * 5,
            "balance": [1234.5, 98765.25, 5555.75, None] * 5,
            "channel": ["pos", "ecom", "pos", "atm"] * 5,
        }
    )

    plain = infer_baseline(frame)
    hidden = infer_baseline(frame, sensitive=["card_id", "balance"])

    plain_text = json.dumps([plain.statistics, plain.constraints])
    hidden_text = json.dumps([hidden.statistics, hidden.constraints])
    for value in ("card-0000001", "card-0000002"):
        assert value in plain_text  # top values and a suggested domain
        assert value not in hidden_text
    for value in ("1234.5", "98765.25", "5555.75"):
        assert value in plain_text  # min, max, sketch
        assert value not in hidden_text
    assert numerical(hidden, "balance") == {"common": {"num_present": 15, "num_missing": 5}}
    card = string_stats(hidden, "card_id")
    assert card["common"] == {"num_present": 15, "num_missing": 5}
    assert card["distinct_count"] == 2.0
    assert card["distribution"] == {"categorical": {"buckets": []}}
    assert "string_constraints" not in feature(hidden.constraints, "card_id")
    # Columns not named keep everything.
    assert hidden.statistics["features"][2] == plain.statistics["features"][2]
    assert hidden.constraints["features"][2] == plain.constraints["features"][2]


def test_a_sensitive_name_not_in_the_data_is_refused() -> None:
    with pytest.raises(DataError, match="sensitive column\\(s\\) 'card' not in the data"):
        infer_baseline(pl.DataFrame({"card_id": ["x"]}), sensitive=["card"])


def test_fraud_baseline_with_the_contracts_sensitive_columns_shows_no_card_id() -> None:
    events = pl.from_arrow(FraudScenario(seed=1).generate(2_000).events)
    assert isinstance(events, pl.DataFrame)
    contract = packaged_contract("fraud")
    sensitive = [spec.name for spec in contract.columns if spec.sensitive]
    assert sensitive == ["card_id"]

    baseline = infer_baseline(events, sensitive=sensitive)

    text = json.dumps([baseline.statistics, baseline.constraints])
    assert [card for card in events["card_id"].unique() if card in text] == []
