"""Training jobs wired to the registry: a job that completes registers its model.

The model is stored as a package under ``models/<group>/<job id>/`` and registered in the
spec's ``output_group`` as a new version, PendingManualApproval, with the job in its lineage.
Registration is idempotent per job: a job killed after registering but before it recorded
Completed finds its version on resume instead of registering a second one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shipyard.pipeline.packages import publish_package
from shipyard.pipeline.workspace import Workspace
from shipyard.registry import ModelVersion
from shipyard.storage import code_version
from shipyard.train import (
    STOPPING,
    Progress,
    Publish,
    StopSignal,
    TrainedModel,
    TrainingJob,
    TrainSpec,
    get_job,
    request_stop,
    resume_job,
    start_job,
)


def run_training(
    workspace: Workspace,
    spec: TrainSpec,
    *,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
    actor: str = "system",
    on_created: Callable[[TrainingJob], None] | None = None,
) -> TrainingJob:
    """Start a job for ``spec``; returns it Completed (model registered), Stopped or Failed."""
    return start_job(
        workspace.meta,
        workspace.store,
        spec,
        publish=registering(workspace, actor),
        progress=progress,
        stop=stop,
        actor=actor,
        on_created=on_created,
    )


def resume_training(
    workspace: Workspace,
    job_id: str,
    *,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
    actor: str = "system",
) -> TrainingJob:
    """Continue a Stopped or orphaned job from its latest checkpoint."""
    return resume_job(
        workspace.meta,
        workspace.store,
        job_id,
        publish=registering(workspace, actor),
        progress=progress,
        stop=stop,
        actor=actor,
    )


def stop_training(
    workspace: Workspace,
    job_id: str,
    *,
    reason: str = "stop requested",
    actor: str = "system",
    wait_s: float = 60.0,
    poll_s: float = 0.2,
) -> TrainingJob:
    """Ask a job to stop and wait up to ``wait_s`` for it to checkpoint and end Stopped."""
    job = request_stop(workspace.meta, job_id, reason=reason, actor=actor)
    deadline = time.monotonic() + wait_s
    while job.status == STOPPING and job.is_running and time.monotonic() < deadline:
        time.sleep(poll_s)
        job = get_job(workspace.meta, job_id)
    return job


def registering(workspace: Workspace, actor: str) -> Publish:
    """The ``publish`` step of a job: store the package, register it, say which version."""

    def publish(trained: TrainedModel) -> dict[str, Any]:
        group = trained.spec.output_group
        for version in workspace.registry.list_versions(group):
            if version.lineage.get("training_job") == trained.job_id:
                return _model_outputs(version)
        version = publish_package(
            workspace,
            group,
            trained.contents,
            prefix=f"models/{group}/{trained.job_id}",
            metrics=trained.metrics,
            lineage={
                "datasets": [s.dataset_id for s in trained.inputs if s.dataset_id],
                "inputs": [s.to_dict() for s in trained.inputs],
                "training_job": trained.job_id,
                "code_version": code_version(),
            },
            actor=actor,
        )
        return _model_outputs(version)

    return publish


def _model_outputs(version: ModelVersion) -> dict[str, Any]:
    return {
        "version": str(version.ref),
        "group": version.group,
        "number": version.version,
        "approval_status": version.approval_status,
        "package_uri": version.artifact_uri,
        "package_sha256": version.sha256,
    }
