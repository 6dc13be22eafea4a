"""The Docker executor: an image per environment, a fresh hardened container per run."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import docker
import docker.errors

from runner.cells import Cell
from runner.config import BuildSettings, Limits
from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.executors import Prepared, PrepareFailure, docker_run, local_engine
from runner.executors.docker_images import Builder, BuiltImage, read_lock, repository
from runner.executors.host_process import gpu_unavailable
from runner.outcome import RawRun
from runner.progress import Progress
from workload.contract import JobSpec


def connect() -> docker.DockerClient:
    """The engine DOCKER_HOST names (default the local socket), or one line saying why it cannot be reached."""
    endpoint = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(use_ssh_client=endpoint.startswith("ssh://"))  # ssh://: the system ssh and its config
        client.ping()
    except docker.errors.DockerException as error:
        if "Permission denied" in str(error):
            raise UserError(f"permission denied on the Docker engine at {endpoint}: add yourself to the docker group or run as root")
        raise UserError(
            f"cannot reach the Docker engine at {endpoint}: start it (systemctl start docker, or dockerd) or point DOCKER_HOST at a running one"
        )
    return client


class DockerExecutor:
    name = "docker"
    isolation = "container"

    def __init__(self, build: BuildSettings, gpu_devices: str, progress: Progress, client: docker.DockerClient | None = None):
        self.client = client or connect()
        self.gpu_devices = gpu_devices  # "all", "none" or indices: what GPU cells are given
        self.builder = Builder(self.client, build, progress)
        self.progress = progress

    def describe_host(self) -> dict:
        version = self.client.version()
        return {"docker_engine": version.get("Version", "unknown"), "docker_api": version.get("ApiVersion", "unknown")}

    def prepare(self, spec: EnvironmentSpec) -> Prepared | PrepareFailure:
        built = self.builder.build(spec)
        if not isinstance(built, BuiltImage):
            return PrepareFailure(spec, built.reason, built.log_tail)
        return self.prepared(built)

    def existing(self, spec: EnvironmentSpec) -> Prepared | None:
        """The environment, where this engine has its image already; None rather than a build."""
        built = self.builder.existing(spec)
        return self.prepared(built) if built else None

    def prepared(self, built: BuiltImage) -> Prepared:
        """A built image as an environment: its tag, what it was built from, and its lock."""
        spec, base = built.spec, built.base
        provenance = {"name": spec.name, "image": built.tag, "image_id": built.image_id, "base_image": base.reference,
                      "base_image_requested": base.requested, "base_image_id": base.image_id,
                      "base_image_digest": base.digest, "base_image_how": base.how}
        lock = read_lock(self.client, built)
        if lock:
            provenance["lock"] = lock.digest
        return Prepared(spec, built.tag, tuple(provenance.items()), lock=lock)

    def unavailable(self, kind: str, probe: Prepared) -> str | None:
        if kind != "gpu":
            return None
        return docker_run.gpu_unavailable(self.client, probe.handle, self.gpu_devices)

    def gpu_outlook(self) -> str | None:
        # Only a local engine's host tells: a remote engine's GPUs are found out with its first image.
        return gpu_unavailable(self.gpu_devices) if local_engine() else None

    def outlook(self, spec: EnvironmentSpec) -> str:
        if self.client.images.list(name=repository(spec)):
            return f"image {repository(spec)} built before: rebuilt only if its recipe or base changed"
        return f"image {repository(spec)} to build (minutes: a framework's wheels are hundreds of MB, torch's CUDA libraries 3 GB)"

    def gpu_inventory(self, probe: Prepared) -> tuple[str | None, list[dict]]:
        """What unavailable("gpu") says, and the GPUs a container here is given (nvidia-smi's index, name, driver, memory)."""
        return docker_run.gpu_probe(self.client, probe.handle, self.gpu_devices)

    def on_devices(self, devices: str) -> DockerExecutor:
        """This executor, on the same engine and with the same builder, giving GPU cells these GPUs instead."""
        chosen = copy.copy(self)
        chosen.gpu_devices = devices
        return chosen

    def run(self, cell: Cell, job: JobSpec, prepared: Prepared, limits: Limits, run_folder: Path) -> RawRun:
        devices = docker_run.device_requests(self.gpu_devices) if cell.kind == "gpu" else []
        return docker_run.run_container(
            self.client, prepared.handle, job, dict(prepared.spec.variables), devices, limits,
            cell.workload.timeout_minutes * 60.0, docker_run.run_labels(run_folder, cell.id), self.progress,
        )

    def cleanup(self, run_folder: Path) -> int:
        return docker_run.remove_run(self.client, run_folder)
