"""One session of the pipeline: plan the cells, prepare data and environments, run, record, resume.

The CLI parses arguments and calls these; an executor (runner.executors) does
what is specific to where cells run. Nothing here prints results: the caller
renders the records it gets back.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from runner import datasets, gpu_types, host, preflight, records
from runner.cells import Cell, environments_of, expand, matches
from runner.compatibility import load_table
from runner.config import Matrix, devices, load_matrix
from runner.datasets import Dataset
from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.executors import Executor, Prepared, PrepareFailure, Unsuitable, provenance
from runner.outcome import decide
from runner.progress import Progress
from runner.records import Record, now
from runner.yaml_reader import shown
from workload.contract import JobSpec


LOGS_FOLDER = "logs"  # in a run folder: each repeat's own output, cell-id.repeat.log


@dataclass(frozen=True)
class Plan:
    matrix: Matrix
    cells: list[Cell]  # every cell of the matrix, in order
    selected: list[Cell]  # the ones -k picked

    @property
    def gpu_devices(self) -> str:
        return self.matrix.gpu.devices if self.matrix.gpu else "none"


@dataclass(frozen=True)
class Budget:
    """How long a run may take (run --budget-minutes): on a lent GPU, the lease, not the matrix, sets the end.

    No (cell, repeat) starts when less is left than the cell's last repeat took, and none runs past
    the end: its time limit is what is left, when that is less than the workload's own.
    """

    minutes: float
    ends: float  # on `clock`
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def starting_now(cls, minutes: float, clock: Callable[[], float] = time.monotonic) -> "Budget":
        return cls(minutes, clock() + minutes * 60, clock)

    def seconds_left(self) -> float:
        return max(0.0, self.ends - self.clock())

    @property
    def not_reached(self) -> str:
        return f"not reached: the run's budget of {self.minutes:.3g} min (--budget-minutes) was spent on the cells before it"


@dataclass(frozen=True)
class RunResult:
    folder: Path
    records: list[Record]
    failed: int  # runs that ended failed in this session


def plan(path: Path, pattern: str | None = None, strict: bool = False, offline_base: bool = False, gpus: str | None = None,
         installs: bool = True) -> Plan:
    """The matrix, all its cells, and the ones PATTERN selects; selecting nothing is a usage error.

    `installs` false: the executor installs nothing (local), so what only a build needs excludes no cell.
    """
    matrix = load_matrix(path)
    if offline_base:
        matrix = dataclasses.replace(matrix, build=dataclasses.replace(matrix.build, offline_base=True))
    if gpus and matrix.gpu:
        which = devices(gpus, lambda expected, got: UserError(f"--gpus: expected {expected}, got {shown(got)}"))
        matrix = dataclasses.replace(matrix, gpu=dataclasses.replace(matrix.gpu, devices=which))
    cells = expand(matrix, load_table(), installs)
    if not cells:
        raise UserError(f"{path}: the matrix expands to no cells: check cpu, gpu and gpu.exclude")
    selected = [cell for cell in cells if matches(cell, pattern)]
    if not selected:
        raise UserError(f"{path}: -k {shown(pattern)} selects none of the {len(cells)} cells (see `python -m runner list`)")
    excluded = [cell for cell in selected if cell.excluded]
    if strict and excluded:
        raise UserError(f"{path}: {len(excluded)} selected cell(s) excluded (--strict), first {excluded[0].id}: {excluded[0].excluded}")
    return Plan(matrix, cells, selected)


def job_spec(cell: Cell, dataset: Dataset) -> JobSpec:
    """The whole job, as the workload receives it: every setting from the cell, none left to defaults."""
    workload = cell.workload
    framework = cell.axis("framework")
    loader = workload.loader if workload.loader != "auto" else ("tfdata" if framework == "tensorflow" else "python")
    return JobSpec(
        cell_id=cell.id, framework=framework, model=workload.model, data_dir=str(dataset.path), epochs=workload.epochs,
        warmup_epochs=workload.warmup_epochs, batch_size=workload.batch_size, train_images=workload.train_images,
        validation_images=workload.validation_images, jit_compile=workload.jit_compile,
        intra_op_threads=workload.intra_op_threads, inter_op_threads=workload.inter_op_threads, fault=workload.fault,
        pipeline=workload.pipeline, loader=loader, precision=workload.precision, cudnn=workload.cudnn,
        conv_autotune=workload.conv_autotune, expect_gpu=cell.kind == "gpu", expect_cudnn=cell.axis("cudnn"),
    )


Provisioned = dict[EnvironmentSpec, Prepared | PrepareFailure | Unsuitable]


def provision(executor: Executor, cells: list[Cell], progress: Progress) -> tuple[Provisioned, str | None]:
    """Prepare the CPU environments, ask whether GPU cells can run here, and prepare GPU environments only if so.

    Returns the environments and, when GPU cells cannot run here, the reason they are skipped.
    """
    cpu_specs = environments_of([cell for cell in cells if cell.kind == "cpu"])
    gpu_specs = environments_of([cell for cell in cells if cell.kind == "gpu"])
    prepared: Provisioned = {spec: executor.prepare(spec) for spec in cpu_specs}
    if not gpu_specs:
        return prepared, None
    remaining = list(gpu_specs)
    while remaining and not _ready(prepared):  # the question needs an environment to ask with
        spec = remaining.pop(0)
        prepared[spec] = executor.prepare(spec)
    at_hand = _ready(prepared)
    no_gpu = executor.unavailable("gpu", at_hand[0]) if at_hand else None
    if no_gpu:
        progress(f"GPU cells will be skipped: {no_gpu}")
    else:
        prepared.update({spec: executor.prepare(spec) for spec in remaining})
    return prepared, no_gpu


def _ready(prepared: Provisioned) -> list[Prepared]:
    return [environment for environment in prepared.values() if isinstance(environment, Prepared)]


def build(plan: Plan, executor: Executor, progress: Progress) -> list[PrepareFailure]:
    """Prepare the environments of the selected cells; the ones that failed, each said once, as are those this executor excludes."""
    runnable = [cell for cell in plan.selected if not cell.excluded]
    prepared = list(map(executor.prepare, environments_of(runnable)))
    for environment in prepared:
        if isinstance(environment, Unsuitable):
            progress(f"{environment.spec.name}: excluded: {environment.reason}")
        elif isinstance(environment, PrepareFailure):
            progress(f"{environment.spec.name}: {environment.reason}")
    return [environment for environment in prepared if isinstance(environment, PrepareFailure)]


def run(plan: Plan, executor: Executor, results_dir: Path, resume: str | None, repeats: int | None, progress: Progress,
        budget: Budget | None = None, force: bool = False, resume_command: Callable[[str], str] | None = None) -> RunResult:
    """Run each selected cell `repeats` times (default: the matrix's), appending each record as it ends; within `budget` if one is given.

    The run folder exists, resumable, before anything else happens, and this runner holds it
    until it ends, however it ends; if it ends early, `resume_command(run_id)` is what to type to
    go on. A run is resumed with the matrix it started with, unless `force`.
    """
    if resume:
        run_folder = records.find_run(results_dir, resume)
        refuse_another_matrix(run_folder, plan.matrix.path, force)
    else:
        run_folder = records.new_run(results_dir, plan.matrix.path, host.facts(executor))
    resume_command = resume_command or (lambda run_id: f"python -m runner run --resume {run_id}")
    unwritten: list[Record] = []  # records a full disk refused: printed to be added back by hand, and in this run's table
    with records.hold(run_folder):
        if resume:
            remove_left_behind(run_folder, executor.cleanup(run_folder), "", progress)
        state = "stopped"  # by an error that is not a cell's: a data folder to fix, the engine gone
        try:
            failed = _run(plan, executor, run_folder, repeats or plan.matrix.repeats, progress, budget, unwritten)
            state = "finished"
        except KeyboardInterrupt:
            state = "interrupted"
            raise
        finally:
            note_end(run_folder, state, progress)
            if state != "finished":
                executor.cleanup(run_folder)
                progress(f"{state}: finished cells are in {run_folder / records.RESULTS_FILE}; "
                         f"`{resume_command(run_folder.name)}` runs the rest")
    progress(f"results: {run_folder / records.RESULTS_FILE}")
    return RunResult(run_folder, records.load(run_folder) + unwritten, failed)


def refuse_another_matrix(run_folder: Path, matrix_path: Path, force: bool) -> None:
    """Records of two matrices in one run would be compared as one: a changed matrix is resumed only when asked to."""
    changed = records.matrix_changes(run_folder, matrix_path)
    if changed and not force:
        raise UserError(f"{matrix_path}: not the matrix run {run_folder.name} started with: {changed}; resume with "
                        f"-f {run_folder / records.MATRIX_COPY}, or add --force to resume with this one")


def _run(plan: Plan, executor: Executor, run_folder: Path, repeats: int, progress: Progress, budget: Budget | None,
         unwritten: list[Record]) -> int:
    earlier = records.load(run_folder)
    noted = {record.cell_id for record in earlier if record.status in ("excluded", "skipped")}
    todo = left_to_run(plan.selected, earlier, repeats)
    progress(preflight.outlook(todo, executor, repeats, run_folder.parent).render())
    runnable = [cell for cell in todo if not cell.excluded]
    data = {cell.workload.name: datasets.prepare(cell.workload, progress) for cell in runnable}
    prepared, no_gpu = provision(executor, runnable, progress)
    ready = [cell for cell in runnable if not _not_run(cell, prepared, no_gpu)]
    progress(f"run {run_folder.name}: {len(ready)} cell(s) to run, {len(plan.selected) - len(todo)} already done, "
             f"{len(todo) - len(ready)} skipped or excluded, results in {run_folder}")
    # A cell that cannot run here is noted once, in its place in the first round.
    left = {cell.id: repeats_left(earlier, cell.id, repeats) if cell in ready else range(0 if cell.id in noted else 1) for cell in todo}
    runs = interleaved(todo, left)
    return _run_cells(executor, plan.matrix, runs, prepared, data, no_gpu, run_folder, repeats, progress, budget, unwritten)


def left_to_run(cells: list[Cell], earlier: list[Record], repeats: int) -> list[Cell]:
    """The cells, less those the earlier records (a run being resumed) have measured as often as asked."""
    measured = Counter(record.cell_id for record in earlier if record.status == "ok")
    return [cell for cell in cells if measured[cell.id] < repeats]


def repeats_left(earlier: list[Record], cell_id: str, repeats: int) -> list[int]:
    """The repeat numbers of a cell not measured yet, lowest first: a resume fills gaps (a failed repeat 0 beside a good repeat 1)."""
    measured = [record.repeat for record in earlier if record.cell_id == cell_id and record.status == "ok"]
    return [repeat for repeat in range(repeats) if repeat not in measured][:max(0, repeats - len(measured))]


def interleaved(cells: list[Cell], repeats_left: dict[str, range]) -> list[tuple[Cell, int]]:
    """(cell, repeat) in the order A B C A B C ...: drift in the machine then spreads over every cell alike."""
    rounds = max((len(left) for left in repeats_left.values()), default=0)
    return [(cell, repeats_left[cell.id][turn]) for turn in range(rounds) for cell in cells if turn < len(repeats_left[cell.id])]


def _run_cells(executor: Executor, matrix: Matrix, runs: list[tuple[Cell, int]], prepared: Provisioned, data: dict[str, Dataset],
               no_gpu: str | None, run_folder: Path, repeats: int, progress: Progress, budget: Budget | None,
               unwritten: list[Record]) -> int:
    """Run each (cell, repeat) afresh and append its record at once (to unwritten, when it cannot be); returns how many failed.

    A cell that cannot run here gets its record, silently: the plan printed first said why, once per reason.
    """
    failed = 0

    def kept(record: Record) -> bool:
        written = keep(run_folder, record, progress)
        if not written:
            unwritten.append(record)
        return written

    took: dict[str, float] = {}  # seconds each cell's last repeat took in this session
    clock = budget.clock if budget else time.monotonic
    to_run = [(cell, repeat) for cell, repeat in runs if not _not_run(cell, prepared, no_gpu)]
    progress.start_run(len(to_run))
    number = 0
    try:
        for cell, repeat in runs:
            if not_run := _not_run(cell, prepared, no_gpu):
                kept(_record(executor, cell, None, *not_run, now()))
                continue
            number += 1
            if budget and budget.seconds_left() <= took.get(cell.id, 0.0):
                if cell.id not in took:  # a cell with a repeat in this session says how many by its records
                    kept(_record(executor, cell, None, "skipped", budget.not_reached, now()))
                progress(f"[{number}/{len(to_run)}] {cell.id}: {budget.not_reached}")
                continue
            label = f"[{number}/{len(to_run)}] {cell.id}" + (f" (repeat {repeat + 1}/{repeats})" if repeats > 1 else "")
            progress.start_repeat(cell.id, label, run_folder / LOGS_FOLDER / f"{cell.id}.{repeat + 1}.log")
            started = clock()
            record = run_cell(executor, matrix, cell, prepared[cell.environment], data[cell.workload.name], run_folder,
                              budget.seconds_left() if budget else None)
            record = dataclasses.replace(record, repeat=repeat)
            took[cell.id] = clock() - started
            written = kept(record)  # before the count: `or` would skip writing a failed record
            failed += record.status == "failed" or not written
            progress.end_repeat(cell.id, f"{label}: {record.status}{': ' + record.reason if record.reason else ''} ({took[cell.id]:.0f} s)",
                                took[cell.id])
    finally:
        progress.end_run()
    return failed


def _not_run(cell: Cell, prepared: Provisioned, no_gpu: str | None) -> tuple[str, str] | None:
    """Why a cell is not run, as its record's status and reason: excluded by the table or by the executor, or skipped for want of a GPU."""
    if cell.excluded:
        return "excluded", cell.excluded
    if cell.kind == "gpu" and no_gpu:
        return "skipped", no_gpu
    if elsewhere := gpu_types.not_here(cell):  # a gpu_type this host does not have
        return "skipped", elsewhere
    environment = prepared[cell.environment]
    return ("excluded", environment.reason) if isinstance(environment, Unsuitable) else None


def remove_left_behind(run_folder: Path, removed: int | None, where: str, progress: Progress) -> None:
    """Say what a resume removed: whoever holds a run owns all it started, and a container a runner killed without a
    word (kill -9) left training would share the cores the resumed cells are timed on."""
    if removed:
        progress(f"run {run_folder.name}: stopped and removed {removed} container(s){where} that its earlier runner left running, "
                 "before measuring")


def note_end(run_folder: Path, state: str, progress: Progress) -> None:
    try:
        records.finish_run(run_folder, state)
    except OSError as error:
        progress(f"warning: cannot note in {run_folder / records.MANIFEST_FILE} that the run {state} ({error.strerror or error})")


def keep(run_folder: Path, record: Record, progress: Progress) -> bool:
    """Append the record; if even that fails (a full disk), say so and print it, so that nothing measured is lost."""
    try:
        records.append(run_folder, record)
        return True
    except OSError as error:
        progress(f"error: cannot write the record of {record.cell_id} to {run_folder / records.RESULTS_FILE} "
                 f"({error.strerror or error}); it follows on the next line, to be added back by hand:")
        progress(record.to_json())
        return False


def run_cell(executor: Executor, matrix: Matrix, cell: Cell, environment: Prepared | PrepareFailure, dataset: Dataset, run_folder: Path,
             seconds_left: float | None = None) -> Record:
    """One run of one cell, whatever happens to it, as a record; stopped at its workload's time limit, or at `seconds_left` if sooner."""
    started = now()
    if isinstance(environment, PrepareFailure):
        return _record(executor, cell, environment, "failed", environment.reason, started, log_tail=environment.log_tail)
    time_limit = f"{cell.workload.timeout_minutes:g} min (workloads.{cell.workload.name}.timeout_minutes)"
    if seconds_left is not None and seconds_left < cell.workload.timeout_minutes * 60:
        time_limit = f"{seconds_left:.0f} s (what was left of the run's --budget-minutes)"
        cell = dataclasses.replace(cell, workload=dataclasses.replace(cell.workload, timeout_minutes=seconds_left / 60))
    launched = time.time()  # the same clock as the workload's timeline, in a container too
    raw = executor.run(cell, job_spec(cell, dataset), environment, matrix.limits, run_folder)
    outcome = decide(raw, time_limit=time_limit, memory_limit=f"limit {matrix.limits.memory}, limits.memory")
    return dataclasses.replace(_record(executor, cell, environment, outcome.status, outcome.reason, started, outcome.measurement, outcome.log_tail),
                               launched=launched)


def run_one(plan: Plan, executor: Executor, cell: Cell, run_folder: Path, repeat: int, progress: Progress) -> Record:
    """One run of one cell, provisioned on its own: what a dispatched job does on its node (`run-cell`).

    Excluded (by the table, or by this node's executor: local's interpreter lacks what the cell
    asks for) and skipped (no GPU on this node's executor) cells are records too, as in a local run;
    a typed cell on a node without a GPU of its type fails, naming the GPUs the node has.
    """
    started = now()
    if cell.excluded:
        record = _record(executor, cell, None, "excluded", cell.excluded, started)
    elif wrong_node := gpu_types.misplaced(cell):
        record = _record(executor, cell, None, "failed", wrong_node, started)
    else:
        dataset = datasets.prepare(cell.workload, progress)
        prepared, no_gpu = provision(executor, [cell], progress)
        if cell.kind == "gpu" and no_gpu:
            record = _record(executor, cell, None, "skipped", no_gpu, started)
        elif isinstance(prepared[cell.environment], Unsuitable):
            record = _record(executor, cell, None, "excluded", prepared[cell.environment].reason, started)
        else:
            record = run_cell(executor, plan.matrix, cell, prepared[cell.environment], dataset, run_folder)
    return dataclasses.replace(record, repeat=repeat)


def _record(executor: Executor, cell: Cell, environment: Prepared | PrepareFailure | None, status: str, reason: str,
            started: str, measurement=None, log_tail: str = "") -> Record:
    return Record(
        cell_id=cell.id, status=status, reason=reason, axes=cell.axes_dict, workload=cell.workload.name,
        executor=executor.name, environment=provenance(environment, cell.environment),
        started=started, ended=now(), measurement=measurement, log_tail=log_tail,
    )
