"""Stage 4's seam: the ways a cell can be run, behind one small protocol.

An executor makes the environment a cell needs, says whether this host can
run cells of a kind (and why not), runs the workload with a job spec, cleans up
after a run, and describes the host and the isolation it gives. It reports what
it saw as a RawRun; deciding the outcome is outcome.decide's, the same for all.
Docker gives every run a container of its own; venv and local run the workload
as a plain process on the host (host_process), in a virtualenv made for the
environment or in an interpreter taken as it is, without isolation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from runner.cells import Cell
from runner.config import BuildSettings, Limits
from runner.environments import EnvironmentSpec
from runner.locks import Lock
from runner.outcome import RawRun
from workload.contract import JobSpec

IMAGE_NAMESPACE = "cudnn-matrix"  # Docker images are cudnn-matrix/<environment name>; `list` shows them whatever runs the cells


@dataclass(frozen=True)
class Prepared:
    """An environment ready to run cells in."""

    spec: EnvironmentSpec
    handle: str  # what the executor runs: an image tag for Docker
    provenance: tuple[tuple[str, str], ...]  # what it was really made from, for every record run in it
    variables: tuple[tuple[str, str], ...] = ()  # set for every run in it besides the spec's: what only the made environment knows
    lock: Lock | None = None  # every distribution installed in it (runner/locks.py); None where nothing was installed (local)


@dataclass(frozen=True)
class PrepareFailure:
    spec: EnvironmentSpec
    reason: str
    log_tail: str


@dataclass(frozen=True)
class Unsuitable:
    """An environment this executor will not make here, by design rather than by failure: its cells are excluded.

    The local executor installs nothing, so an interpreter with other versions than a cell asks
    for cannot run it; that says nothing against the cell, as the compatibility table's exclusions do not.
    """

    spec: EnvironmentSpec
    reason: str


class Executor(Protocol):
    name: str  # recorded in every record
    isolation: str  # what separates a cell from the host: "container", or "none"

    def describe_host(self) -> dict:
        """Facts about the executor on this host, for the run's manifest (engine version, ...)."""

    def prepare(self, spec: EnvironmentSpec) -> Prepared | PrepareFailure | Unsuitable:
        """Make the environment, or reuse it when nothing it is made from has changed."""

    def unavailable(self, kind: str, probe: Prepared) -> str | None:
        """Why cells of this kind ("gpu") cannot run on this host, found out with a prepared environment; None if they can."""

    def gpu_outlook(self) -> str | None:
        """Why GPU cells will not run here, where that is known before any environment is made; None: they may (unavailable decides)."""

    def outlook(self, spec: EnvironmentSpec) -> str | Unsuitable:
        """What prepare would do for this environment, found out without doing it; Unsuitable where it would not make it."""

    def run(self, cell: Cell, job: JobSpec, prepared: Prepared, limits: Limits, run_folder: Path) -> RawRun:
        """Run the workload once with this job spec and report what was seen; never raises for the workload's failures."""

    def cleanup(self, run_folder: Path) -> int:
        """Remove whatever the run left behind (after an interrupt, or before a resume); how many containers or processes."""


@dataclass(frozen=True)
class Wanted:
    """What any executor is made from: the matrix's build settings, the GPUs its GPU cells get, and --python."""

    build: BuildSettings
    gpu_devices: str
    python: str
    progress: object  # runner.progress.Progress: where it says what it builds


def _docker(wanted: Wanted) -> Executor:
    from runner.executors.docker_executor import DockerExecutor  # Docker's SDK only where Docker is used: a venv host may lack it

    return DockerExecutor(wanted.build, wanted.gpu_devices, wanted.progress)


def _venv(wanted: Wanted) -> Executor:
    from runner.executors.venv_executor import VenvExecutor

    return VenvExecutor(wanted.python, wanted.gpu_devices, wanted.progress)


def _local(wanted: Wanted) -> Executor:
    from runner.executors.local_executor import LocalExecutor

    return LocalExecutor(wanted.python, wanted.gpu_devices, wanted.progress)


# Executors by the name --executor gives: the seam tests register a fake at.
REGISTRY: dict[str, Callable[[Wanted], Executor]] = {"docker": _docker, "venv": _venv, "local": _local}
HOST_PROCESSES = ("venv", "local")  # without isolation: the workload as a process on this host, inside a job's cgroup


def make(name: str, wanted: Wanted) -> Executor:
    """The executor of that name, made for these settings."""
    return REGISTRY[name](wanted)


def local_engine() -> bool:
    """Whether the Docker engine is this host's own, whose GPUs this host's nvidia-smi tells of; a remote one's it cannot."""
    return os.environ.get("DOCKER_HOST", "unix://").startswith("unix://")


def provenance(prepared: Prepared | PrepareFailure | Unsuitable | None, spec: EnvironmentSpec) -> dict[str, str]:
    """A record's `environment` mapping: the executor's provenance, or what was asked for when nothing was made."""
    if isinstance(prepared, Prepared):
        return dict(prepared.provenance)
    return {"name": spec.name, "base": spec.base}
