"""Remote Docker hosts: cells run on rented boxes through each one's own Docker engine, over SSH or TLS.

No scheduler and no shared storage: this runner talks to every engine through the
Docker SDK (`ssh://user@box` runs the system `ssh`, so keys and known hosts come from
the user's ssh config; `tcp://box:2376` uses TLS; anything else names a Docker context).
Each host gets a thread that runs one timed cell at a time, so cells run in parallel
across hosts and never side by side on one. Images are built on the host that runs
them (the content-hashed tag makes a second build a no-op); the data is copied once
into a named volume on the host, reused while its checksum matches. Every record
names its host and that machine's facts; this runner alone appends to results.jsonl.

A host that cannot be reached at the start is reported and its share goes to the others;
a host that dies mid-run fails only the cell it was running, and the rest go elsewhere.
Ctrl-C stops every host's thread before the run is noted as interrupted: no host takes
another run, the runs going are ended by removing their containers, and a data copy under
way is abandoned with its volume; what had finished is kept for --resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import docker.tls
import requests

from runner import datasets, dispatch, gpu_types, records, session
from runner.cells import Cell
from runner.config import Matrix
from runner.datasets import Dataset
from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.executors import Prepared, PrepareFailure
from runner.executors.docker_executor import DockerExecutor
from runner.executors.docker_images import LABEL_PREFIX
from runner.host import describe_gpus
from runner.progress import Progress
from runner.records import Record

VOLUME_PREFIX = "cudnn-matrix-data-"
FILL_MOUNT = "/fill"
COMPLETE_MARKER = ".cudnn-matrix-complete"  # written after the data: a volume without it holds a copy cut short
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def client_for(url: str) -> docker.DockerClient:
    """A client for one host: ssh:// through the system ssh, tcp:// with TLS, else a Docker context's endpoint."""
    if url.startswith("ssh://"):
        return docker.DockerClient(base_url=url, use_ssh_client=True, timeout=120)
    if url.startswith("tcp://"):
        return docker.DockerClient(base_url=url, tls=tls_config(), timeout=120)
    if url == "default":  # the CLI's own context: DOCKER_HOST, else the local engine
        return docker.from_env(use_ssh_client=os.environ.get("DOCKER_HOST", "").startswith("ssh://"), timeout=120)
    endpoint, tls = context_endpoint(url)
    return docker.DockerClient(base_url=endpoint, tls=tls, use_ssh_client=endpoint.startswith("ssh://"), timeout=120)


def docker_config() -> Path:
    """The docker CLI's configuration folder: DOCKER_CONFIG, else ~/.docker."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def context_endpoint(name: str) -> tuple[str, docker.tls.TLSConfig | bool]:
    """A Docker context's engine and TLS, read where `docker context create` writes them.

    Read here rather than through docker-py's ContextAPI: that looks for contexts beside a
    config.json, and without one (the CLI writes none until a login or `docker context use`)
    in ./contexts, so it misses contexts the CLI lists.
    """
    identity = hashlib.sha256(name.encode()).hexdigest()
    contexts = docker_config() / "contexts"
    try:
        endpoint = json.loads((contexts / "meta" / identity / "meta.json").read_text())["Endpoints"]["docker"]
        host = str(endpoint["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--host {name}: not ssh://user@host[:port], tcp://host:port, nor a Docker context in {contexts} (docker context ls)")
    certificates = contexts / "tls" / identity / "docker"
    skip_verify = bool(endpoint.get("SkipTLSVerify", False))
    if not host.startswith("tcp://") or not (skip_verify or any(certificates.glob("*.pem"))):
        return host, False  # as the CLI: a tcp:// context without TLS material speaks plain HTTP
    return host, _tls_from(certificates, verify=not skip_verify)


def tls_config() -> docker.tls.TLSConfig | bool:
    """The client certificate and CA in DOCKER_CERT_PATH (default ~/.docker), as the docker CLI takes them; else plain TLS."""
    return _tls_from(Path(os.environ.get("DOCKER_CERT_PATH") or docker_config()), verify=True)


def _tls_from(folder: Path, verify: bool) -> docker.tls.TLSConfig | bool:
    """cert.pem and key.pem: this client's certificate; ca.pem: what the engine's certificate is checked against (else the system's CAs)."""
    cert, key, ca = (folder / name for name in ("cert.pem", "key.pem", "ca.pem"))
    client_cert = (str(cert), str(key)) if cert.is_file() and key.is_file() else None
    if client_cert or ca.is_file():
        return EngineTLS(client_cert=client_cert, ca_cert=str(ca) if ca.is_file() else None, verify=verify)
    return True if verify else EngineTLS(verify=False)


class EngineTLS(docker.tls.TLSConfig):
    """docker-py's TLS settings, with the engine's CA kept where REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is set.

    requests lets those variables (set behind a TLS-intercepting proxy) replace a session's own CA
    on every request that names none, as docker-py's requests do: the engine's certificate would
    then be checked against the proxy's CA and refused.
    """

    def configure_client(self, client) -> None:
        super().configure_client(client)
        merge = client.merge_environment_settings

        def engine_ca_kept(url, proxies, stream, verify, cert):
            settings = merge(url, proxies, stream, verify, cert)
            if verify is None:
                settings["verify"] = client.verify
            return settings

        client.merge_environment_settings = engine_ca_kept


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

    def prepare(self, spec: EnvironmentSpec) -> Prepared | PrepareFailure:
        """The environment built on this host (or found up to date), once per run."""
        if spec not in self.prepared:
            self.prepared[spec] = self.executor.prepare(spec)
        return self.prepared[spec]

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
            self.dead = f"host {self.url} stopped answering ({_words(error)})"
            return False


def discover(url: str, matrix: Matrix, progress: Progress) -> Host:
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
    return Host(url, client, facts, gpu, executor, no_gpu=no_gpu)


def connect_all(urls: list[str], matrix: Matrix, progress: Progress) -> list[Host]:
    """Every host that answers; those that do not are reported and left out. None answering is an error."""
    hosts = []
    for url in urls:
        try:
            found = discover(url, matrix, progress)
        except ENGINE_ERRORS as error:
            progress(f"host {url}: unreachable, its cells go to the other hosts ({_words(error)})")
            continue
        progress(f"host {url}: {found.facts['host_cpu_cores']} CPUs, Docker {found.facts['host_docker_engine']}, "
                 f"{'NVIDIA runtime' if found.gpu else 'no GPU runtime'}")
        hosts.append(found)
    if not hosts:
        raise UserError(f"none of the {len(urls)} host(s) can be reached: {', '.join(urls)}")
    return hosts


def checksum(folder: Path) -> str:
    """The data folder by content: every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def data_volume(host: Host, folder: Path, image: str, progress: Progress, stop: threading.Event | None = None) -> str:
    """The volume on the host holding a copy of folder: reused when its checksum matches, else made and filled.

    A copy that fails, or that `stop` ends half-way, takes its volume with it.
    """
    if folder in host.volumes:
        return host.volumes[folder]
    name = VOLUME_PREFIX + checksum(folder)[:16]
    try:
        volume = host.client.volumes.get(name)
    except docker.errors.NotFound:
        volume = None
    if volume is not None and not _complete(host.client, name, image):
        progress(f"host {host.url}: volume {name} holds a copy cut short (a runner killed during it): copying again")
        volume.remove(force=True)
        volume = None
    if volume is None:
        progress(f"host {host.url}: copying data {folder} into volume {name}")
        volume = host.client.volumes.create(name, labels={f"{LABEL_PREFIX}.kind": "data", f"{LABEL_PREFIX}.source": str(folder)})
        try:
            _fill(host.client, name, folder, image, stop or threading.Event())
        except BaseException:
            volume.remove(force=True)  # never a half-filled volume under a checksum's name
            raise
    else:
        progress(f"host {host.url}: data {folder} already there (volume {name})")
    host.volumes[folder] = name
    return name


def _complete(client: docker.DockerClient, volume: str, image: str) -> bool:
    """Whether the volume's copy was finished: its marker, written last, is there (a kill -9 mid-copy leaves none)."""
    container = client.containers.create(image, entrypoint=["true"], volumes={volume: {"bind": FILL_MOUNT, "mode": "ro"}},
                                         network_mode="none", labels={f"{LABEL_PREFIX}.probe": "data"})
    try:
        container.get_archive(f"{FILL_MOUNT}/{COMPLETE_MARKER}")
        return True
    except docker.errors.NotFound:
        return False
    finally:
        container.remove(force=True)


class Stopped(Exception):
    """The run was interrupted: this host's thread ends without starting anything more."""


def _fill(client: docker.DockerClient, volume: str, folder: Path, image: str, stop: threading.Event) -> None:
    """Copy folder into the volume through a container that only mounts it: a tar in a temporary file, sent in blocks.

    The data can be hundreds of MB, so it is never held in memory whole.
    """
    with tempfile.TemporaryFile(prefix="cudnn-matrix-data-", suffix=".tar") as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for path in sorted(folder.rglob("*")):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
                info.uid = info.gid = 0
                info.mode |= 0o755 if path.is_dir() else 0o644
                if path.is_file():
                    with open(path, "rb") as stream:
                        tar.addfile(info, stream)
                elif path.is_dir():
                    tar.addfile(info)
        size = archive.tell()
        archive.seek(0)
        container = client.containers.create(image, entrypoint=["true"], volumes={volume: {"bind": FILL_MOUNT, "mode": "rw"}},
                                             network_mode="none", labels={f"{LABEL_PREFIX}.probe": "data"})
        try:
            if not container.put_archive(FILL_MOUNT, _Upload(archive, size, stop)):
                raise docker.errors.APIError(f"the engine refused the data for volume {volume}")
            if not container.put_archive(FILL_MOUNT, _marker()):
                raise docker.errors.APIError(f"the engine refused the completion marker for volume {volume}")
        finally:
            container.remove(force=True)


def _marker() -> bytes:
    """A tar of the empty file that says a volume's copy is whole."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(COMPLETE_MARKER)
        info.mode = 0o644
        tar.addfile(info)
    return archive.getvalue()


class _Upload:
    """A file sent as a request's body, block by block, with its length; `stop` ends the sending between two blocks."""

    def __init__(self, file, size: int, stop: threading.Event):
        self.file, self.size, self.stop = file, size, stop

    def __len__(self) -> int:
        return self.size

    def __iter__(self):  # what tells requests that this body is a stream
        return iter(lambda: self.read(1 << 20), b"")

    def read(self, size: int = -1) -> bytes:
        if self.stop.is_set():
            raise Stopped("the run was interrupted during the data copy")
        return self.file.read(size)


class Runs:
    """The (cell, repeat) runs left, handed to host threads one at a time; records appended under one lock.

    A GPU cell taken by a host whose GPUs have not been looked at yet is unsettled: the
    look may give it back. A host with nothing it can take waits while any run is
    unsettled, so that a run given back never finds every other host gone.
    """

    def __init__(self, runs: list[tuple[Cell, int]], run_folder: Path, progress: Progress):
        self.left = list(runs)
        self.total = len(runs)
        self.started = 0
        self.failed = 0
        self.unsettled = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.stop = threading.Event()  # Ctrl-C: no host takes another run
        self.run_folder = run_folder
        self.progress = progress

    def take(self, host: Host) -> tuple[Cell, int, int] | None:
        with self.changed:
            while not host.dead and not self.stop.is_set():
                for index, (cell, repeat) in enumerate(self.left):
                    if host.can_take(cell):
                        del self.left[index]
                        self.started += 1
                        self.unsettled += cell.kind == "gpu" and not host.gpu_checked
                        return cell, repeat, self.started
                if not self.unsettled:
                    break
                self.changed.wait(1.0)
            return None

    def settle(self) -> None:
        """The unsettled run this host took is its to run."""
        with self.changed:
            self.unsettled -= 1
            self.changed.notify_all()

    def give_back(self, cell: Cell, repeat: int) -> None:
        """An unsettled run this host cannot do after all: first in line for the others."""
        with self.changed:
            self.left.insert(0, (cell, repeat))
            self.started -= 1
            self.unsettled -= 1
            self.changed.notify_all()

    def keep(self, record: Record) -> None:
        with self.lock:
            kept = session.keep(self.run_folder, record, self.progress)
            self.failed += record.status == "failed" or not kept


def run(plan: session.Plan, urls: list[str], results_dir: Path, resume: str | None, repeats: int, progress: Progress) -> session.RunResult:
    """Every selected cell `repeats` times across the hosts; one merged run folder."""
    resumed = records.find_run(results_dir, resume) if resume else None
    if resumed:
        dispatch.refuse_resume_elsewhere(resumed, "ssh")
    hosts = connect_all(urls, plan.matrix, progress)
    manifest_host = {"dispatch": "ssh", "hosts": {host.url: host.facts for host in hosts}}
    run_folder = resumed or records.new_run(results_dir, plan.matrix.path, manifest_host)
    with records.hold(run_folder):
        for host in hosts if resumed else ():
            try:
                session.remove_left_behind(run_folder, host.executor.cleanup(run_folder), f" on host {host.url}", progress)
            except ENGINE_ERRORS as error:
                progress(f"host {host.url}: cannot look for containers its earlier runner left ({_words(error)})")
        state = "stopped"
        try:
            failed = _run(plan, hosts, run_folder, repeats, progress)
            state = "finished"
        except KeyboardInterrupt:
            state = "interrupted"
            raise
        finally:
            session.note_end(run_folder, state, progress)
            if state != "finished":
                for host in hosts:
                    try:
                        host.executor.cleanup(run_folder)
                    except ENGINE_ERRORS:
                        pass
                progress(f"{state}: finished cells are in {run_folder / records.RESULTS_FILE}; "
                         f"`python -m runner run --dispatch ssh --resume {run_folder.name}` runs the rest")
    progress(f"results: {run_folder / records.RESULTS_FILE}")
    return session.RunResult(run_folder, records.load(run_folder), failed)


def _run(plan: session.Plan, hosts: list[Host], run_folder: Path, repeats: int, progress: Progress) -> int:
    earlier = records.load(run_folder)
    measured = Counter(record.cell_id for record in earlier if record.status == "ok")
    noted = {record.cell_id for record in earlier if record.status in ("excluded", "skipped")}
    todo = [cell for cell in plan.selected if measured[cell.id] < repeats]
    runs = Runs([], run_folder, progress)
    no_gpu = "no host can run GPU cells: " + "; ".join(host.no_gpu for host in hosts if host.no_gpu)
    runnable = []
    for cell in todo:
        why = ("excluded", cell.excluded) if cell.excluded else ("skipped", no_gpu) if cell.kind == "gpu" and not any(h.gpu for h in hosts) else None
        if why is None:
            runnable.append(cell)
        elif cell.id not in noted:
            runs.keep(session._record(hosts[0].executor, cell, None, why[0], why[1], records.now()))
    data = {cell.workload.name: datasets.prepare(cell.workload, progress) for cell in runnable}
    # By number: hosts finish out of order, so an interrupted run may hold repeat 1 but not 0.
    left = {cell.id: session.repeats_left(earlier, cell.id, repeats) for cell in runnable}
    runs.left = session.interleaved(runnable, left)
    runs.total = len(runs.left)
    progress(f"run {run_folder.name}: {runs.total} run(s) over {len(hosts)} host(s), results in {run_folder}")
    threads = [Worker(host, plan.matrix, runs, data, repeats) for host in hosts]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while not thread.ended.wait(0.5):  # in steps: Ctrl-C reaches the main thread
                pass
    except KeyboardInterrupt:
        _stop(hosts, threads, runs, run_folder, progress)
        raise
    for cell, repeat in runs.left:  # no host that could run them is left
        runs.keep(dataclasses.replace(_left_over(hosts, cell), repeat=repeat))
    return runs.failed


class Worker(threading.Thread):
    """One host's thread (_work), with `ended` set as it ends.

    Waited for by `ended`, not join: on Python 3.11 a join interrupted by Ctrl-C can mark the
    thread as stopped while it still runs (bpo-45274's fix), and is_alive() then lies.
    """

    def __init__(self, host: Host, matrix: Matrix, runs: Runs, data: dict[str, Dataset], repeats: int):
        super().__init__(name=f"host {host.url}", daemon=True)
        self.work = (host, matrix, runs, data, repeats)
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            _work(*self.work)
        finally:
            self.ended.set()


def _stop(hosts: list[Host], threads: list[Worker], runs: Runs, run_folder: Path, progress: Progress,
          patience: float = 60.0) -> None:
    """Ctrl-C: every host's thread ends before the run is noted as interrupted, so that no record and no container come after.

    No host takes another run; the runs going end as their containers are removed, again while
    any thread is still busy, since one may be starting a container right now. A thread still busy
    after `patience` (an image build that will not end) is named and left to end with the runner.
    """
    runs.stop.set()
    progress("interrupted: stopping the cells running on " + ", ".join(host.url for host in hosts))
    deadline = time.monotonic() + patience
    while True:
        for host in hosts:
            try:
                host.executor.cleanup(run_folder)
            except ENGINE_ERRORS:
                pass  # a host that no longer answers has nothing this runner can remove
        busy = [thread for thread in threads if not thread.ended.is_set()]
        if not busy or time.monotonic() > deadline:
            break
        busy[0].ended.wait(0.5)
    for thread in busy:
        progress(f"{thread.name}: still busy after {patience:.0f} s; left to end with the runner")


def _left_over(hosts: list[Host], cell: Cell) -> Record:
    """A run no host took: skipped when no host has a GPU for it, failed when a host that might have run it died."""
    dead = "; ".join(host.dead for host in hosts if host.dead)
    if cell.kind == "gpu" and not any(host.gpu for host in hosts):
        reason = "no host can run GPU cells: " + "; ".join(host.no_gpu for host in hosts if host.no_gpu)
        return session._record(hosts[0].executor, cell, None, "skipped", reason + (f"; {dead}" if dead else ""), records.now())
    wanted = cell.axis(gpu_types.AXIS)
    if cell.kind == "gpu" and wanted and all(host.gpu_checked or not host.gpu for host in hosts):
        reason = f"no host has a GPU of type {wanted}: " + "; ".join(host.gpu_summary() for host in hosts)
        return session._record(hosts[0].executor, cell, None, "skipped", reason, records.now())
    return session._record(hosts[0].executor, cell, None, "failed", f"not run: {dead or 'no host can run it'}", records.now())


def _work(host: Host, matrix: Matrix, runs: Runs, data: dict[str, Dataset], repeats: int) -> None:
    """One host's thread: take a run, run it, keep its record; until none is left that it can run, or it dies."""
    progress = runs.progress
    while not host.dead and not runs.stop.is_set() and (taken := runs.take(host)):
        cell, repeat, number = taken
        if cell.kind == "gpu" and not host.gpu_checked:
            fits = False
            try:
                _look_at_gpus(host, cell, progress)
                fits = host.can_take(cell)
            finally:  # on an unexpected error too: the run goes back, and no host waits for it forever
                runs.settle() if fits else runs.give_back(cell, repeat)
            if not fits:
                continue
        label = f"[{number}/{runs.total}] {cell.id}" + (f" (repeat {repeat + 1}/{repeats})" if repeats > 1 else "") + f" on {host.url}"
        progress(label)
        try:
            record = _run_on(host, matrix, cell, data[cell.workload.name], runs.run_folder, progress, runs.stop)
        except Stopped:
            return
        if runs.stop.is_set() and record.status != "ok":
            progress(f"{label}: ended by the interrupt, not kept: --resume runs it again")
            return
        if record.status == "failed" and not host.alive():
            record = dataclasses.replace(record, reason=f"{host.dead}: {record.reason}")
            progress(f"{host.dead}: its other cells go to the other hosts")
        record = dataclasses.replace(record, repeat=repeat, environment={**record.environment, **host.facts})
        runs.keep(record)
        progress(f"{label}: {record.status}{': ' + record.reason if record.reason else ''}")


def _look_at_gpus(host: Host, cell: Cell, progress: Progress) -> None:
    """Whether a container here really gets a GPU, and which: asked once, with the first GPU cell's image, as a local run asks."""
    host.gpu_checked = True
    try:
        environment = host.prepare(cell.environment)
        why, host.gpus = host.executor.gpu_inventory(environment) if isinstance(environment, Prepared) else (None, [])
    except (*ENGINE_ERRORS, UserError) as error:
        why = _words(error)
    if why:
        host.gpu, host.no_gpu = False, f"host {host.url}: {why}"
        progress(f"{host.no_gpu}; its GPU cells go to the other hosts")
        return
    host.facts.update(host_gpu_count=str(len(host.gpus)), host_gpus=describe_gpus(host.gpus))
    progress(f"host {host.url}: GPUs {host.facts['host_gpus']}")
    if not host.can_take(cell):
        progress(f"host {host.url}: no GPU of type {cell.axis(gpu_types.AXIS)}; its cells of that type go to the other hosts")


def _run_on(host: Host, matrix: Matrix, cell: Cell, dataset: Dataset, run_folder: Path, progress: Progress,
            stop: threading.Event | None = None) -> Record:
    """One run of a cell on a host: its image built there (or found up to date), its data in a volume there.

    A cell of a gpu_type is given the host's GPUs of that type (on a host with mixed GPUs, not the others).
    Raises Stopped when the run is interrupted before the cell's container starts.
    """
    stop = stop or threading.Event()
    executor = host.executor.on_devices(host.devices_for(cell)) if cell.kind == "gpu" else host.executor
    try:
        environment = host.prepare(cell.environment)
        if isinstance(environment, Prepared):
            volume = data_volume(host, dataset.path, environment.handle, progress, stop)
            dataset = dataclasses.replace(dataset, path=volume)  # the container mounts the volume, not a local path
        if stop.is_set():
            raise Stopped("the run was interrupted before the cell started")
        record = session.run_cell(executor, matrix, cell, environment, dataset, run_folder)
    except (*ENGINE_ERRORS, UserError) as error:
        failure = PrepareFailure(cell.environment, f"on host {host.url}: {_words(error)}", "")
        record = session.run_cell(executor, matrix, cell, failure, dataset, run_folder)
    if cell.kind == "gpu":
        record = dataclasses.replace(record, environment={**record.environment, "gpu_devices": executor.gpu_devices})
    return record


def _words(error: Exception) -> str:
    text = getattr(error, "explanation", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())[:300]
