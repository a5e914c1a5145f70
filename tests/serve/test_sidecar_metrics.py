"""Worker counter snapshots folded into the supervisor's counters: growth only, resets kept."""

from __future__ import annotations

from shipyard.pipeline import Workspace
from shipyard.serve.sidecar_metrics import WorkerSidecarCounts


def test_snapshots_add_growth_and_survive_a_worker_reset(workspace: Workspace) -> None:
    totals = WorkerSidecarCounts(workspace.endpoints)
    key = ("capture", "ep", "v")
    totals.apply(1, {key: (3.0, 0.0, 0.0, 1.0)})
    totals.apply(2, {key: (2.0, 1.0, 0.0, 0.0)})
    totals.apply(1, {key: (5.0, 0.0, 0.0, 1.0)})  # worker 1 grew by 2
    totals.apply(1, {key: (5.0, 0.0, 0.0, 1.0)})  # a repeated snapshot adds nothing
    totals.apply(2, {key: (1.0, 1.0, 0.0, 0.0)})  # worker 2 went down: rebuilt, 1 is new
    # A shadow the supervisor does not serve is skipped, not an error.
    totals.apply(2, {("shadow", "nowhere", "Shadow"): (1.0, 1.0, 0.0, 0.0, 0.5)})
    counts = workspace.endpoints.capture.counters("ep", "v")
    assert (counts.captured, counts.dropped, counts.errors, counts.files) == (8, 1, 0, 1)
