"""A model-quality check's files: statistics.json, constraint_violations.json, JSON and HTML."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from shipyard.storage import ObjectStore

STATISTICS_FILE = "statistics.json"
VIOLATIONS_FILE = "constraint_violations.json"
REPORT_FILE = "quality_report.json"
HTML_FILE = "report.html"


def write_quality_outputs(
    store: ObjectStore,
    prefix: str,
    *,
    statistics: dict[str, Any],
    constraints: dict[str, Any],
    violations: dict[str, Any],
    windows: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write the four files under ``prefix`` in ``store``; returns their URLs by file name."""
    report = {
        "statistics": statistics,
        "constraints": constraints,
        "violations": violations["violations"],
        "windows": windows,
        **(extra or {}),
    }
    files = {
        STATISTICS_FILE: _json(statistics),
        VIOLATIONS_FILE: _json(violations),
        REPORT_FILE: _json(report),
        HTML_FILE: render_quality_html(statistics, constraints, violations, windows).encode(),
    }
    urls = {}
    for name, data in files.items():
        key = f"{prefix.rstrip('/')}/{name}"
        store.put_bytes(key, data)
        urls[name] = store.url(key)
    return urls


def render_quality_html(
    statistics: dict[str, Any],
    constraints: dict[str, Any],
    violations: dict[str, Any],
    windows: list[dict[str, Any]],
) -> str:
    """One page: each metric beside its constraint, then the metrics of every time window."""
    metrics = statistics["binary_classification_metrics"]
    limits = constraints.get("binary_classification_constraints", {})
    violated = {v["metric_name"] for v in violations["violations"]}
    rows = []
    for name, measured in metrics.items():
        limit = limits.get(name)
        rule = f"{limit['comparison_operator']} {limit['threshold']:.4g}" if limit else "-"
        css = "bad" if name in violated else "ok"
        rows.append(
            f"<tr class={css}><td>{escape(name)}</td><td>{_cell(measured['value'])}</td>"
            f"<td>{_cell(measured['standard_deviation'])}</td><td>{escape(rule)}</td>"
            f"<td>{'violated' if name in violated else 'ok'}</td></tr>"
        )
    names = list(metrics)
    head = "".join(f"<th>{escape(n)}</th>" for n in ("window", "rows", "positives", *names))
    window_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_cell(w.get(k))}</td>" for k in ("window_start", "rows", "positives", *names)
        )
        + "</tr>"
        for w in windows
    )
    dataset = statistics["dataset"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model quality</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ padding: 3px 10px; text-align: left; }} tr.bad td {{ color: #c0392b; font-weight: bold; }}
</style></head><body>
<h1>Model quality: {len(violated)} violation(s)</h1>
<p>{dataset["item_count"]:,} labelled predictions, {dataset["positives"]:,} positive;
decision threshold {dataset["threshold"]:g}.</p>
<table><tr><th>metric</th><th>value</th><th>std dev</th><th>constraint</th><th>result</th></tr>
{"".join(rows)}</table>
<h2>Per window (back-filled as labels arrive)</h2>
<table><tr>{head}</tr>{window_rows}</table>
</body></html>
"""


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return escape(str(value))


def _json(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()
