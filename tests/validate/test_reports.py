from __future__ import annotations

import datetime as dt
import json

import polars as pl

from shipyard.validate import (
    ColumnSpec,
    Contract,
    Freshness,
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


def test_a_sensitive_column_gets_no_histogram_but_the_others_do() -> None:
    columns = (ColumnSpec(name="balance", type="float"), ColumnSpec(name="n", type="int"))
    frame = pl.DataFrame({"balance": [1234.5, 98765.25, 5555.75], "n": [1, 2, 3]})
    plain = Contract(name="t", version="1", columns=columns)
    hidden = Contract(
        name="t",
        version="1",
        columns=(columns[0].model_copy(update={"sensitive": True}), columns[1]),
    )

    pages = {}
    for contract in (plain, hidden):
        outcome = validate_frame(contract, frame)
        pages[contract] = render_html(
            build_report(outcome, engine="polars"), outcome.valid, contract
        )

    assert "<figcaption>balance</figcaption>" in pages[plain]
    assert "98,765.25" in pages[plain] or "9.877e+04" in pages[plain]  # an axis label
    assert "<figcaption>balance</figcaption>" not in pages[hidden]
    assert "<figcaption>n</figcaption>" in pages[hidden]
    assert "Sensitive columns are not drawn: balance." in pages[hidden]
    for value in ("1234.5", "1,234", "98765", "98,765", "9.877e+04", "5555", "5,556"):
        assert value not in pages[hidden]


def test_staleness_of_a_sensitive_timestamp_is_reported_without_its_value() -> None:
    newest = dt.datetime(2026, 1, 1, 7, 30)
    frame = pl.DataFrame({"at": [newest]})
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    spec = ColumnSpec(name="at", type="timestamp")
    documents = []
    for column in (spec, spec.model_copy(update={"sensitive": True})):
        contract = Contract(
            name="t",
            version="1",
            columns=(column,),
            freshness=Freshness(column="at", max_age_hours=1),
        )
        outcome = validate_frame(contract, frame, now=now)
        documents.append(json.dumps(build_report(outcome, engine="polars")))

    assert "2026-01-01T07:30" in documents[0]
    assert "2026-01-01" not in documents[1]
    assert "newest at is 16.5 h old at 2026-01-02T00:00:00Z" in documents[1]
