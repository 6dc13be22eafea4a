"""The SSH placement: cells run on rented boxes through each one's own Docker engine, over SSH or TLS.

The run itself (folder, plan, not-run records, end, resume) is session.run_placed's; this is
where each (cell, repeat) goes. The engine connection and the data volumes are the Docker
executor's (executors/docker_engine.py, docker_volumes.py).

No scheduler and no shared storage: this runner talks to every engine through the
Docker SDK (`ssh://user@box` runs the system `ssh`, so keys and known hosts come from
the user's ssh config; `tcp://box:2376` uses TLS; anything else names a Docker context).
Each host gets a thread that runs one timed cell at a time, so cells run in parallel
across hosts and never side by side on one. Images are built on the host that runs
them, or shipped there from this machine (boxes.py, shipping.py); the data is copied once
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
import threading
import time
from pathlib import Path

from runner import datasets, dispatch_settings, gpu_types, run_plan, session
from runner.dispatch import boxes
from runner.dispatch.boxes import Host, connect_all
from runner.cells import Cell
from runner.config import Matrix
from runner.datasets import Dataset
from runner.errors import UserError
from runner.executors import Prepared, PrepareFailure
from runner.executors.docker_engine import ENGINE_ERRORS
from runner.executors.docker_volumes import Stopped
from runner.host import describe_gpus
from runner.progress import Progress
from runner.records import Record
from runner.run_plan import Here, Turn, not_run


class Runs:
    """The (cell, repeat) runs left, handed to host threads one at a time; records appended under one lock.

    A host takes a whole round of a comparison group (run_plan.group_rounds) it can run every cell of, so
    that every host that runs a group's cells runs each as often. A GPU cell taken by a host whose GPUs
    have not been looked at yet is unsettled: the look may give it back, with the rest of its round. A host
    with nothing to take waits while any run is unsettled or any round held: what comes back finds a host.
    """

    def __init__(self, runs: list[tuple[Cell, int]], run_folder: Path, progress: Progress, keeper: session.Keeper | None = None,
                 hosts: list[Host] | None = None, same_node: bool = False):
        self.left = run_plan.group_rounds(runs)
        self.hosts = hosts or []  # all the run's hosts: a cell none of them can run holds no round back
        self.same_node, self.pinned = same_node, {}  # placement: same-node: comparison group -> the host that has it
        self.held: dict[str, list[tuple[Cell, int]]] = {}  # host URL -> the rest of the round it took
        self.total = len(runs)
        self.started = 0
        self.keeper = keeper
        self.unsettled = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.stop = threading.Event()  # Ctrl-C: no host takes another run
        self.run_folder = run_folder
        self.progress = progress

    def take(self, host: Host) -> tuple[Cell, int, int] | None:
        with self.changed:
            while not host.dead and not self.stop.is_set():
                if round_ := self.held.get(host.url) or self._claim(host):
                    cell, repeat = round_.pop(0)
                    self.started += 1
                    self.unsettled += cell.kind == "gpu" and not host.gpu_checked
                    return cell, repeat, self.started
                if not self.unsettled and not any(self.held.values()):
                    break
                self.changed.wait(1.0)
            return None

    def _claim(self, host: Host) -> list[tuple[Cell, int]] | None:
        """The first round whose every cell this host can run (leaving behind those no live host can), now held by it;
        with placement: same-node, of a group no other live host has had."""
        dead = [other.url for other in self.hosts if other.dead]
        for index, round_ in enumerate(self.left):
            runnable = [run for run in round_ if not self.hosts or any(other.can_take(run[0]) for other in self.hosts if other.url not in dead)]
            group = run_plan.group_of(round_[0][0])
            if runnable and self.pinned.get(group, host.url) in (host.url, *dead) and all(host.can_take(cell) for cell, _ in runnable):
                self.pinned.update({group: host.url} if self.same_node else {})
                rest = [run for run in round_ if run not in runnable]
                self.left[index:index + 1] = [rest] if rest else []
                self.held[host.url] = runnable
                return runnable
        return None

    def release(self, host: Host) -> None:
        """A host that stops (dead, interrupted, done): the rest of its round goes back, first in line for the others."""
        with self.changed:
            if rest := self.held.pop(host.url, None):
                self.left.insert(0, rest)
            self.changed.notify_all()

    def settle(self) -> None:
        """The unsettled run this host took is its to run."""
        with self.changed:
            self.unsettled -= 1
            self.changed.notify_all()

    def give_back(self, host: Host, cell: Cell, repeat: int) -> None:
        """An unsettled run this host cannot do after all: first in line for the others, with the rest of its round."""
        with self.changed:
            self.left.insert(0, [(cell, repeat), *self.held.pop(host.url, [])])
            self.started -= 1
            self.unsettled -= 1
            self.changed.notify_all()

    def keep(self, record: Record) -> None:
        self.keeper.keep(record)


def hosts_asked(plan: session.Plan, given: tuple[str, ...], executor: str, gpus: str | None) -> list[str]:
    """The hosts' URLs: --host's, else the matrix's hosts:; what SSH cannot do as asked is refused."""
    urls = list(dispatch_settings.host_urls(list(given), lambda index, expected, found: UserError(f"--host: expected {expected}, got {found}"))
                if given else plan.matrix.hosts)
    if not urls:
        raise UserError(f"--dispatch ssh: no hosts: list them under hosts: in {plan.matrix.path}, or give --host URL")
    if executor != "docker":
        raise UserError(f"--executor {executor}: remote hosts run their cells with Docker")
    if gpus:
        raise UserError("--gpus: with --dispatch ssh, GPU cells use gpu.devices of the matrix on every host")
    return urls


def run(plan: session.Plan, urls: list[str], results_dir: Path, resume: str | None, repeats: int | None, progress: Progress,
        force: bool = False, resume_command=None) -> session.RunResult:
    """Every selected cell `repeats` times across the hosts; one merged run folder."""
    return session.run_placed(plan, SSHPlacement(plan, urls, progress), results_dir, resume, repeats, progress, force, resume_command)


def run_on(hosts: list[Host], plan: session.Plan, run_folder: Path, repeats: int, progress: Progress) -> int:
    """What is left of a run, on hosts already connected, into a run folder already open; how many runs failed."""
    placement = SSHPlacement(plan, [host.url for host in hosts], progress, hosts)
    keeper = session.Keeper(run_folder, progress)
    try:
        session.carry_out(plan, placement, run_folder, repeats, keeper)
    except KeyboardInterrupt:
        placement.interrupt(run_folder)
        raise
    return keeper.failed


class SSHPlacement:
    """The SSH placement: the runs go to a queue that each host's thread takes from, one timed cell at a time per host."""

    name = "ssh"
    executor_name = "docker"

    def __init__(self, plan: session.Plan, urls: list[str], progress: Progress, hosts: list[Host] | None = None, ship_images: bool = False):
        self.plan, self.urls, self.progress, self.ship_images = plan, urls, progress, ship_images
        self.hosts = hosts or []  # connected by start(), unless given connected
        self.threads: list[Worker] = []

    def start(self) -> None:
        self.hosts = connect_all(self.urls, self.plan.matrix, self.progress, self.ship_images)

    def facts(self) -> dict:
        return {"executor": "docker", "isolation": "container", "dispatch": "ssh", "hosts": {host.url: host.facts for host in self.hosts}}

    def resume(self, run_folder: Path) -> None:
        for host in self.hosts:
            try:
                session.remove_left_behind(run_folder, host.executor.cleanup(run_folder), f" on host {host.url}", self.progress)
            except ENGINE_ERRORS as error:
                self.progress(f"host {host.url}: cannot look for containers its earlier runner left ({boxes.words(error)})")

    def prepare(self, run: session.Session) -> Here:
        self.run_folder, self.repeats = run.folder, run.repeats
        here = Here(no_gpu=None if any(host.gpu for host in self.hosts) else self._no_gpu())
        self.data = {cell.workload.name: datasets.prepare(cell.workload, self.progress) for cell in run.todo if not not_run(cell, here)}
        return here

    def _no_gpu(self) -> str:
        return "no host can run GPU cells: " + "; ".join(host.no_gpu for host in self.hosts if host.no_gpu)

    def announce(self, to_run: list[tuple[Cell, int]]) -> None:
        self.runs, self.turns = Runs([], self.run_folder, self.progress), []
        self.progress(f"run {self.run_folder.name}: {len(to_run)} run(s) over {len(self.hosts)} host(s), results in {self.run_folder}")

    def carry_out(self, turn: Turn, keeper: session.Keeper) -> None:
        self.turns.append((turn.cell, turn.repeat))  # by number: hosts finish out of order, so a resume fills gaps
        if turn.number == turn.of:  # the last one: the hosts start taking, a round of a comparison group at a time
            self.runs = Runs(self.turns, self.run_folder, self.progress, keeper, self.hosts, self.plan.matrix.placement == "same-node")
            self.threads = [Worker(host, self.plan.matrix, self.runs, self.data, self.repeats) for host in self.hosts]
            for thread in self.threads:
                thread.start()

    def finish(self, keeper: session.Keeper) -> None:
        for thread in self.threads:
            while not thread.ended.wait(0.5):  # in steps: Ctrl-C reaches the main thread
                pass
        for cell, repeat in [run for round_ in self.runs.left for run in round_] if self.threads else ():  # no host could run them
            keeper.keep(dataclasses.replace(self._left_over(cell), repeat=repeat))

    def _left_over(self, cell: Cell) -> Record:
        """A run no host took: skipped when no host has a GPU for it (of its type), failed when a host that might have run it died."""
        dead = "; ".join(host.dead for host in self.hosts if host.dead)
        wanted = cell.axis(gpu_types.AXIS)
        typed_nowhere = cell.kind == "gpu" and wanted and all(host.gpu_checked or not host.gpu for host in self.hosts)
        no_type = f"no host has a GPU of type {wanted}: " + "; ".join(host.gpu_summary() for host in self.hosts)
        here = Here(no_gpu=None if any(host.gpu for host in self.hosts) else self._no_gpu() + (f"; {dead}" if dead else ""),
                    wrong_gpu=lambda typed: ("skipped", no_type) if typed_nowhere else None)
        why = not_run(cell, here) or ("failed", f"not run: {dead or 'no host can run it'}")
        return run_plan.record(cell, self.executor_name, *why)

    def interrupt(self, run_folder: Path) -> None:
        if self.threads:
            _stop(self.hosts, self.threads, self.runs, run_folder, self.progress)

    def clean_up(self, run_folder: Path, state: str) -> str:
        for host in self.hosts:
            try:
                host.executor.cleanup(run_folder)
            except ENGINE_ERRORS:
                pass
        return ""


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
            host, _, runs, *_ = self.work
            runs.release(host)  # the rest of its round, if it stopped in one, to the other hosts
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
                runs.settle() if fits else runs.give_back(host, cell, repeat)
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
        why = boxes.words(error)
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
            session.keep_locks(run_folder, [environment])
            volume = host.volume(dataset.path, environment.handle, progress, stop)
            dataset = dataclasses.replace(dataset, path=volume)  # the container mounts the volume, not a local path
        if stop.is_set():
            raise Stopped("the run was interrupted before the cell started")
        record = session.run_cell(executor, matrix, cell, environment, dataset, run_folder)
    except (*ENGINE_ERRORS, UserError) as error:
        failure = PrepareFailure(cell.environment, f"on host {host.url}: {boxes.words(error)}", "")
        record = session.run_cell(executor, matrix, cell, failure, dataset, run_folder)
    if cell.kind == "gpu":
        record = dataclasses.replace(record, environment={**record.environment, "gpu_devices": executor.gpu_devices})
    return record
