"""A fake at the executor seam: it behaves, per workload fault, the way the real workload does in Docker.

The Docker tests prove the real side (tests/test_docker_failures.py runs the same faults in real
containers); this fake lets the session, the outcome ladder and the records be tested in milliseconds.
"""

from __future__ import annotations

import json

from runner.executors import Prepared, PrepareFailure
from runner.locks import INSTALLER, Lock, Pin
from runner.outcome import RawRun
from measurements import epoch
from workload.contract import MEASUREMENT_SCHEMA, RECORD_PREFIX, JobSpec


def measurement(job: JobSpec, seconds: float = 1.0, failure: str | None = None) -> dict:
    epochs = [] if failure else [epoch(seconds, images_per_second=job.train_images / (seconds * 0.8)) for _ in range(job.epochs)]
    data = {"schema": MEASUREMENT_SCHEMA, "cell_id": job.cell_id, "workload": job.model,
            "data": {"kind": "synthetic", "train_images": job.train_images, "validation_images": job.validation_images},
            "warmup_epochs": job.warmup_epochs, "epochs": epochs, "versions": {"python": "3.11.9", "tensorflow": "2.21.0", "keras": "3.15.1"},
            "host": {}, "settings": {}, "devices": [], "gpu": {"registered": []}}
    if failure:
        data["failure"] = failure
    return data


def record_line(data: dict) -> str:
    return RECORD_PREFIX + json.dumps(data)


class FakeExecutor:
    name = "fake"
    isolation = "none"

    def __init__(self, failing_environments=(), no_gpu: str | None = None, locks: bool = False):
        self.failing_environments = set(failing_environments)
        self.no_gpu = no_gpu
        self.locks = locks  # make each environment's lock, as Docker and venv do: the same packages whatever the spec
        self.jobs: list[JobSpec] = []  # every job it was given, in order
        self.prepared: list[str] = []
        self.cleaned: list[str] = []

    def describe_host(self) -> dict:
        return {"fake": True}

    def prepare(self, spec):
        self.prepared.append(spec.name)
        if spec.name in self.failing_environments:
            return PrepareFailure(spec, "image build failed: no matching distribution", "pip: no matching distribution")
        facts = (("name", spec.name), ("handle", f"fake/{spec.name}"))
        if not self.locks:
            return Prepared(spec, f"fake/{spec.name}", facts)
        lock = Lock(spec.name, INSTALLER, (("fake", "yes"),), (Pin("numpy", "2.1.3", "a" * 64), Pin("protobuf", "5.29.1", "b" * 64)))
        return Prepared(spec, f"fake/{spec.name}", facts + (("lock", lock.digest),), lock=lock)

    def unavailable(self, kind, probe):
        return self.no_gpu if kind == "gpu" else None

    def gpu_outlook(self):
        return self.no_gpu

    def outlook(self, spec):
        return "fake: built on demand"

    # What the Docker executor adds for remote hosts: which GPUs its containers see, and a copy giving cells others.
    gpu_devices = "all"

    def gpu_inventory(self, probe):
        return self.no_gpu, []

    def on_devices(self, devices):
        return self

    def run(self, cell, job, prepared, limits, run_folder) -> RawRun:
        self.jobs.append(JobSpec.from_json(job.to_json()))  # what the workload would accept
        fault = job.fault
        if fault == "crash":
            return RawRun(exit_code=1, output="Traceback (most recent call last):\ninjected fault: crash\n")
        if fault == "hang":
            return RawRun(exit_code=137, output="", timed_out=True)
        if fault == "memory":
            return RawRun(exit_code=137, output="", out_of_memory=True)
        if fault == "garbage":
            return RawRun(exit_code=0, output=RECORD_PREFIX + '{"epochs": [1, 2\n')
        if job.expect_gpu:
            return RawRun(exit_code=3, output=record_line(measurement(job, failure="expected a GPU, TensorFlow registered none")))
        return RawRun(exit_code=0, output=f"epoch 1/{job.epochs}: 1.00 s\n" + record_line(measurement(job)) + "\n")

    def cleanup(self, run_folder):
        self.cleaned.append(run_folder.name)
        return 0


def fault_workloads(model: str) -> str:
    """A matrix's workloads: one that trains, and one for each way a cell can fail (the same in the Docker tests)."""
    small = f"model: {model}, epochs: 2, train_images: 64, validation_images: 32"
    return f"""workloads:
  {model}: {{{small}}}
  crash: {{{small}, fault: crash}}
  garbage: {{{small}, fault: garbage}}
  hang: {{{small}, fault: hang, timeout_minutes: 0.1}}
  memory: {{{small}, fault: memory}}
"""
