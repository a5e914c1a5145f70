"""Hyperparameter tuning: an Optuna study over a job spec, every trial recorded.

A study reads and prepares the spec's data once, then runs up to ``trials`` trials (or until
``timeout_s``): Optuna's TPE sampler, seeded by the spec's seed, proposes hyperparameters from
the search space; each trial trains in memory and reports its holdout metric every
``report_every`` rounds, and a median pruner stops a trial whose metric is below the median of
earlier trials at the same round. Trial 0 is always the spec's own hyperparameters, so the
best trial is at least as good as the untuned spec.

Records: the study is a ``runs`` row of kind ``tune``; each trial a row of kind ``tune_trial``
(id ``<study>-<5-digit number>``) with its hyperparameters, metric, rounds and state Running ->
Complete | Pruned | Failed, and an ``events`` row (entity ``tuning_study``) for each change.

The search space (spec field ``search_space``) maps a hyperparameter to ``[low, high]`` (an
integer range when both are integers), ``{low, high, log}``, or ``{choices: [...]}``; ``null``
drops one of the framework's defaults. XGBoost's defaults are in :data:`DEFAULT_SPACES`.
The metric is the holdout's (the time-based holdout the job reports on), so the tuned score
is optimistic; the evaluation gate compares models on a holdout of their own data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from shipyard.core.errors import ConfigError, NotFoundError, StateError
from shipyard.storage import code_version, new_id, record_event, utcnow
from shipyard.storage.schema import runs
from shipyard.train.data import PreparedData, load_input, prepare
from shipyard.train.frameworks import make_trainer
from shipyard.train.spec import TrainSpec, check_spec, spec_from_dict, spec_to_dict

if TYPE_CHECKING:
    import optuna

    from shipyard.storage import MetadataStore, ObjectStore

STUDY_KIND = "tune"
TRIAL_KIND = "tune_trial"
ENTITY = "tuning_study"
RUNNING, COMPLETE, PRUNED, FAILED = "Running", "Complete", "Pruned", "Failed"
METRICS = ("auc_pr", "auc_roc")
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "xgboost": {
        "max_depth": [3, 10],
        "eta": {"low": 0.01, "high": 0.3, "log": True},
        "subsample": [0.5, 1.0],
        "colsample_bytree": [0.5, 1.0],
        "min_child_weight": {"low": 1.0, "high": 20.0, "log": True},
    }
}
OnTrial = Callable[["TrialRecord"], None]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as recorded: what it tried, how far it went, what it scored."""

    study: str
    number: int
    state: str
    hyperparameters: dict[str, Any]
    value: float | None
    rounds: int
    reason: str
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class TuningStudy:
    """A study as recorded; ``best_*`` are set once a trial completed."""

    id: str
    status: str
    spec: TrainSpec
    metric: str
    best_number: int | None
    best_value: float | None
    best_hyperparameters: dict[str, Any]
    trials: list[TrialRecord]

    def best_spec(self) -> TrainSpec:
        """The study's spec with the best trial's hyperparameters."""
        if self.best_number is None:
            raise StateError(f"study {self.id} has no completed trial, hence no best one")
        merged = {**self.spec.hyperparameters, **self.best_hyperparameters}
        return dataclasses.replace(self.spec, hyperparameters=merged)


def search_space(spec: TrainSpec) -> dict[str, dict[str, Any]]:
    """The checked search space: the framework's defaults, overridden by the spec's."""
    merged: dict[str, Any] = {**DEFAULT_SPACES.get(spec.framework, {}), **spec.search_space}
    space = {name: _dimension(name, value) for name, value in merged.items() if value is not None}
    if not space:
        raise ConfigError(
            f"field 'search_space': nothing to tune for {spec.framework}; "
            "give ranges, e.g. {num_leaves: [15, 63]}"
        )
    return space


def tune(
    meta: MetadataStore,
    store: ObjectStore,
    spec: TrainSpec,
    *,
    trials: int,
    timeout_s: float | None = None,
    metric: str = "auc_pr",
    report_every: int | None = None,
    actor: str = "system",
    on_trial: OnTrial | None = None,
) -> TuningStudy:
    """Run a study over ``spec``'s data; returns it with every trial and the best one."""
    import optuna

    spec = check_spec(spec.with_threads())
    space = search_space(spec)
    if metric not in METRICS:
        raise ConfigError(f"metric {metric!r}: tune on one of {', '.join(METRICS)}")
    if trials < 1:
        raise ConfigError(f"trials must be at least 1, got {trials}")
    every = report_every or max(1, spec.num_rounds // 10)
    make_trainer(spec).check()
    data = load_input(meta, store, spec)
    prepared = prepare(data.frame, spec)
    study_id = _create_study(meta, spec, space, trials, metric, every, actor)
    objective = _Objective(meta, study_id, spec, prepared, space, metric, every, on_trial)
    objective.baseline = _baseline(spec, space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    # A trial's failure is recorded and the study goes on: one bad corner of the space
    # should not end the search.
    study.optimize(objective, n_trials=trials, timeout=timeout_s, catch=(Exception,))
    _finish_study(meta, study_id, study, actor)
    return get_study(meta, study_id)


class _Objective:
    """Trains one trial in memory, reporting the holdout metric every ``every`` rounds."""

    def __init__(
        self,
        meta: MetadataStore,
        study_id: str,
        spec: TrainSpec,
        prepared: PreparedData,
        space: dict[str, dict[str, Any]],
        metric: str,
        every: int,
        on_trial: OnTrial | None,
    ) -> None:
        self.meta, self.study_id, self.spec, self.prepared = meta, study_id, spec, prepared
        self.space, self.metric, self.every, self.on_trial = space, metric, every, on_trial
        self.baseline: dict[str, Any] = {}

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        if trial.number == 0:
            # Not enqueued through Optuna: the spec's values may lie outside the space.
            suggested = dict(self.baseline)
        else:
            suggested = {name: _suggest(trial, name, dim) for name, dim in self.space.items()}
        trial_id = _start_trial(self.meta, self.study_id, trial.number, suggested)
        rounds, value = 0, math.nan
        try:
            spec = dataclasses.replace(
                self.spec, hyperparameters={**self.spec.hyperparameters, **suggested}
            )
            trainer = make_trainer(spec)
            trainer.check()
            trainer.start(self.prepared.train, None)
            while trainer.rounds_done < spec.num_rounds:
                step = min(self.every, spec.num_rounds - trainer.rounds_done)
                trainer.train(step, lambda _done: False)
                rounds = trainer.rounds_done
                value = self._score(trainer.predict(self.prepared.holdout_x))
                trial.report(value, rounds)
                if trial.should_prune():
                    median = _median_at(trial, rounds)
                    raise optuna.TrialPruned(
                        f"{self.metric} {value:.4f} at round {rounds}, below the median "
                        f"{median:.4f} of earlier trials"
                    )
        except optuna.TrialPruned as exc:
            self._end(trial_id, trial.number, PRUNED, value, rounds, str(exc))
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            self._end(trial_id, trial.number, FAILED, None, rounds, reason)
            raise
        self._end(trial_id, trial.number, COMPLETE, value, rounds, f"{self.metric} {value:.4f}")
        return value

    def _score(self, scores: np.ndarray) -> float:
        from sklearn.metrics import average_precision_score, roc_auc_score

        labels = self.prepared.holdout_y
        score = average_precision_score if self.metric == "auc_pr" else roc_auc_score
        return float(score(labels, scores))

    def _end(
        self, trial_id: str, number: int, state: str, value: float | None, rounds: int, why: str
    ) -> None:
        record = _end_trial(self.meta, self.study_id, trial_id, number, state, value, rounds, why)
        if self.on_trial is not None:
            self.on_trial(record)


def _baseline(spec: TrainSpec, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The spec's own value of each tuned hyperparameter (the framework's default if unset)."""
    params = make_trainer(spec).params()
    return {name: params[name] for name in space if name in params}


def _median_at(trial: optuna.Trial, step: int) -> float:
    import optuna

    earlier = [
        t.intermediate_values[step]
        for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if step in t.intermediate_values
    ]
    return float(np.median(earlier)) if earlier else math.nan


def _dimension(name: str, value: Any) -> dict[str, Any]:
    where = f"field 'search_space': {name!r}"
    if isinstance(value, list | tuple) and len(value) == 2:
        value = {"low": value[0], "high": value[1]}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be [low, high], {{low, high, log}} or {{choices}}")
    if "choices" in value:
        choices = value["choices"]
        if set(value) != {"choices"} or not isinstance(choices, list | tuple) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, alone")
        return {"choices": list(choices)}
    unknown = sorted(set(value) - {"low", "high", "log"})
    low, high, log = value.get("low"), value.get("high"), value.get("log", False)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if unknown or not numbers or not isinstance(log, bool):
        raise ConfigError(f"{where} must be [low, high], {{low, high, log}} or {{choices}}")
    assert low is not None and high is not None  # checked as numbers above
    if not low <= high or (log and low <= 0):
        raise ConfigError(f"{where}: needs low <= high (and low > 0 on a log scale)")
    return {"low": low, "high": high, "log": log}


def _suggest(trial: optuna.Trial, name: str, dim: dict[str, Any]) -> Any:
    if "choices" in dim:
        return trial.suggest_categorical(name, dim["choices"])
    low, high, log = dim["low"], dim["high"], dim["log"]
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(name, low, high, log=log)
    return trial.suggest_float(name, float(low), float(high), log=log)


# records -------------------------------------------------------------------------------


def _create_study(
    meta: MetadataStore,
    spec: TrainSpec,
    space: dict[str, dict[str, Any]],
    trials: int,
    metric: str,
    every: int,
    actor: str,
) -> str:
    study_id = new_id("study")
    params = {
        "spec": spec_to_dict(spec),
        "search_space": space,
        "trials": trials,
        "metric": metric,
        "report_every": every,
    }
    with meta.transaction() as connection:
        connection.execute(
            runs.insert().values(
                id=study_id,
                kind=STUDY_KIND,
                status=RUNNING,
                params=params,
                outputs={},
                code_version=code_version(),
                started_at=utcnow(),
            )
        )
        record_event(
            connection,
            entity_kind=ENTITY,
            entity_id=study_id,
            action="create",
            to_state=RUNNING,
            reason=f"{trials} trials on {metric}",
            actor=actor,
        )
    return study_id


def _start_trial(meta: MetadataStore, study_id: str, number: int, params: dict[str, Any]) -> str:
    trial_id = f"{study_id}-{number:05d}"
    with meta.transaction() as connection:
        connection.execute(
            runs.insert().values(
                id=trial_id,
                kind=TRIAL_KIND,
                status=RUNNING,
                params={"study": study_id, "number": number, "hyperparameters": params},
                outputs={},
                code_version=code_version(),
                started_at=utcnow(),
            )
        )
    return trial_id


def _end_trial(
    meta: MetadataStore,
    study_id: str,
    trial_id: str,
    number: int,
    state: str,
    value: float | None,
    rounds: int,
    reason: str,
) -> TrialRecord:
    with meta.transaction() as connection:
        connection.execute(
            runs.update()
            .where(runs.c.id == trial_id)
            .values(
                status=state,
                outputs={"value": value, "rounds": rounds, "reason": reason},
                failure_reason=reason if state == FAILED else None,
                ended_at=utcnow(),
            )
        )
        record_event(
            connection,
            entity_kind=ENTITY,
            entity_id=study_id,
            action="trial",
            from_state=RUNNING,
            to_state=state,
            reason=f"trial {number}: {reason}",
            details={"trial": trial_id, "value": value, "rounds": rounds},
        )
    return next(t for t in list_trials(meta, study_id) if t.number == number)


def _finish_study(meta: MetadataStore, study_id: str, study: optuna.Study, actor: str) -> None:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    outputs: dict[str, Any] = {"trials_run": len(study.trials)}
    if complete:
        best = study.best_trial
        tried = next(t for t in list_trials(meta, study_id) if t.number == best.number)
        outputs |= {
            "best_number": best.number,
            "best_value": best.value,
            "best": tried.hyperparameters,
        }
        status, reason = "Completed", f"best trial {best.number}: {best.value:.4f}"
    else:
        status, reason = FAILED, "no trial completed"
    with meta.transaction() as connection:
        connection.execute(
            runs.update()
            .where(runs.c.id == study_id)
            .values(
                status=status,
                outputs=outputs,
                ended_at=utcnow(),
                failure_reason=reason if status == FAILED else None,
            )
        )
        record_event(
            connection,
            entity_kind=ENTITY,
            entity_id=study_id,
            action="complete",
            from_state=RUNNING,
            to_state=status,
            reason=reason,
            actor=actor,
        )


def get_study(meta: MetadataStore, study_id: str) -> TuningStudy:
    """A study and its trials, as recorded."""
    query = sa.select(runs).where((runs.c.kind == STUDY_KIND) & (runs.c.id == study_id))
    with meta.reading() as connection:
        row = connection.execute(query).first()
    if row is None:
        raise NotFoundError(f"no tuning study {study_id!r}; `shipyard train tune` starts one")
    m = row._mapping
    params, outputs = dict(m["params"]), dict(m["outputs"] or {})
    return TuningStudy(
        id=study_id,
        status=m["status"],
        spec=spec_from_dict(params["spec"], source=f"study {study_id}"),
        metric=params["metric"],
        best_number=outputs.get("best_number"),
        best_value=outputs.get("best_value"),
        best_hyperparameters=dict(outputs.get("best") or {}),
        trials=list_trials(meta, study_id),
    )


def list_trials(meta: MetadataStore, study_id: str) -> list[TrialRecord]:
    """The study's trials in the order they ran."""
    query = (
        sa.select(runs)
        .where((runs.c.kind == TRIAL_KIND) & runs.c.id.like(f"{study_id}-%"))
        .order_by(runs.c.id)
    )
    with meta.reading() as connection:
        rows = [r._mapping for r in connection.execute(query)]
    return [
        TrialRecord(
            study=study_id,
            number=int(m["params"]["number"]),
            state=m["status"],
            hyperparameters=dict(m["params"]["hyperparameters"]),
            value=(m["outputs"] or {}).get("value"),
            rounds=int((m["outputs"] or {}).get("rounds", 0)),
            reason=str((m["outputs"] or {}).get("reason", "")),
            started_at=m["started_at"],
            ended_at=m["ended_at"],
        )
        for m in rows
    ]
