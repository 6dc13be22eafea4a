"""One session of the pipeline: plan the cells, prepare data and environments, run, record, resume.

run_placed is the one run loop, whatever the placement (runner.placements: here, Slurm, SSH);
Local is the placement that runs cells on this machine. The CLI parses arguments and calls
these; an executor (runner.executors) does what is specific to how cells run. Nothing here
prints results: the caller renders the records it gets back.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from runner import datasets, host, locks, preflight, records, run_plan
from runner.cells import Cell, environments_of, expand, matches
from runner.compatibility import load_table
from runner.config import Matrix, devices, load_matrix
from runner.datasets import Dataset
from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.invocation import command
from runner.executors import Executor, Prepared, PrepareFailure, Unsuitable
from runner.outcome import decide
from runner.placements import Placement
from runner.progress import Progress
from runner.records import Record, now
from runner.run_plan import Turn
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
class Session:
    """A run as its placement sees it, once planned: the run folder, the repeats asked, what earlier sessions measured, what is left."""

    plan: Plan
    folder: Path
    repeats: int
    earlier: list[Record]
    todo: list[Cell]  # the selected cells not yet measured as often as asked


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
        raise UserError(f"{path}: -k {shown(pattern)} selects none of the {len(cells)} cells (see `{command('list')}`)")
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
        validation_images=workload.validation_images, image_size=workload.image_size, classes=workload.classes,
        data_format=workload.data_format, jit_compile=workload.jit_compile,
        intra_op_threads=workload.intra_op_threads, inter_op_threads=workload.inter_op_threads, fault=workload.fault,
        pipeline=workload.pipeline, loader=loader, precision=workload.precision, cudnn=workload.cudnn,
        conv_autotune=workload.conv_autotune, kernel_time=workload.kernel_time, expect_gpu=cell.kind == "gpu", expect_cudnn=cell.axis("cudnn"),
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


def keep_locks(run_folder: Path, environments) -> None:
    """The lock of each environment made, in the run folder, for its records name it (runner/locks.py)."""
    for environment in environments:
        if isinstance(environment, Prepared) and environment.lock:
            locks.keep(run_folder, environment.lock)


def _ready(prepared: Provisioned) -> list[Prepared]:
    return [environment for environment in prepared.values() if isinstance(environment, Prepared)]


def build(plan: Plan, executor: Executor, progress: Progress) -> list[Prepared | PrepareFailure | Unsuitable]:
    """Prepare the environments of the selected cells; a failed one is said once, as is one this executor excludes."""
    runnable = [cell for cell in plan.selected if not cell.excluded]
    prepared = list(map(executor.prepare, environments_of(runnable)))
    for environment in prepared:
        if isinstance(environment, Unsuitable):
            progress(f"{environment.spec.name}: excluded: {environment.reason}")
        elif isinstance(environment, PrepareFailure):
            progress(f"{environment.spec.name}: {environment.reason}")
    return prepared


def run(plan: Plan, executor: Executor, results_dir: Path, resume: str | None, repeats: int | None, progress: Progress,
        budget: Budget | None = None, force: bool = False, resume_command: Callable[[str], str] | None = None,
        seed: int | None = None) -> RunResult:
    """A run on this machine, cells one after another with `executor`: run_placed with the local placement."""
    return run_placed(plan, Local(executor, progress, budget), results_dir, resume, repeats, progress, force, resume_command, seed)


def run_placed(plan: Plan, placement: Placement, results_dir: Path, resume: str | None, repeats: int | None, progress: Progress,
               force: bool = False, resume_command: Callable[[str], str] | None = None, seed: int | None = None,
               notes: dict | None = None) -> RunResult:
    """Run each selected cell `repeats` times (default: the matrix's) where the placement puts them, appending each record as it comes.

    The run folder exists, resumable, before anything else happens, and this runner holds it
    until it ends, however it ends; if it ends early, `resume_command(run_id)` is what to type to
    go on. A run is resumed where it ran, and with the matrix it started with, unless `force`;
    its order within rounds is shuffled by `seed` (default: a new one), which its manifest keeps for a resume, as it keeps `notes`.
    """
    run_folder = open_run(plan, placement, results_dir, resume, force, seed, notes)
    how = f"--dispatch {placement.name} " if placement.name != "local" else ""
    resume_command = resume_command or (lambda run_id: command("run", *how.split(), "--resume", run_id))
    keeper = Keeper(run_folder, progress)
    with records.hold(run_folder):
        if resume:
            placement.resume(run_folder)
        state = "stopped"  # by an error that is not a cell's: a data folder to fix, the engine or the controller gone
        try:
            carry_out(plan, placement, run_folder, repeats_asked(plan, repeats), keeper)
            state = "finished"
        except KeyboardInterrupt:
            state = "interrupted"
            placement.interrupt(run_folder)
            raise
        finally:
            note_end(run_folder, state, progress)
            if state != "finished":
                going = placement.clean_up(run_folder, state)
                progress(f"{state}: finished cells are in {run_folder / records.RESULTS_FILE}{going}; "
                         f"`{resume_command(run_folder.name)}` runs the rest")
    progress(f"results: {run_folder / records.RESULTS_FILE}")
    return RunResult(run_folder, records.load(run_folder) + keeper.unwritten, keeper.failed)


def repeats_asked(plan: Plan, repeats: int | None) -> int:
    """--repeats, else the matrix's: resolved here alone, for every placement and for --dry-run."""
    return repeats or plan.matrix.repeats


def open_run(plan: Plan, placement: Placement, results_dir: Path, resume: str | None, force: bool, seed: int | None = None,
             notes: dict | None = None) -> Path:
    """The run folder: the one resumed, refused when it ran elsewhere or with another matrix; else a new one, with the manifest
    and the order seed."""
    if resume:
        run_folder = records.find_run(results_dir, resume)
        refuse_resume_elsewhere(run_folder, placement.name)
        refuse_another_matrix(run_folder, plan.matrix.path, force)
        keep_order_seed(run_folder, seed)
        placement.start()
        return run_folder
    placement.start()
    return records.new_run(results_dir, plan.matrix.path, {**host.facts(), **placement.facts()},
                           run_plan.new_seed() if seed is None else seed, [cell.id for cell in plan.cells], notes)


def keep_order_seed(run_folder: Path, seed: int | None) -> None:
    """A resumed run keeps the seed it started with, so that its order can be made again; a run older than seeds is given one."""
    before = records.manifest(run_folder).get("order_seed")
    if before is None:
        records.note_in_manifest(run_folder, order_seed=run_plan.new_seed() if seed is None else seed)
    elif seed is not None and seed != before:
        raise UserError(f"--seed {seed}: run {run_folder.name} started with --seed {before}; a resume keeps it (leave --seed out)")


def outlook(plan: Plan, executor: Executor, results_dir: Path, resume: str | None, repeats: int | None) -> str:
    """What a run on this machine would say first (run --dry-run), found out without doing any of it."""
    earlier = []
    if resume:
        run_folder = records.find_run(results_dir, resume)
        refuse_resume_elsewhere(run_folder, "local")
        earlier = records.load(run_folder)
    repeats = repeats_asked(plan, repeats)
    return preflight.outlook(run_plan.left_to_run(plan.selected, earlier, repeats), executor, repeats, results_dir).render()


def refuse_resume_elsewhere(run_folder: Path, placement: str) -> None:
    """A run is resumed the way it ran: its manifest describes one kind of place, and its records all come from there."""
    before = records.manifest(run_folder).get("host", {}).get("dispatch") or "local"
    if before != placement:
        asked, how = (f"--dispatch {name} " if name != "local" else "" for name in (placement, before))
        raise UserError(f"{asked}--resume {run_folder.name}: that run {'ran with ' + how.strip() if how else 'ran here, not dispatched'}; "
                        f"resume it the way it ran: `{command('run', *how.split(), '--resume', run_folder.name)}`")


def refuse_another_matrix(run_folder: Path, matrix_path: Path, force: bool) -> None:
    """Records of two matrices in one run would be compared as one: a changed matrix is resumed only when asked to."""
    changed = records.matrix_changes(run_folder, matrix_path)
    if changed and not force:
        raise UserError(f"{matrix_path}: not the matrix run {run_folder.name} started with: {changed}; resume with "
                        f"-f {run_folder / records.MATRIX_COPY}, or add --force to resume with this one")


def carry_out(plan: Plan, placement: Placement, run_folder: Path, repeats: int, keeper: Keeper) -> None:
    """What the run has left, in turns: a cell that does not run gets its record here, the others go to the placement."""
    earlier, seed = records.load(run_folder), records.manifest(run_folder).get("order_seed", 0)
    todo = run_plan.left_to_run(plan.selected, earlier, repeats)
    here = placement.prepare(Session(plan, run_folder, repeats, earlier, todo))
    why_not = {cell.id: run_plan.not_run(cell, here) for cell in todo}
    runs = run_plan.runs_left(todo, earlier, repeats, lambda cell: why_not[cell.id], seed)
    to_run = [(cell, repeat) for cell, repeat in runs if not why_not[cell.id]]
    placement.announce(to_run)
    number = 0
    for cell, repeat in runs:
        if why_not[cell.id]:
            keeper.keep(run_plan.record(cell, placement.executor_name, *why_not[cell.id]))
            continue
        number += 1
        placement.carry_out(Turn(cell, repeat, number, len(to_run), repeats), keeper)
    placement.finish(keeper)


class Keeper:
    """Appends each record as it comes back (one at a time: SSH's hosts keep theirs from threads); counts the failed ones."""

    def __init__(self, run_folder: Path, progress: Progress):
        self.run_folder, self.progress = run_folder, progress
        self.failed = 0  # runs that ended failed in this session, or whose record could not be written
        self.unwritten: list[Record] = []  # records a full disk refused: printed to be added back by hand, and in this run's table
        self.lock = threading.Lock()

    def keep(self, record: Record) -> bool:
        with self.lock:
            written = keep(self.run_folder, record, self.progress)
            if not written:
                self.unwritten.append(record)
            self.failed += record.status == "failed" or not written
            return written


class Local:
    """The local placement: each (cell, repeat) runs here, one after another, with this machine's executor; within a budget if given."""

    name = "local"

    def __init__(self, executor: Executor, progress: Progress, budget: Budget | None = None):
        self.executor, self.progress, self.budget = executor, progress, budget
        self.executor_name = executor.name
        self.took: dict[str, float] = {}  # seconds each cell's last repeat took in this session

    def start(self) -> None:
        pass

    def facts(self) -> dict:
        return {"executor": self.executor.name, "isolation": self.executor.isolation, **self.executor.describe_host()}

    def resume(self, run_folder: Path) -> None:
        remove_left_behind(run_folder, self.executor.cleanup(run_folder), "", self.progress)

    def prepare(self, session: Session) -> run_plan.Here:
        self.session = session
        self.progress(preflight.outlook(session.todo, self.executor, session.repeats, session.folder.parent).render())
        runnable = [cell for cell in session.todo if not cell.excluded]
        self.data = {cell.workload.name: datasets.prepare(cell.workload, self.progress) for cell in runnable}
        self.prepared, no_gpu = provision(self.executor, runnable, self.progress)
        keep_locks(session.folder, self.prepared.values())
        return run_plan.Here(no_gpu, self.prepared, run_plan.not_on_this_host)

    def announce(self, to_run: list[tuple[Cell, int]]) -> None:
        ready = len({cell.id for cell, _ in to_run})
        todo, selected = len(self.session.todo), len(self.session.plan.selected)
        self.progress(f"run {self.session.folder.name}: {ready} cell(s) to run, {selected - todo} already done, "
                      f"{todo - ready} skipped or excluded, results in {self.session.folder}")
        self.progress.start_run(len(to_run))

    def carry_out(self, turn: Turn, keeper: Keeper) -> None:
        """Run the (cell, repeat) afresh, unless the budget has not enough left for it."""
        cell, budget, run_folder = turn.cell, self.budget, self.session.folder
        if budget and budget.seconds_left() <= self.took.get(cell.id, 0.0):
            if cell.id not in self.took:  # a cell with a repeat in this session says how many by its records
                keeper.keep(run_plan.record(cell, self.executor.name, "skipped", budget.not_reached))
            self.progress(f"{turn.place}: {budget.not_reached}")
            return
        self.progress.start_repeat(cell.id, turn.label, run_folder / LOGS_FOLDER / f"{cell.id}.{turn.repeat + 1}.log")
        clock = budget.clock if budget else time.monotonic
        started = clock()
        record = run_cell(self.executor, self.session.plan.matrix, cell, self.prepared[cell.environment], self.data[cell.workload.name],
                          run_folder, budget.seconds_left() if budget else None)
        self.took[cell.id] = clock() - started
        keeper.keep(dataclasses.replace(record, repeat=turn.repeat))
        self.progress.end_repeat(cell.id, f"{turn.label}: {record.status}{': ' + record.reason if record.reason else ''} "
                                          f"({self.took[cell.id]:.0f} s)", self.took[cell.id])

    def finish(self, keeper: Keeper) -> None:
        self.progress.end_run()

    def interrupt(self, run_folder: Path) -> None:
        pass  # the repeat running has ended with the interrupt: clean_up removes what it left

    def clean_up(self, run_folder: Path, state: str) -> str:
        self.progress.end_run()
        self.executor.cleanup(run_folder)
        return ""


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
        return run_plan.record(cell, executor.name, "failed", environment.reason, environment, started, log_tail=environment.log_tail)
    time_limit = f"{cell.workload.timeout_minutes:g} min (workloads.{cell.workload.name}.timeout_minutes)"
    if seconds_left is not None and seconds_left < cell.workload.timeout_minutes * 60:
        time_limit = f"{seconds_left:.0f} s (what was left of the run's --budget-minutes)"
        cell = dataclasses.replace(cell, workload=dataclasses.replace(cell.workload, timeout_minutes=seconds_left / 60))
    launched = time.time()  # the same clock as the workload's timeline, in a container too
    raw = executor.run(cell, job_spec(cell, dataset), environment, matrix.limits, run_folder)
    outcome = decide(raw, time_limit=time_limit, memory_limit=f"limit {matrix.limits.memory}, limits.memory")
    return dataclasses.replace(run_plan.record(cell, executor.name, outcome.status, outcome.reason, environment, started, outcome.measurement,
                                               outcome.log_tail), launched=launched)


def run_one(plan: Plan, executor: Executor, cell: Cell, run_folder: Path, repeat: int, progress: Progress,
            locks_in: Path | None = None) -> Record:
    """One run of one cell, provisioned on its own: what a dispatched job does on its node (`run-cell`).

    `run_folder` is where the run's containers are labelled with (a job's work folder); the
    environment's lock goes to `locks_in` (the run folder the job belongs to), default the same.

    The same not-run ladder as a run's: excluded (by the table, or by this node's executor: local's
    interpreter lacks what the cell asks for) and skipped (no GPU on this node's executor) cells are
    records too; a typed cell on a node without a GPU of its type fails, naming the GPUs the node has.
    """
    started = now()
    why = run_plan.not_run(cell, run_plan.Here(wrong_gpu=run_plan.misplaced_here))
    if not why:
        dataset = datasets.prepare(cell.workload, progress)
        prepared, no_gpu = provision(executor, [cell], progress)
        keep_locks(locks_in or run_folder, prepared.values())
        why = run_plan.not_run(cell, run_plan.Here(no_gpu, prepared))
    if why:
        record = run_plan.record(cell, executor.name, *why, started=started)
    else:
        record = run_cell(executor, plan.matrix, cell, prepared[cell.environment], dataset, run_folder)
    return dataclasses.replace(record, repeat=repeat)
