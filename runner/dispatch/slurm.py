"""Slurm dispatch: one sbatch job per cell and repeat, followed with squeue and scontrol, merged as each ends.

No scheduler here: Slurm places the jobs. A GPU cell asks for one GPU of its
gpu_type (`--gres=gpu:h200:1`), a CPU cell for a whole node; every job is
`--exclusive` unless `slurm.exclusive: false` lets GPU cells share a node, one GPU
each. A job runs `python -m runner run-cell` on its node (the checkout and its
virtual environment on storage the nodes share, at the same path) with this run's
--executor: Docker, or venv or local with --python, which must be at the same path
there too. It writes its record to a file of its own; this runner alone appends to results.jsonl.
Job states come from squeue and scontrol, so no accounting database (sacct) is needed.

Why not submitit, the library ML teams submit Python work to Slurm with: it follows
jobs with sacct alone (an accounting database many clusters, and CI, lack); it runs a
pickled callable through `python -m submitit.core._submit`, where a job here is a
plain command (`run-cell`) whose result is a JSON record in the run folder; and it
claims the job's signal for its own checkpoint-and-requeue, where here SIGTERM must
reach run-cell to remove its container, and a failed job must be a failed record,
not requeued. What it would save is a page of sbatch argument building.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tabulate import tabulate

from runner import datasets, dispatch, records, run_plan, session
from runner.cells import Cell
from runner.dispatch_settings import SlurmSettings
from runner.errors import UserError
from runner.executors.host_process import interpreter
from runner.outcome import LOG_TAIL_LINES
from runner.progress import Progress
from runner.dispatch.slurm_client import JobState, Slurm, SlurmError
from runner.records import DamagedRecord, now
from runner.run_plan import Here, Turn

# What a job runs on its node. sys.executable: the checkout's virtual environment, at the same path there.
RUNNER_COMMAND = [sys.executable, "-m", "runner"]
PROJECT = Path(__file__).resolve().parents[2]
# Jobs that have ended: their record is there, or will never come.
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED", "REVOKED", "SPECIAL_EXIT"}
# Pending reasons that waiting does not cure: the job is cancelled and its cell failed with the reason.
HOPELESS = {"BadConstraints", "PartitionConfig", "PartitionTimeLimit", "PartitionNodeLimit", "InvalidAccount",
            "InvalidQOS", "AccountNotAllowed", "QOSNotAllowed", "DependencyNeverSatisfied"}
# How long an ended job's record may take to appear on shared storage (NFS caches directory
# listings for up to a minute). A job that completed wrote its record; others rarely did.
RECORD_GRACE_SECONDS = {"COMPLETED": 60.0}
OTHER_GRACE_SECONDS = 3.0
CANCEL_WAIT_SECONDS = 90.0  # after scancel: Slurm's KillWait (30 s by default) and the jobs' own cleanup


@dataclass(frozen=True)
class Placement:
    """What one cell's jobs ask Slurm for."""

    cell: Cell
    partition: str | None  # None: the cluster's default
    gres: str | None  # gpu:h200:1, gpu:1; None for CPU cells
    exclusive: bool

    def sbatch_options(self, settings: SlurmSettings) -> list[str]:
        options = [f"--partition={self.partition}"] if self.partition else []
        options += [f"--account={settings.account}"] if settings.account else []
        options += [f"--time={settings.time}"] if settings.time else []
        options += ["--exclusive"] if self.exclusive else []
        options += [f"--gres={self.gres}"] if self.gres else []
        return options + list(settings.options)


def place(cells: list[Cell], settings: SlurmSettings) -> list[Placement]:
    """GPU cells: one GPU of their type, in gpu_partition; CPU cells: whole nodes, whatever slurm.exclusive says."""
    placements = []
    for cell in cells:
        if cell.kind == "gpu":
            gpu_type = cell.axis("gpu_type")
            placements.append(Placement(cell, settings.gpu_partition or settings.partition,
                                        f"gpu:{gpu_type}:1" if gpu_type else "gpu:1", settings.exclusive))
        else:
            placements.append(Placement(cell, settings.partition, None, True))
    return placements


def render_placement(placements: list[Placement], repeats: dict[str, list[int]], settings: SlurmSettings) -> str:
    """Which cell goes to which partition and resources, before anything is submitted."""
    jobs = sum(len(repeats[p.cell.id]) for p in placements)
    common = [f"time limit {settings.time or 'the partition default'} (slurm.time)"]
    common += [f"account {settings.account}"] if settings.account else []
    common += [f"options {' '.join(settings.options)}"] if settings.options else []
    rows = [[p.cell.id, len(repeats[p.cell.id]), p.partition or "(default)", f"--gres={p.gres}" if p.gres else "-",
             "whole node" if p.exclusive else "shared node"] for p in placements]
    table = tabulate(rows, headers=["cell", "jobs", "partition", "GPU", "node"], tablefmt="github")
    return f"placement: {jobs} Slurm job(s), one per cell and repeat; {', '.join(common)}\n{table}"


@dataclass(frozen=True)
class NodeExecutor:
    """What every job runs its cell with, as run-cell's options name it."""

    name: str = "docker"
    python: str | None = None  # venv and local: the interpreter, by a path that is the same on every node

    def options(self) -> list[str]:
        return ["--executor", self.name, *(["--python", self.python] if self.python else [])]

    def facts(self) -> dict[str, str]:
        return {"node_executor": self.name, **({"node_python": self.python} if self.python else {})}


@dataclass
class _Job:
    cell: Cell
    repeat: int
    placement: Placement
    job_id: str
    label: str
    submitted: str = field(default_factory=now)
    seen: JobState | None = None
    ended_at: float | None = None  # time.monotonic() when Slurm first said the job had ended
    node: str = ""  # where it ran, once Slurm or its record says


def run(plan: session.Plan, results_dir: Path, resume: str | None, repeats: int | None, progress: Progress,
        offline_base: bool = False, node_executor: NodeExecutor = NodeExecutor(), slurm: Slurm | None = None,
        force: bool = False, resume_command=None) -> session.RunResult:
    """Dispatch every selected cell not yet done (repeats times) to Slurm, and merge each record as its job ends.

    Ctrl-C cancels this run's jobs (scancel). After this runner is killed outright its jobs go on;
    `--resume` merges the records they wrote, follows those still running and resubmits the rest.
    """
    placement = SlurmPlacement(plan, progress, offline_base, node_executor, slurm)
    return session.run_placed(plan, placement, results_dir, resume, repeats, progress, force, resume_command)


def node_executor(name: str, python: str) -> NodeExecutor:
    """What the jobs run their cells with; venv's and local's --python asked here, and named by its absolute path.

    A job runs in the checkout, not where the runner was started, so a relative --python would name another file there.
    """
    return NodeExecutor() if name == "docker" else NodeExecutor(name, interpreter(python).executable)


def refuse_another_executor(run_folder: Path, node_executor: NodeExecutor) -> None:
    """A resumed run's jobs use the executor its manifest names: its records all come from one, as the manifest says."""
    before = records.manifest(run_folder).get("host", {})
    earlier = NodeExecutor(before.get("node_executor", "docker"), before.get("node_python"))
    if node_executor != earlier:
        raise UserError(f"{' '.join(node_executor.options())}: run {run_folder.name} ran its jobs with {' '.join(earlier.options())}; "
                        f"resume it with the same")


class SlurmPlacement:
    """The Slurm placement: each (cell, repeat) a job of its own, submitted at its turn, followed until its record comes back."""

    name = "slurm"

    def __init__(self, plan: session.Plan, progress: Progress, offline_base: bool = False, node_executor: NodeExecutor = NodeExecutor(),
                 slurm: Slurm | None = None):
        self.plan, self.slurm, self.settings = plan, slurm or Slurm(), plan.matrix.slurm
        self.progress, self.offline_base, self.node_executor = progress, offline_base, node_executor
        self.executor_name = node_executor.name
        self.version = ""
        self.watched: list[_Job] = []
        self.merged: set[str] = set()  # job ids whose record is in results.jsonl
        self.first_of_group: dict[tuple[str, str], _Job] = {}  # placement: same-node: each comparison group's first job
        self.warned = ""

    def start(self) -> None:
        self.version = self.slurm.check()

    def facts(self) -> dict:
        return {"executor": "slurm", "isolation": "a Slurm job per cell and repeat, with the node's executor inside it",
                "dispatch": "slurm", "slurm_version": self.version, **self.node_executor.facts(), "slurm": asdict(self.settings)}

    def resume(self, run_folder: Path) -> None:
        refuse_another_executor(run_folder, self.node_executor)

    def prepare(self, run: session.Session) -> Here:
        self.run_folder, self.repeats, self.done = run.folder, run.repeats, sum(record.status == "ok" for record in run.earlier)
        self.merged = {record.environment["job_id"] for record in run.earlier if "job_id" in record.environment}
        self.group_nodes = run_plan.group_nodes(run.earlier)  # placement: same-node: where a resumed run's groups ran
        noted = {record.cell_id for record in run.earlier if record.status == "excluded"}
        self.excluded = sum(bool(cell.excluded) and cell.id not in noted for cell in run.todo)
        for workload in {cell.workload.name: cell.workload for cell in run.todo if not cell.excluded}.values():
            datasets.prepare(workload, self.progress)  # on the shared storage, once, before any job looks for it
        (self.run_folder / dispatch.JOBS_FOLDER).mkdir(exist_ok=True)
        return Here()  # Slurm places each cell on a node that has what it asks for

    def announce(self, to_run: list[tuple[Cell, int]]) -> None:
        """The placement table; on --resume, the jobs an earlier runner submitted that are still Slurm's, to follow rather than submit."""
        wanted: dict[str, list[int]] = {}
        for cell, repeat in to_run:
            wanted.setdefault(cell.id, []).append(repeat)
        self.placements = {p.cell.id: p for p in place(list({cell.id: cell for cell, _ in to_run}.values()), self.settings)}
        if self.placements:
            self.progress(render_placement(list(self.placements.values()), wanted, self.settings))
        self.progress(f"run {self.run_folder.name}: {len(to_run)} job(s) to run, {self.done} already done, "
                      f"{self.excluded} excluded, results in {self.run_folder}")
        ledger = dispatch.read_ledger(self.run_folder)
        self.earlier = {key: job for key, job in ledger.items() if job not in self.merged}
        self.states = self._states(list(self.earlier.values())) if self.earlier else {}
        self.sha = hashlib.sha256(self.plan.matrix.path.read_bytes()).hexdigest()

    def carry_out(self, turn: Turn, keeper) -> None:
        """Submit the turn's job; or follow the one an earlier runner submitted, if Slurm still has it or its record is there."""
        self.keeper = keeper
        cell, repeat, placement = turn.cell, turn.repeat, self.placements[turn.cell.id]
        job_id = self.earlier.get((cell.id, repeat))
        if job_id and (dispatch.record_path(self.run_folder, cell.id, repeat, job_id).exists()
                       or (job_id in (self.states or {}) and self.states[job_id].state not in ENDED)):
            self.progress(f"{turn.label}: following job {job_id}, submitted by an earlier runner")
            self.watched.append(_Job(cell, repeat, placement, job_id, turn.label))
            return
        self._submit(placement, repeat, turn.label, self.sha, self._node_of_group(cell))

    def _node_of_group(self, cell: Cell) -> str | None:
        """placement: same-node: the node the cell's comparison group runs on, once its first job has one (waited for);
        None for the group's first job, and without same-node. A first job that ended on no node passes the role on."""
        if self.plan.matrix.placement != "same-node":
            return None
        if node := self.group_nodes.get(run_plan.group_of(cell)):
            return node
        first = self.first_of_group.get(run_plan.group_of(cell))
        while first and not first.node and first in self.watched:
            self._look()
            if not first.node and first in self.watched:
                time.sleep(self.settings.poll_seconds)
        if first and first.node:
            return first.node
        self.first_of_group.pop(run_plan.group_of(cell), None)
        return None

    def finish(self, keeper) -> None:
        self.keeper = keeper
        while self.watched:
            self._look()
            if self.watched:
                time.sleep(self.settings.poll_seconds)

    def interrupt(self, run_folder: Path) -> None:
        self.cancel()

    def clean_up(self, run_folder: Path, state: str) -> str:
        return f"; {len(self.watched)} job(s) still queued or running" if self.watched and state == "stopped" else ""

    def _submit(self, placement: Placement, repeat: int, label: str, sha: str, node: str | None = None) -> None:
        cell = placement.cell
        stem = dispatch.stem(self.run_folder, cell.id, repeat)
        script = stem.with_name(f"{stem.name}.sh")
        command = [*RUNNER_COMMAND, "run-cell", "-f", str(self.plan.matrix.path.resolve()), "--cell", cell.id,
                   "--repeat", str(repeat), "--run", str(self.run_folder.resolve()), "--matrix-sha256", sha]
        command += self.node_executor.options() + (["--offline-base"] if self.offline_base else [])
        script.write_text(f"#!/bin/bash\n# cudnn-matrix run {self.run_folder.name}: cell {cell.id}, repeat {repeat}\n"
                          f"export PYTHONUNBUFFERED=1\nexec {shlex.join(command)}\n")
        log = str(stem.resolve()).replace("%", "%%")  # sbatch expands %j and friends in the path, and %% to %
        arguments = [f"--job-name=cudnn-matrix:{cell.id}.{repeat}", f"--output={log}.%j.log", f"--chdir={PROJECT}",
                     "--nodes=1", "--ntasks=1", "--no-requeue", *placement.sbatch_options(self.settings),
                     *([f"--nodelist={node}"] if node else []), str(script.resolve())]
        job_id, refusal = self.slurm.submit(arguments)
        asked = " ".join(option for option in arguments if option.startswith(("--partition", "--gres", "--account", "--time", "--nodelist")))
        if job_id is None:
            reason = f"Slurm refused the job ({asked or 'sbatch'}): {refusal}"
            self.progress(f"{label}: failed: {reason}")
            self.keeper.keep(run_plan.record(cell, self.executor_name, "failed", reason, repeat=repeat))
            return
        dispatch.note_submitted(self.run_folder, {"cell": cell.id, "repeat": repeat, "job": job_id, "submitted": now(),
                                                  "partition": placement.partition or "", "gres": placement.gres or ""})
        self.progress(f"{label}: submitted as job {job_id}" + (f" ({asked})" if asked else ""))
        self.watched.append(_Job(cell, repeat, placement, job_id, label))
        self.first_of_group.setdefault(run_plan.group_of(cell), self.watched[-1])

    def _look(self) -> None:
        """Merge the records that have appeared; ask squeue about the rest; fail the jobs that ended without one."""
        for job in list(self.watched):
            self._collect(job)
        states = self._states([job.job_id for job in self.watched])
        if states is None:
            return
        moment = time.monotonic()
        for job in list(self.watched):
            self._follow(job, states.get(job.job_id), moment)

    def _states(self, job_ids: list[str]) -> dict[str, JobState] | None:
        try:
            return self.slurm.states(job_ids)
        except SlurmError as error:
            if str(error) != self.warned:  # a busy controller: said once, asked again at the next poll
                self.progress(f"warning: {error}; asking again")
                self.warned = str(error)
            return None

    def _collect(self, job: _Job) -> None:
        path = dispatch.record_path(self.run_folder, job.cell.id, job.repeat, job.job_id)
        try:
            record = records.read_one(path)
        except FileNotFoundError:
            return
        except (OSError, DamagedRecord) as error:
            self._fail(job, f"its job {job.job_id} left a record that cannot be read ({path}: {error})", job.seen.node if job.seen else "")
            return
        self.watched.remove(job)
        self.merged.add(job.job_id)
        job.node = job.node or dispatch.host_of(record)
        self.keeper.keep(record)
        self.progress(f"{job.label}: {record.status}{': ' + record.reason if record.reason else ''} "
                      f"(job {job.job_id} on {dispatch.host_of(record) or '?'})")

    def _follow(self, job: _Job, seen: JobState | None, moment: float) -> None:
        if seen is not None and seen != job.seen:
            if seen.state == "PENDING":
                self.progress(f"{job.label}: job {job.job_id} pending" + (f" ({seen.reason})" if seen.reason not in ("", "None") else ""))
            elif seen.state == "RUNNING" and (job.seen is None or job.seen.state != "RUNNING"):
                self.progress(f"{job.label}: job {job.job_id} running on {seen.node}")
                job.node = seen.node
            job.seen = seen
        if seen is not None and seen.state == "PENDING" and seen.reason in HOPELESS:
            try:
                self.slurm.cancel([job.job_id])
            except SlurmError as error:
                self.progress(f"warning: cannot cancel job {job.job_id} ({error}): cancel it by hand")
            self._fail(job, f"Slurm cannot run job {job.job_id} as asked (pending for {seen.reason}); it was cancelled", "")
            return
        if seen is not None and seen.state not in ENDED:
            return
        state = seen.state if seen else "UNKNOWN"
        job.ended_at = job.ended_at or moment
        if moment - job.ended_at >= RECORD_GRACE_SECONDS.get(state, OTHER_GRACE_SECONDS):
            self._collect(job)
            if job in self.watched:
                self._post_mortem(job, state)

    def _post_mortem(self, job: _Job, state: str) -> None:
        """A job ended without a record: the cell fails with what Slurm says happened, and the job's last words."""
        shown = self.slurm.show(job.job_id)
        state = shown.get("JobState", state)
        node = shown.get("NodeList") or (job.seen.node if job.seen else "")
        node = "" if node == "(null)" else node
        exit_code = shown.get("ExitCode", "")
        tail = _tail(dispatch.log_path(self.run_folder, job.cell.id, job.repeat, job.job_id))
        on = f" on {node}" if node else ""
        reasons = {
            "CANCELLED": f"its Slurm job {job.job_id} was cancelled{on} before the cell ended (scancel, or an administrator)",
            "NODE_FAIL": f"its node {node or '?'} failed while the cell ran (Slurm job {job.job_id}: NODE_FAIL)",
            "TIMEOUT": f"its Slurm job {job.job_id} reached its time limit{on} ({self.settings.time or 'the partition default'}, slurm.time)",
            "OUT_OF_MEMORY": f"its Slurm job {job.job_id} ran out of memory{on}",
            "FAILED": f"its Slurm job {job.job_id} failed{on} (exit code {exit_code or '?'}): {_last_words(tail)}",
            "COMPLETED": f"its Slurm job {job.job_id} ended{on} without writing its record: {_last_words(tail)}",
            "UNKNOWN": f"Slurm no longer knows job {job.job_id}, and it left no record (it ended more than MinJobAge ago, or the controller lost it)",
        }
        self._fail(job, reasons.get(state, f"its Slurm job {job.job_id} ended {state}{on} ({shown.get('Reason', '?')}) without a record"), node, tail)

    def _fail(self, job: _Job, reason: str, node: str, log_tail: str = "") -> None:
        if job in self.watched:
            self.watched.remove(job)
        self.progress(f"{job.label}: failed: {reason}")
        self.merged.add(job.job_id)
        self.keeper.keep(run_plan.record(job.cell, self.executor_name, "failed", reason, None, job.submitted, log_tail=log_tail,
                                         repeat=job.repeat, where={"host": node, "job_id": job.job_id}))

    def cancel(self) -> None:
        """Ctrl-C: scancel this run's jobs, and wait (a while) for them to end, so that they remove what they started.

        A record that appears meanwhile (a cell that ended just then) is merged: nothing measured is lost.
        A second Ctrl-C stops the waiting, not the cancelling.
        """
        if not self.watched:
            return
        job_ids = [job.job_id for job in self.watched]
        try:
            self.progress(f"cancelling {len(job_ids)} Slurm job(s) of this run: scancel {' '.join(job_ids)}")
            self.slurm.cancel(job_ids)
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            while self.watched and time.monotonic() < deadline:
                for job in list(self.watched):
                    self._collect(job)
                states = self._states([job.job_id for job in self.watched]) or {}
                for job in list(self.watched):
                    seen = states.get(job.job_id)
                    if seen is None or seen.state in ENDED:
                        self.watched.remove(job)  # cancelled: no record, --resume runs the cell again
                if self.watched:
                    time.sleep(min(self.settings.poll_seconds, 1.0))
            if self.watched:
                self.progress(f"warning: {len(self.watched)} cancelled job(s) still ending after {CANCEL_WAIT_SECONDS:.0f} s: "
                              f"{' '.join(job.job_id for job in self.watched)}")
        except KeyboardInterrupt:
            self.progress("not waiting for the cancelled jobs to end")
        except (SlurmError, UserError) as error:
            self.progress(f"warning: cannot cancel this run's jobs ({error}): cancel them by hand: scancel {' '.join(job_ids)}")


def _tail(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            return "\n".join(deque((line.rstrip("\n") for line in log), maxlen=LOG_TAIL_LINES))
    except OSError:
        return ""


def _last_words(tail: str) -> str:
    meaningful = [line.strip() for line in tail.splitlines() if line.strip()]
    return meaningful[-1] if meaningful else "no output"
