"""The boxes of an SSH run: each remote Docker engine, what it has (CPUs, memory, GPUs), and what is made on it.

An environment is made on a box once per run: built there (the content-hashed tag makes a second
build a no-op), or shipped from this machine's engine (runner/dispatch/shipping.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import docker

from runner import gpu_types
from runner.cells import Cell
from runner.config import Matrix
from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.executors import Prepared, PrepareFailure
from runner.executors.docker_engine import ENGINE_ERRORS, client_for
from runner.executors.docker_executor import DockerExecutor
from runner.executors.docker_volumes import data_volume
from runner.host import describe_gpus
from runner.dispatch.shipping import Shipper
from runner.progress import Progress


@dataclass
class Host:
    """One remote engine and what it can do; `dead` is set, with the reason, once it stops answering."""

    url: str
    client: docker.DockerClient
    facts: dict[str, str]
    gpu: bool
    executor: DockerExecutor
    prepared: dict = field(default_factory=dict)  # EnvironmentSpec -> Prepared | PrepareFailure, made on first use
    volumes: dict[Path, str] = field(default_factory=dict)  # local data folder -> the volume holding its copy
    dead: str = ""
    no_gpu: str = ""  # why GPU cells cannot run here after all, found with the first one
    gpu_checked: bool = False
    gpus: list[dict] = field(default_factory=list)  # what nvidia-smi in a container here says, once checked
    shipper: Shipper | None = None  # this machine's engine, where images may be shipped from

    def prepare(self, spec: EnvironmentSpec) -> Prepared | PrepareFailure:
        """The environment shipped here from this machine, or built here (or found up to date), once per run."""
        if spec not in self.prepared:
            shipped = self.shipper.prepare(self.executor, self.url, spec) if self.shipper else None
            self.prepared[spec] = shipped or self.executor.prepare(spec)
        return self.prepared[spec]

    def volume(self, folder: Path, image: str, progress: Progress, stop: threading.Event | None = None) -> str:
        """The volume here holding a copy of the data folder: looked for once per run, made and filled when missing."""
        if folder not in self.volumes:
            self.volumes[folder] = data_volume(self.client, folder, image, lambda said: progress(f"host {self.url}: {said}"), stop)
        return self.volumes[folder]

    def can_take(self, cell: Cell) -> bool:
        """Whether this host may run the cell: GPU cells only with a GPU, and of the cell's gpu_type once the GPUs have names."""
        if cell.kind != "gpu":
            return True
        wanted = cell.axis(gpu_types.AXIS)
        return self.gpu and not (wanted and self.gpu_checked and not self.devices_for(cell))

    def devices_for(self, cell: Cell) -> str:
        """The GPUs the cell is given here: those of its gpu_type among gpu.devices ("" when none is); else gpu.devices."""
        wanted = cell.axis(gpu_types.AXIS)
        if not wanted:
            return self.executor.gpu_devices
        offered = [gpu for gpu in self.gpus if self.executor.gpu_devices == "all" or gpu["index"] in self.executor.gpu_devices.split(",")]
        return ",".join(offered[position]["index"] for position in gpu_types.matching(wanted, [gpu["name"] for gpu in offered]))

    def gpu_summary(self) -> str:
        """What this host has to offer GPU cells, in a few words, for the reason a cell went nowhere."""
        if not self.gpu:
            return self.no_gpu
        if not self.gpu_checked:
            return f"host {self.url}: GPUs not yet looked at"
        return f"host {self.url}: " + (describe_gpus(self.gpus) if self.gpus else "its GPUs could not be named (no nvidia-smi in the container)")

    def alive(self) -> bool:
        try:
            self.client.ping()
            return True
        except ENGINE_ERRORS as error:
            self.dead = f"host {self.url} stopped answering ({words(error)})"
            return False


def discover(url: str, matrix: Matrix, progress: Progress, shipper: Shipper | None = None) -> Host:
    """Connect and ask the engine what it has: CPUs, memory, the NVIDIA runtime. Raises ENGINE_ERRORS when unreachable."""
    client = client_for(url)
    client.ping()
    info = client.info()
    version = client.version()
    runtimes = sorted(info.get("Runtimes") or {})
    facts = {"host": url, "host_name": str(info.get("Name", "")), "host_cpu_cores": str(info.get("NCPU", "")),
             "host_memory_gib": str(round(int(info.get("MemTotal", 0)) / 2**30, 1)), "host_os": str(info.get("OperatingSystem", "")),
             "host_docker_engine": str(version.get("Version", "unknown")), "host_runtimes": ",".join(runtimes)}
    devices = matrix.gpu.devices if matrix.gpu else "none"
    gpu = "nvidia" in runtimes and devices != "none"
    executor = DockerExecutor(matrix.build, devices, progress, client=client)
    no_gpu = "" if gpu else f"host {url}: " + ("gpu.devices is none" if devices == "none" else "no nvidia runtime in its Docker engine")
    return Host(url, client, facts, gpu, executor, no_gpu=no_gpu, shipper=shipper)


def connect_all(urls: list[str], matrix: Matrix, progress: Progress, ship_images: bool = False) -> list[Host]:
    """Every host that answers; those that do not are reported and left out. None answering is an error.

    Images go from this machine's engine where asked (--ship-images) or where that is the smaller download (shipping.py).
    """
    shipper = Shipper.for_run(matrix, ship_images, progress)
    hosts = []
    for url in urls:
        try:
            found = discover(url, matrix, progress, shipper)
        except ENGINE_ERRORS as error:
            progress(f"host {url}: unreachable, its cells go to the other hosts ({words(error)})")
            continue
        progress(f"host {url}: {found.facts['host_cpu_cores']} CPUs, Docker {found.facts['host_docker_engine']}, "
                 f"{'NVIDIA runtime' if found.gpu else 'no GPU runtime'}")
        hosts.append(found)
    if not hosts:
        raise UserError(f"none of the {len(urls)} host(s) can be reached: {', '.join(urls)}")
    return hosts


def words(error: Exception) -> str:
    text = getattr(error, "explanation", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())[:300]
