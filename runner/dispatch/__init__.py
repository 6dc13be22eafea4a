"""Dispatch: cells run on other machines, one job per cell and repeat; this runner stays the only writer of results.jsonl.

A dispatched run is an ordinary run folder, on storage the nodes share. Each job
runs `python -m runner run-cell` on its node, with the executor the run names
(Docker, or venv or local with the node's own processes), and writes its one record to a file of its own in the run's jobs/ folder; the
submitting runner merges each record into results.jsonl as its job ends.

    <run>/jobs/<cell-id>.<repeat>.sh          the job script (the same for every submission of it)
    <run>/jobs/<cell-id>.<repeat>.<job>.log   what the job printed
    <run>/jobs/<cell-id>.<repeat>.<job>.json  its record, written whole or not at all
    <run>/jobs/<cell-id>.<repeat>.<job>/      while the job runs: its lock, and the executor's run folder
    <run>/jobs/submitted.jsonl                which job runs which cell and repeat: what --resume picks up

Names carry the job's id, so a resubmitted job never overwrites, nor is mistaken
for, an earlier one. This module is what both sides share; runner.dispatch.slurm
is the submitting side for Slurm.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from runner import executors, host, records, reproduce, session
from runner.cells import Cell
from runner.errors import UserError
from runner.executors import Executor
from runner.progress import Progress
from runner.records import Record
from runner.yaml_reader import shown

JOBS_FOLDER = "jobs"
LEDGER_FILE = "submitted.jsonl"
GPU_INDICES = re.compile(r"[0-9]+(,[0-9]+)*")


def stem(run_folder: Path, cell_id: str, repeat: int) -> Path:
    return run_folder / JOBS_FOLDER / f"{cell_id}.{repeat}"


def record_path(run_folder: Path, cell_id: str, repeat: int, job_id: str) -> Path:
    return stem(run_folder, cell_id, repeat).with_name(f"{cell_id}.{repeat}.{job_id}.json")


def log_path(run_folder: Path, cell_id: str, repeat: int, job_id: str) -> Path:
    return stem(run_folder, cell_id, repeat).with_name(f"{cell_id}.{repeat}.{job_id}.log")


def work_folder(run_folder: Path, cell_id: str, repeat: int, job_id: str) -> Path:
    return stem(run_folder, cell_id, repeat).with_name(f"{cell_id}.{repeat}.{job_id}")


def granted_gpus(environ: dict[str, str], inside_job: bool) -> str | None:
    """The GPUs the scheduler granted this job, as the executor must name them ("1", "0,1"); None outside such a job.

    Docker's engine starts containers outside the job's device cgroup, so it needs the node's own
    numbering: SLURM_JOB_GPUS first. A process the job starts itself (venv, local) is inside that
    cgroup and sees the GPUs as CUDA_VISIBLE_DEVICES numbers them (from 0 where Slurm constrains
    devices): that first. CUDA_VISIBLE_DEVICES is used only when it holds plain indices.
    """
    names = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS") if inside_job else ("SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")
    for name in names:
        value = environ.get(name, "").strip()
        if GPU_INDICES.fullmatch(value):
            return value
    return None


def gpus_for(cell: Cell, granted: str | None) -> str | None:
    """The GPU a GPU cell is timed on: the first the job was granted. None for CPU cells, and outside such a job.

    A job that asked for one GPU may be granted more: with --exclusive, Slurm grants every GPU of the node.
    """
    return granted.split(",")[0] if granted and cell.kind == "gpu" else None


@dataclass(frozen=True)
class Job:
    """What a dispatched job is asked (run-cell's options): one cell and repeat of a matrix, into a run folder, with an executor."""

    matrix: Path
    cell_id: str
    repeat: int
    run_folder: Path
    matrix_sha256: str | None
    executor: str
    python: str
    offline_base: bool


def run_cell_job(job: Job, progress: Progress) -> tuple[Record, Path]:
    """The job's side of a dispatched run: check it is the run and matrix it was submitted for, run its cell on the GPU the
    scheduler granted, save the record. Returns the record and where it was saved."""
    if not (job.run_folder / records.MANIFEST_FILE).is_file():
        raise UserError(f"--run {job.run_folder}: not a run folder (no {records.MANIFEST_FILE})")
    try:
        changed = job.matrix_sha256 and hashlib.sha256(job.matrix.read_bytes()).hexdigest() != job.matrix_sha256
    except OSError as error:
        raise UserError(f"{job.matrix}: cannot read the matrix file: {error.strerror or error}")
    if changed:
        raise UserError(f"{job.matrix}: changed since this job was submitted; resume the run to submit it again with the matrix as it is now")
    installs = job.executor != "local"
    chosen = reproduce.pinned_as_noted(session.plan(job.matrix, None, False, job.offline_base, installs=installs), job.run_folder)
    cell = next((cell for cell in chosen.cells if cell.id == job.cell_id), None)
    if cell is None:
        raise UserError(f"{job.matrix}: no cell {shown(job.cell_id)} in this matrix")
    granted = granted_gpus(dict(os.environ), inside_job=job.executor in executors.HOST_PROCESSES)
    if gpus := gpus_for(cell, granted):  # the GPU the scheduler granted, in place of gpu.devices
        chosen = reproduce.pinned_as_noted(session.plan(job.matrix, None, False, job.offline_base, gpus, installs=installs), job.run_folder)
    job_id = os.environ.get("SLURM_JOB_ID") or f"local-{os.getpid()}"
    executor = executors.make(job.executor, executors.Wanted(chosen.matrix.build, chosen.gpu_devices, job.python, progress))
    record = run_job(chosen, executor, cell, job.repeat, job.run_folder, job_id, granted, progress)
    return record, record_path(job.run_folder, cell.id, job.repeat, job_id)


def run_job(plan: session.Plan, executor: Executor, cell: Cell, repeat: int, run_folder: Path, job_id: str,
            granted: str | None, progress: Progress) -> Record:
    """One cell on this node, as a dispatched job runs it: its record, with the node's facts, saved for the runner to merge.

    An interrupt (the scheduler cancelling the job: SIGTERM) removes what the executor started,
    and saves no record: the submitting runner reports the cell with the scheduler's reason.
    """
    work = work_folder(run_folder, cell.id, repeat, job_id)
    work.mkdir(parents=True, exist_ok=True)
    try:
        with records.hold(work):  # `clean` on this node spares the containers of a live job
            try:
                record = session.run_one(plan, executor, cell, work, repeat, progress, locks_in=run_folder)
            except KeyboardInterrupt:
                executor.cleanup(work)
                raise
            facts = node_facts(executor, job_id, gpus_for(cell, granted), granted)
            record = dataclasses.replace(record, environment={**record.environment, **facts})
            records.save(record_path(run_folder, cell.id, repeat, job_id), record)
    finally:
        _remove_work_folder(work)
    return record


def node_facts(executor: Executor, job_id: str, gpus: str | None, granted: str | None) -> dict[str, str]:
    """Which node measured the record, and that machine's facts, as the record's environment provenance takes them."""
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    facts = {"host": node, "host_name": socket.gethostname(), "job_id": job_id}
    if os.environ.get("SLURM_JOB_PARTITION"):
        facts["partition"] = os.environ["SLURM_JOB_PARTITION"]
    if gpus:
        facts["gpu_devices"] = gpus
        if granted and granted != gpus:
            facts["gpus_granted"] = granted
    for key, value in {**host.facts(), **executor.describe_host()}.items():  # the record names its executor already
        if key == "gpus":
            value = host.describe_gpus(value)
        facts[f"host_{key}"] = str(value)
    return facts


def _remove_work_folder(work: Path) -> None:
    """Its lock, and the folder if nothing else is in it: what an executor left there stays for a look."""
    try:
        (work / records.LOCK_FILE).unlink(missing_ok=True)
        work.rmdir()
    except OSError:
        pass


def host_of(record: Record) -> str:
    return record.environment.get("host", "")


def group_by(loaded: list[Record], key: str) -> dict[str, list[Record]]:
    """Records grouped by the node that measured them (key "host") or by an axis (such as gpu_type), in first-seen order."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in loaded:
        value = host_of(record) if key == "host" else record.axes.get(key, "")
        groups[value or "-"].append(record)
    return dict(groups)


def where(loaded: list[Record]) -> str:
    """Which node measured each record, under which job, with which GPUs: a dispatched run's last table."""
    rows = [[record.cell_id, record.repeat, record.status, host_of(record) or "-", record.environment.get("job_id", "-"),
             record.environment.get("gpu_devices", "-")] for record in loaded]
    return tabulate(rows, headers=["cell", "repeat", "status", "host", "job", "GPUs"], tablefmt="github")


def read_ledger(run_folder: Path) -> dict[tuple[str, int], str]:
    """(cell id, repeat) -> the job last submitted for it. A damaged line (a runner killed mid-write) is left out."""
    path = run_folder / JOBS_FOLDER / LEDGER_FILE
    latest: dict[tuple[str, int], str] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return latest
    for line in lines:
        try:
            entry = json.loads(line)
            latest[(str(entry["cell"]), int(entry["repeat"]))] = str(entry["job"])
        except (ValueError, KeyError, TypeError):
            continue
    return latest


def note_submitted(run_folder: Path, entry: dict) -> None:
    """Append one submission to the ledger, on disk before the next one: a runner killed now loses track of no job."""
    with open(run_folder / JOBS_FOLDER / LEDGER_FILE, "a+b") as ledger:
        ledger.seek(0, os.SEEK_END)
        fresh_line = ledger.tell() == 0 or _last_byte(ledger) == b"\n"
        ledger.write((b"" if fresh_line else b"\n") + json.dumps(entry, sort_keys=True).encode() + b"\n")
        ledger.flush()
        os.fsync(ledger.fileno())


def _last_byte(stream) -> bytes:
    stream.seek(-1, os.SEEK_END)
    return stream.read(1)
