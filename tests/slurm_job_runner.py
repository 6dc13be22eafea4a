"""`python -m runner` with a fake executor at the seam: what the Slurm tests' jobs (and runners) run.

No cell can compute on this machine's fake GPUs, and TensorFlow cells take minutes, so the
tests that are about dispatch run this instead: the same CLI, the same run-cell, the same
Slurm client and merging, with tests/fake_executor.py's executor in the job, which:

- runs GPU cells as on a node with GPUs (ok, with a measurement), and puts the GPU devices
  it was given (from SLURM_JOB_GPUS, through run-cell) into its provenance;
- sleeps, per workload, CUDNN_MATRIX_FAKE_SECONDS (JSON: {"workload": seconds}) before it
  answers: no CPU is used, so cells on nodes sharing two cores do not slow each other;
- sleeps for good (until the job is cancelled) for `fault: hang`.

Jobs run `python tests/slurm_job_runner.py run-cell ...`: dispatch.slurm.RUNNER_COMMAND is
pointed here, in this process and in any submitting runner started from the tests.
"""

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

from fake_executor import FakeExecutor, measurement, record_line  # noqa: E402
from runner import cli, executors  # noqa: E402
from runner.dispatch import slurm  # noqa: E402
from runner.executors import Prepared  # noqa: E402
from runner.outcome import RawRun  # noqa: E402

COMMAND = [sys.executable, str(Path(__file__).resolve())]


class NodeExecutor(FakeExecutor):
    def __init__(self, gpu_devices: str):
        super().__init__()
        self.gpu_devices = gpu_devices

    def prepare(self, spec):
        prepared = super().prepare(spec)
        if isinstance(prepared, Prepared):
            prepared = dataclasses.replace(prepared, provenance=prepared.provenance + (("gpu_devices_given", self.gpu_devices),))
        return prepared

    def unavailable(self, kind, probe):
        return None

    def run(self, cell, job, prepared, limits, run_folder):
        seconds = json.loads(os.environ.get("CUDNN_MATRIX_FAKE_SECONDS", "{}")).get(cell.workload.name, 0)
        time.sleep(seconds)
        while job.fault == "hang":
            time.sleep(1)  # until scancel's SIGTERM ends the job
        if job.expect_gpu and job.fault == "none":
            return RawRun(exit_code=0, output=record_line(measurement(job)) + "\n")
        return super().run(cell, job, prepared, limits, run_folder)


def use_fake_nodes() -> None:
    executors.REGISTRY["docker"] = lambda wanted: NodeExecutor(wanted.gpu_devices)
    slurm.RUNNER_COMMAND = COMMAND


if __name__ == "__main__":
    use_fake_nodes()
    sys.exit(cli.main())
