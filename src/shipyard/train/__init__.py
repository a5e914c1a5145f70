"""Training: fit a model package (feature prep + native-format model + holdout metrics).

In memory, :func:`fit` (or :func:`train_xgboost`). As a job, with a record, checkpoints and
resume: :func:`start_job`, :func:`resume_job`, :func:`request_stop`. A job is driven by a
:class:`TrainSpec` (Python, or YAML through :func:`load_spec`); every framework's trainer
follows :class:`Trainer` (:mod:`shipyard.train.frameworks.base` documents the contract).
"""

from __future__ import annotations

from shipyard.train.checkpoints import Checkpoint
from shipyard.train.data import InputSource, load_input, prepare, time_split
from shipyard.train.frameworks import TRAINERS, Trainer, TrainingData, make_trainer
from shipyard.train.jobs import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    JOB_STATES,
    PENDING,
    STOPPED,
    STOPPING,
    TrainingJob,
    get_job,
    job_events,
    list_jobs,
    request_stop,
)
from shipyard.train.metrics import binary_metrics, precision_at_k, recall_at_fpr
from shipyard.train.runner import Publish, StopSignal, TrainedModel, resume_job, start_job
from shipyard.train.spec import TrainSpec, check_spec, load_spec, spec_from_dict, spec_to_dict
from shipyard.train.trainer import Progress, TrainResult, fit, train_xgboost

__all__ = [
    "COMPLETED",
    "FAILED",
    "IN_PROGRESS",
    "JOB_STATES",
    "PENDING",
    "STOPPED",
    "STOPPING",
    "TRAINERS",
    "Checkpoint",
    "InputSource",
    "Progress",
    "Publish",
    "StopSignal",
    "TrainResult",
    "TrainSpec",
    "TrainedModel",
    "Trainer",
    "TrainingData",
    "TrainingJob",
    "binary_metrics",
    "check_spec",
    "fit",
    "get_job",
    "job_events",
    "list_jobs",
    "load_input",
    "load_spec",
    "make_trainer",
    "precision_at_k",
    "prepare",
    "recall_at_fpr",
    "request_stop",
    "resume_job",
    "spec_from_dict",
    "spec_to_dict",
    "start_job",
    "time_split",
    "train_xgboost",
]
