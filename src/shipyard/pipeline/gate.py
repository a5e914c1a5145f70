"""The evaluation gate: a candidate is approved only if it is not worse than production.

When a version is approved, and its lineage names the data it was trained on (every training
job records it) and its group has a ``production`` version, both models score the candidate's
time-based holdout: the same rows, rebuilt from the recorded inputs (whose sha256 must still
match) with the candidate's own spec. Each model applies its own feature preparation, as it
does when serving. Then per metric:

    worse_by = production - candidate     (candidate - production for the Brier score)
    allowed  = max(absolute, relative * production)
    refused when worse_by > allowed

=====================  ========  ========  ======================================
metric                 absolute  relative  so, e.g.
=====================  ========  ========  ======================================
AUC-PR                 0.01      2 %       production 0.585: may drop to 0.5733
AUC-ROC                0.005     0         production 0.970: may drop to 0.965
recall at 1 % FPR      0.02      5 %       production 0.60: may drop to 0.57
Brier score            0.001     10 %      production 0.004: may rise to 0.005
=====================  ========  ========  ======================================

A refusal names each failing metric: ``AUC-PR 0.512 vs production 0.585: 0.073 worse,
tolerance 0.0117``. Whether it passes or not, the evaluation is kept: the candidate's and
production's holdout metrics are added to the version's metrics (``gate_<metric>`` and
``gate_production_<metric>``), and an ``evaluation`` event (passed / refused) with the whole
comparison goes to the registry's audit log. ``skip_gate`` with a reason approves without it,
audited as ``skipped``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from shipyard.core.errors import IntegrityError, InvalidRequestError, StateError
from shipyard.core.package import load_package
from shipyard.core.types import ModelRef
from shipyard.pipeline.workspace import Workspace
from shipyard.registry import APPROVED, PRODUCTION, ModelVersion
from shipyard.train import binary_metrics, load_input, spec_from_dict, time_split


@dataclass(frozen=True)
class Tolerance:
    """How much worse than production a candidate may be on one metric."""

    absolute: float
    relative: float = 0.0
    higher_is_better: bool = True

    def allowed(self, production: float) -> float:
        return max(self.absolute, self.relative * abs(production))


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "auc_pr": Tolerance(0.01, 0.02),
    "auc_roc": Tolerance(0.005),
    "recall_at_1pct_fpr": Tolerance(0.02, 0.05),
    "brier": Tolerance(0.001, 0.10, higher_is_better=False),
}
LABELS = {
    "auc_pr": "AUC-PR",
    "auc_roc": "AUC-ROC",
    "recall_at_1pct_fpr": "recall at 1% FPR",
    "brier": "Brier score",
}


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    candidate: float
    production: float
    worse_by: float
    allowed: float

    @property
    def passed(self) -> bool:
        return self.worse_by <= self.allowed

    def describe(self) -> str:
        """E.g. 'AUC-PR 0.512 vs production 0.585: 0.073 worse, tolerance 0.0117'."""
        label = LABELS.get(self.metric, self.metric)
        if self.worse_by > 0:
            how = f"{self.worse_by:.3g} worse"
        else:
            how = "no worse" if self.worse_by == 0 else f"{-self.worse_by:.3g} better"
        return (
            f"{label} {self.candidate:.3f} vs production {self.production:.3f}: "
            f"{how}, tolerance {self.allowed:.3g}"
        )


@dataclass(frozen=True)
class GateReport:
    """A candidate compared with production on the candidate's holdout."""

    candidate: ModelRef
    production: ModelRef
    holdout_rows: int
    holdout_positives: int
    checks: tuple[MetricCheck, ...]
    candidate_metrics: dict[str, float]
    production_metrics: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def summary(self) -> str:
        failing = [c for c in self.checks if not c.passed]
        shown = failing or list(self.checks)
        verdict = "refused" if failing else "passed"
        return (
            f"evaluation gate {verdict} for {self.candidate} against production "
            f"{self.production} on {self.holdout_rows:,} holdout rows: "
            + "; ".join(c.describe() for c in shown)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": str(self.candidate),
            "production": str(self.production),
            "holdout_rows": self.holdout_rows,
            "holdout_positives": self.holdout_positives,
            "passed": self.passed,
            "checks": [{**asdict(c), "passed": c.passed} for c in self.checks],
            "candidate_metrics": self.candidate_metrics,
            "production_metrics": self.production_metrics,
        }


class EvaluationGate:
    """Compares a candidate with its group's production version before it is approved."""

    def __init__(
        self, workspace: Workspace, tolerances: dict[str, Tolerance] | None = None
    ) -> None:
        self.workspace = workspace
        self.tolerances = DEFAULT_TOLERANCES if tolerances is None else tolerances

    def check(
        self, group: str, version: int, *, actor: str, reason: str, skip: bool = False
    ) -> GateReport | None:
        """Refuse (``StateError``, saying by how much) a candidate worse than production.

        Returns the report, or None when there is nothing to compare: no production version,
        the candidate is production, or its lineage does not name its training data.
        """
        registry = self.workspace.registry
        if skip:
            if not reason.strip():
                raise InvalidRequestError(
                    "skipping the evaluation gate needs a reason, for the audit log"
                )
            registry.record_evaluation(
                group,
                version,
                {},
                outcome="skipped",
                details={"skipped": True},
                actor=actor,
                reason=f"evaluation gate skipped: {reason}",
            )
            return None
        if registry.get(group, version).approval_status == APPROVED:
            return None  # approving again changes nothing, so there is nothing to gate
        report = self.evaluate(group, version)
        if report is None:
            return None
        metrics = {f"gate_{k}": v for k, v in report.candidate_metrics.items()}
        metrics |= {f"gate_production_{k}": v for k, v in report.production_metrics.items()}
        metrics["gate_production_version"] = float(report.production.version)
        registry.record_evaluation(
            group,
            version,
            metrics,
            outcome="passed" if report.passed else "refused",
            details=report.to_dict(),
            actor=actor,
            reason=report.summary()[:1024],
        )
        if not report.passed:
            raise StateError(f"cannot approve: {report.summary()}")
        return report

    def evaluate(self, group: str, version: int) -> GateReport | None:
        """Score the candidate and production on the candidate's holdout; None if no pair."""
        registry = self.workspace.registry
        candidate = registry.get(group, version)
        production_number = registry.alias_version(group, PRODUCTION)
        if production_number is None or production_number == version:
            return None
        spec_data = candidate.params.get("spec")
        inputs = candidate.lineage.get("inputs")
        if not isinstance(spec_data, dict) or not inputs:
            return None
        production = registry.get(group, production_number)
        holdout, labels, precision_at = self._holdout(candidate, spec_data, inputs)
        candidate_metrics = binary_metrics(labels, self._scores(candidate, holdout), precision_at)
        production_metrics = binary_metrics(labels, self._scores(production, holdout), precision_at)
        checks = tuple(
            _compare(name, tolerance, candidate_metrics[name], production_metrics[name])
            for name, tolerance in self.tolerances.items()
        )
        return GateReport(
            candidate.ref,
            production.ref,
            len(labels),
            int(labels.sum()),
            checks,
            candidate_metrics,
            production_metrics,
        )

    def _holdout(
        self, candidate: ModelVersion, spec_data: dict[str, Any], inputs: list[dict[str, Any]]
    ) -> tuple[pl.DataFrame, np.ndarray, tuple[float, ...]]:
        spec = spec_from_dict(spec_data, source=f"{candidate.ref}'s training spec")
        data = load_input(self.workspace.meta, self.workspace.store, spec)
        recorded = [(i.get("field"), i.get("sha256")) for i in inputs]
        now = [(s.field, s.sha256) for s in data.sources]
        if recorded != now:
            raise IntegrityError(
                f"{candidate.ref}'s training data changed since it was trained, so its holdout "
                "cannot be rebuilt; approve with --skip-gate and a reason, or retrain"
            )
        _train, holdout = time_split(data.frame, spec)
        labels = holdout[spec.label].cast(pl.Int32).to_numpy()
        return holdout, labels, spec.precision_at_k

    def _scores(self, version: ModelVersion, holdout: pl.DataFrame) -> np.ndarray:
        model = load_package(self.workspace.store, version.artifact_uri, version.sha256)
        scores, _unseen = model.score(holdout)
        return scores


def _compare(name: str, tolerance: Tolerance, candidate: float, production: float) -> MetricCheck:
    worse_by = production - candidate if tolerance.higher_is_better else candidate - production
    return MetricCheck(name, candidate, production, worse_by, tolerance.allowed(production))
