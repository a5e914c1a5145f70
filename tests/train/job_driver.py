"""Runs one training job in its own process, for the kill tests (not a test module).

    python tests/train/job_driver.py SPEC PAUSE_ROUND

Prints ``job <id>`` once the job exists and ``round <n>`` after every round; at PAUSE_ROUND it
prints ``paused`` and sleeps, so the test can SIGKILL it at exactly that round.
"""

from __future__ import annotations

import sys
import time

from shipyard.core.config import load_settings
from shipyard.pipeline import Workspace
from shipyard.pipeline.training import run_training
from shipyard.train import TrainingJob, load_spec


def main(spec_path: str, pause_round: int) -> None:
    workspace = Workspace.open(load_settings())

    def created(job: TrainingJob) -> None:
        print(f"job {job.id}", flush=True)

    def progress(done: int, total: int) -> None:
        print(f"round {done}", flush=True)
        if done == pause_round:
            print("paused", flush=True)
            time.sleep(3600)

    job = run_training(workspace, load_spec(spec_path), progress=progress, on_created=created)
    print(f"ended {job.status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
