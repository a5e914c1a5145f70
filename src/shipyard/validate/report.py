"""Validation reports: a JSON document and one self-contained HTML page (inline SVG, no JS).

Example::

    report = build_report(outcome, engine="polars", timings_s={"validate": 0.4})
    Path("report.html").write_text(render_html(report, outcome.valid, outcome.contract))

Neither shows a raw value of a column the contract marks ``sensitive``: the reports hold counts
per check, and the histograms of the valid rows leave sensitive columns out (their axis labels
would be values of the column).
"""

from __future__ import annotations

from html import escape
from typing import Any

import polars as pl

from shipyard.core.svg import bar_chart, histogram
from shipyard.validate.contract import Contract
from shipyard.validate.outcome import ValidationOutcome, ValidationResult
from shipyard.validate.violations import constraint_violations

HISTOGRAM_BINS = 20
# A picture drawn from a 200,000-row random sample looks the same as one from every row, and
# costs a fraction of the time on millions of rows.
HISTOGRAM_SAMPLE_ROWS = 200_000


def build_report(
    outcome: ValidationResult | ValidationOutcome,
    *,
    engine: str,
    timings_s: dict[str, float] | None = None,
    outputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``outcome.summary()`` plus dataset checks, engine, timings, outputs and violations."""
    report = outcome.summary()
    report.update(
        engine=engine,
        checked_at=outcome.checked_at.isoformat() if outcome.checked_at else None,
        missing_columns=list(outcome.missing_columns),
        dataset_checks={
            name: {"passed": c.passed, "observed": c.observed, "expected": c.expected}
            for name, c in outcome.dataset_checks.items()
        },
        timings_s=dict(timings_s or {}),
        outputs=dict(outputs or {}),
        violations=constraint_violations(outcome)["violations"],
    )
    return report


def histogram_columns(contract: Contract) -> list[str]:
    """The contract columns the report draws: numeric, and not sensitive."""
    return [
        spec.name
        for spec in contract.columns
        if spec.type in ("int", "float") and not spec.sensitive
    ]


def histogram_sample(valid: pl.LazyFrame, contract: Contract, rows: int) -> pl.LazyFrame:
    """The drawn columns of every k-th of about ``rows`` valid rows: at most about
    HISTOGRAM_SAMPLE_ROWS rows, taken in a streaming pass without knowing which rows are valid."""
    step = max(1, -(-rows // HISTOGRAM_SAMPLE_ROWS))
    return valid.select(histogram_columns(contract)).gather_every(step)


def numeric_histograms(
    valid: pl.DataFrame, contract: Contract, *, bins: int = HISTOGRAM_BINS
) -> dict[str, tuple[list[int], float, float]]:
    """Per numeric, non-sensitive contract column of the valid rows: (bin counts, low, high).

    The range is the 1st to 99th percentile, so one huge value cannot squash the picture into
    one bar; values beyond it are counted in the edge bins. Integer columns with fewer distinct
    possible values than bins get one bin per value, from min to max.
    """
    result: dict[str, tuple[list[int], float, float]] = {}
    for spec in (contract.column(name) for name in histogram_columns(contract)):
        if spec.name not in valid.columns:
            continue
        values = valid.get_column(spec.name).drop_nulls().cast(pl.Float64)
        values = values.filter(values.is_finite())
        if values.is_empty():
            continue
        smallest, largest = float(values.min()), float(values.max())  # type: ignore[arg-type]
        if spec.type == "int" and largest - smallest < bins:
            n_bins = int(largest - smallest) + 1
            index = (values - smallest).cast(pl.Int64)
            low, high = smallest, largest
        else:
            low, high = (float(values.quantile(q) or 0.0) for q in (0.01, 0.99))
            span = high - low
            # Integers get no more bins than values in range, or some bins would always be empty.
            n_bins = min(bins, int(span) + 1) if spec.type == "int" else bins
            if span <= 0:
                result[spec.name] = ([values.len()], low, high)
                continue
            index = ((values - low) / span * n_bins).floor().clip(0, n_bins - 1).cast(pl.Int64)
        counts = [0] * n_bins
        for position, count in index.value_counts().iter_rows():
            counts[position] = int(count)
        result[spec.name] = (counts, low, high)
    return result


def _sample(valid: pl.DataFrame) -> pl.DataFrame:
    if valid.height <= HISTOGRAM_SAMPLE_ROWS:
        return valid
    return valid.sample(n=HISTOGRAM_SAMPLE_ROWS, seed=0)


def render_html(report: dict[str, Any], valid: pl.DataFrame, contract: Contract) -> str:
    """One self-contained page: verdict, dataset checks, failures per check, distributions.

    ``valid`` holds the valid rows, or a sample of them (fewer rows than the report's
    ``rows_valid``); more than HISTOGRAM_SAMPLE_ROWS rows are sampled at random first.
    """
    sample = _sample(valid)
    verdict = "PASSED" if report["passed"] else "FAILED"
    title = f"Validation of {report['contract']}@{report['contract_version']}: {verdict}"
    failures = sorted(
        (
            (f"{column}:{check}", count)
            for column, checks in report["checks"].items()
            for check, count in checks.items()
            if count
        ),
        key=lambda item: (-item[1], item[0]),
    )
    sections = [
        f'<h1 class="{verdict.lower()}">{escape(title)}</h1>',
        _facts(report),
        _reasons(report["reasons_failed"]),
        "<h2>Dataset checks</h2>",
        _dataset_table(report["dataset_checks"]),
        "<h2>Failing rows per check</h2>",
        bar_chart(failures),
        _column_lists(report),
        "<h2>Distributions of valid rows</h2>",
        '<p class="note">Range: 1st to 99th percentile, values beyond it '
        "counted in the edge bars (narrow integer ranges: one bar per value)."
        + (
            f" Drawn from a sample of {sample.height:,} of the {report['rows_valid']:,} valid rows."
            if sample.height < report["rows_valid"]
            else ""
        )
        + _sensitive_note(contract)
        + "</p>",
        _histograms(numeric_histograms(sample, contract)),
    ]
    return _PAGE.format(title=escape(title), body="\n".join(sections))


def _sensitive_note(contract: Contract) -> str:
    hidden = [spec.name for spec in contract.columns if spec.sensitive]
    if not hidden:
        return ""
    return f" Sensitive columns are not drawn: {escape(', '.join(hidden))}."


def format_observed(value: float | None) -> str:
    """A dataset check's observation for people: counts whole, shares and ages to 4 digits."""
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:,.4g}"


def _facts(report: dict[str, Any]) -> str:
    timings = ", ".join(f"{escape(k)} {v:.2f} s" for k, v in report["timings_s"].items())
    rows = [
        ("rows in", f"{report['rows_in']:,}"),
        ("valid", f"{report['rows_valid']:,}"),
        ("quarantined", f"{report['rows_quarantined']:,} ({report['bad_row_share']:.2%})"),
        ("engine", escape(str(report["engine"]))),
        ("checked at", escape(str(report["checked_at"]))),
        ("timings", timings or "-"),
    ]
    rows += [(escape(k), escape(v)) for k, v in report["outputs"].items()]
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'


def _reasons(reasons: list[str]) -> str:
    if not reasons:
        return ""
    items = "".join(f"<li>{escape(reason)}</li>" for reason in reasons)
    return f'<ul class="reasons">{items}</ul>'


def _dataset_table(checks: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, check in checks.items():
        observed = check["observed"]
        shown = format_observed(observed)
        status = "pass" if check["passed"] else "fail"
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{shown}</td><td>{escape(check['expected'])}</td>"
            f'<td class="{status}">{status}</td></tr>'
        )
    head = "<tr><th>check</th><th>observed</th><th>expected</th><th>result</th></tr>"
    return f'<table class="checks">{head}{"".join(rows)}</table>'


def _column_lists(report: dict[str, Any]) -> str:
    parts = []
    for key, label in (("missing_columns", "Missing columns"), ("extra_columns", "Extra columns")):
        if report[key]:
            parts.append(f"<p><b>{label}:</b> {escape(', '.join(report[key]))}</p>")
    return "".join(parts)


def _histograms(histograms: dict[str, tuple[list[int], float, float]]) -> str:
    if not histograms:
        return '<p class="none">No numeric values among the valid rows.</p>'
    figures = "".join(
        f"<figure><figcaption>{escape(name)}</figcaption>{histogram(counts, low, high)}</figure>"
        for name, (counts, low, high) in histograms.items()
    )
    return f'<div class="grid">{figures}</div>'


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1150px; }}
h1.passed {{ color: #1e8449; }} h1.failed {{ color: #c0392b; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
th, td {{ border: 1px solid #ddd; padding: 4px 10px; text-align: left; }}
td.pass {{ color: #1e8449; font-weight: bold; }} td.fail {{ color: #c0392b; font-weight: bold; }}
ul.reasons {{ color: #c0392b; }} p.none, p.note {{ color: #666; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; border: 1px solid #eee; padding: 6px; }}
figcaption {{ font-weight: bold; margin-bottom: 4px; }}
svg {{ overflow: visible; }}
</style></head>
<body>
{body}
</body></html>
"""
