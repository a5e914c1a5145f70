from __future__ import annotations

import json

import polars as pl

from shipyard.validate import (
    ColumnSpec,
    Contract,
    build_report,
    constraint_violations,
    render_html,
    validate_frame,
)

KNOWN_TYPES = {
    "data_type_check", "completeness_check", "baseline_drift_check",
    "missing_column_check", "extra_column_check", "categorical_values_check",
}  # fmt: skip


def small_contract(**fields: object) -> Contract:
    return Contract(
        name="t",
        version="1",
        columns=(
            ColumnSpec(name="id", type="string", required=True, unique=True, pattern="[a-z]"),
            ColumnSpec(name="amount", type="float", min=0),
            ColumnSpec(name="channel", type="string", allowed=("pos",)),
            ColumnSpec(name="n", type="int"),
            ColumnSpec(name="absent", type="int"),
        ),
        **fields,  # type: ignore[arg-type]
    )


def test_violations_list_only_failing_checks_in_model_monitor_shape() -> None:
    frame = pl.DataFrame(
        {
            "id": ["a", None, "a", "BB"],
            "amount": [1.0, 2.0, -3.0, 4.0],
            "channel": ["pos", "pos", "pos", "fax"],
            "n": ["1", "x", "2", "3"],
            "junk": [0, 0, 0, 0],
        }
    )

    document = constraint_violations(validate_frame(small_contract(min_rows=9), frame))

    assert list(document) == ["violations"]
    found = {(v["feature_name"], v["constraint_check_type"]) for v in document["violations"]}
    assert found == {
        ("id", "completeness_check"),
        ("id", "data_type_check"),  # unique
        ("id", "categorical_values_check"),  # pattern
        ("amount", "data_type_check"),  # min
        ("channel", "categorical_values_check"),
        ("n", "data_type_check"),
        ("absent", "missing_column_check"),
        ("junk", "extra_column_check"),
        ("(dataset)", "completeness_check"),  # bad_row_share and row_count
    }
    for violation in document["violations"]:
        assert set(violation) == {"feature_name", "constraint_check_type", "description"}
        assert violation["constraint_check_type"] in KNOWN_TYPES
    descriptions = [v["description"] for v in document["violations"]]
    assert "amount:min: 1 of 4 rows (25.00%) are below the declared min (a range check) 0" in (
        descriptions
    )
    assert "row_count: 4 rows in, fewer than min_rows 9" in descriptions


def test_a_clean_batch_has_no_violations() -> None:
    frame = pl.DataFrame(
        {"id": ["a"], "amount": [1.0], "channel": ["pos"], "n": [1], "absent": [1]}
    )

    assert constraint_violations(validate_frame(small_contract(), frame)) == {"violations": []}


def test_report_extends_the_summary() -> None:
    frame = pl.DataFrame({"id": ["a", "b"], "amount": [1.0, -1.0]})
    outcome = validate_frame(small_contract(), frame)

    report = build_report(outcome, engine="polars", timings_s={"validate": 0.5})

    assert json.loads(json.dumps(report)) == report
    assert report["engine"] == "polars"
    assert report["timings_s"] == {"validate": 0.5}
    assert (report["contract"], report["contract_version"]) == ("t", "1")
    assert (report["rows_in"], report["rows_valid"], report["rows_quarantined"]) == (2, 1, 1)
    assert report["dataset_checks"]["row_count"] == {
        "passed": True, "observed": 2, "expected": ">= 0"
    }  # fmt: skip
    assert report["checks"]["amount"] == {"type": 0, "min": 1}
    assert report["missing_columns"] == ["channel", "n", "absent"]


def test_html_is_self_contained_and_escapes_text_from_the_data() -> None:
    hostile = "<script>alert('x')</script>"
    contract = Contract(
        name="t",
        version="<b>",  # names are restricted; versions are free text
        columns=(
            ColumnSpec(name="amount", type="float", min=0),
            ColumnSpec(name="n", type="int"),
        ),
    )
    frame = pl.DataFrame({"amount": [1.0, 2.0, -1.0, 5.0], "n": [1, 1, 1, 1], hostile: [1] * 4})
    outcome = validate_frame(contract, frame)
    report = build_report(outcome, engine="polars", outputs={"curated": f"file:///{hostile}"})

    page = render_html(report, outcome.valid, contract)

    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert "t@&lt;b&gt;" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<svg") == 3  # failures bar chart + 2 histograms
    assert "amount:min" in page
