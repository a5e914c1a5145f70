"""A drift report's files: JSON, Model Monitor's constraint_violations.json, one HTML page.

A drifted feature is reported as a ``baseline_drift_check`` violation, the check type SageMaker
Model Monitor uses when a feature's distribution distance from the baseline is over its
threshold; the description names the method, the statistic and the threshold.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from shipyard.core.svg import paired_bars, paired_histogram
from shipyard.monitor.drift import METHODS, ColumnDrift, DriftReport
from shipyard.storage import ObjectStore

REPORT_FILE = "drift_report.json"
VIOLATIONS_FILE = "constraint_violations.json"
HTML_FILE = "report.html"
DRIFT_CHECK = "baseline_drift_check"


def drift_violations(report: DriftReport) -> dict[str, Any]:
    """``{"violations": [...]}``: one ``baseline_drift_check`` per drifted feature."""
    return {
        "violations": [
            {
                "feature_name": column.name,
                "constraint_check_type": DRIFT_CHECK,
                "description": _describe(column),
            }
            for column in report.drifted
        ]
    }


def write_drift_outputs(
    report: DriftReport, store: ObjectStore, prefix: str, *, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    """Write the three files under ``prefix`` in ``store``; returns their URLs by file name.

    ``extra`` is merged into the JSON report (timings, which data, which schedule).
    """
    document = report.to_dict() | dict(extra or {})
    files = {
        REPORT_FILE: _json(document),
        VIOLATIONS_FILE: _json(drift_violations(report)),
        HTML_FILE: render_drift_html(report).encode(),
    }
    urls = {}
    for name, data in files.items():
        key = f"{prefix.rstrip('/')}/{name}" if prefix else name
        store.put_bytes(key, data)
        urls[name] = store.url(key)
    return urls


def render_drift_html(report: DriftReport, *, title: str = "Data drift") -> str:
    """One self-contained page: the verdict, a table of every feature, and its two histograms."""
    verdict = "DRIFT" if report.dataset_drift else "no dataset drift"
    rows = "".join(
        f"<tr class={'drift' if c.drift_detected else 'ok'}><td>{escape(c.name)}</td>"
        f"<td>{c.column_type}</td><td>{escape(c.method_label)}</td>"
        f"<td>{_number(c.statistic)}</td><td>{c.threshold:g}</td>"
        f"<td>{'drift' if c.drift_detected else 'ok'}</td></tr>"
        for c in report.columns
    )
    skipped = "".join(
        f"<li>{escape(name)}: {escape(reason)}</li>" for name, reason in report.skipped
    )
    figures = "".join(_figure(c) for c in report.columns)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 3px 10px; text-align: left; }}
tr.drift td {{ color: #c0392b; font-weight: bold; }}
.features {{ display: flex; flex-wrap: wrap; gap: 18px; }}
figure {{ margin: 0; }} figcaption {{ font-size: 13px; margin-bottom: 4px; }}
.key span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>{escape(title)}: {verdict}</h1>
<p>{len(report.drifted)} of {len(report.columns)} features drifted
({report.share_of_drifted_columns:.0%}; the dataset drifts at {report.drift_share:.0%}).
Reference {report.reference_rows:,} rows, current {report.current_rows:,} rows.</p>
<table><tr><th>feature</th><th>type</th><th>method</th><th>statistic</th><th>threshold</th>
<th>result</th></tr>{rows}</table>
{f"<p>Not tested:</p><ul>{skipped}</ul>" if skipped else ""}
<h2>Distributions</h2>
<p class="key"><span style="background:#aab7c4"></span>reference
<span style="background:#2e86c1"></span>current</p>
<div class="features">{figures}</div>
</body></html>
"""


def _figure(column: ColumnDrift) -> str:
    shown = column.distribution
    if shown["kind"] == "histogram":
        chart = paired_histogram(shown["reference"], shown["current"], shown["low"], shown["high"])
    else:
        chart = paired_bars(shown["values"], shown["reference"], shown["current"])
    caption = (
        f"{escape(column.name)}: {escape(column.method_label)} {_number(column.statistic)}"
        f"{' (drift)' if column.drift_detected else ''}"
        f"{' [log scale]' if shown.get('scale') == 'log' else ''}"
    )
    return f"<figure><figcaption>{caption}</figcaption>{chart}</figure>"


def _describe(column: ColumnDrift) -> str:
    side = METHODS[column.method].drift_side
    return (
        f"{column.name}: {column.method_label} {_number(column.statistic)} {side} threshold "
        f"{column.threshold:g} (reference {column.reference_rows:,} rows, current "
        f"{column.current_rows:,} rows)"
    )


def _number(value: float) -> str:
    return f"{value:.4g}"


def _json(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()
