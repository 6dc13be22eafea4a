"""What a run has left to do, and why a cell does not run: pure functions every placement shares.

A run (local, Slurm or SSH) plans the same way: the cells not yet measured as often as
asked, each with the repeat numbers it lacks (a resume fills gaps, never more than asked),
in rounds (every cell's repeat k before any cell's k + 1), each round in an order shuffled by the
run's seed. A cell that cannot run where the run is placed is recorded once,
with the first rung of one ladder that applies; `record` makes that record, and every other.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

from runner import gpu_types
from runner.cells import Cell
from runner.executors import Prepared, PrepareFailure, Unsuitable, provenance
from runner.records import Record, now

NotRun = tuple[str, str]  # a record's status and reason, for a cell that does not run


def left_to_run(cells: list[Cell], earlier: list[Record], repeats: int) -> list[Cell]:
    """The cells, less those the earlier records (a run being resumed) have measured as often as asked."""
    measured = Counter(record.cell_id for record in earlier if record.status == "ok")
    return [cell for cell in cells if measured[cell.id] < repeats]


def repeats_left(earlier: list[Record], cell_id: str, repeats: int) -> list[int]:
    """The repeat numbers of a cell not measured yet, lowest first: a resume fills gaps (a failed repeat 0 beside a good repeat 1).

    Never more than `repeats` less those measured, whatever their numbers: a run resumed with
    fewer repeats than it started with measures nothing more of a cell that has them.
    """
    measured = [record.repeat for record in earlier if record.cell_id == cell_id and record.status == "ok"]
    return [repeat for repeat in range(repeats) if repeat not in measured][:max(0, repeats - len(measured))]


def interleaved(cells: list[Cell], repeats_left: Mapping[str, range | list[int]], seed: int = 0) -> list[tuple[Cell, int]]:
    """(cell, repeat) in rounds, every cell's repeat k before any cell's k + 1, each round in its own shuffled order.

    Rounds spread a drift of the machine (heat, another job) over every cell alike; the shuffle keeps
    what one run leaves the next (caches, clocks, temperature) from always landing on the same cell.
    The order is the seed's alone: the same seed and the same cells left give the same order.
    """
    shuffler = random.Random(seed)
    rounds = max((len(left) for left in repeats_left.values()), default=0)
    order = []
    for turn in range(rounds):
        this_round = [(cell, repeats_left[cell.id][turn]) for cell in cells if turn < len(repeats_left[cell.id])]
        shuffler.shuffle(this_round)
        order += this_round
    return order


def group_rounds(runs: list[tuple[Cell, int]]) -> list[list[tuple[Cell, int]]]:
    """The runs cut into what one host takes whole: one round of one comparison group, in the runs' order.

    A group is a workload's cells (its comparisons are within it), those of a GPU type (gpu.gpu_type)
    apart, as one host may have none of that type. A host that runs one cell of a group then runs every
    cell of it as often, so that no comparison sets one host's speed against another's (runner/strata.py).
    """
    units: dict[tuple[tuple[str, str], int], list[tuple[Cell, int]]] = {}
    rounds: Counter = Counter()
    for cell, repeat in runs:
        units.setdefault((group_of(cell), rounds[cell.id]), []).append((cell, repeat))
        rounds[cell.id] += 1
    return list(units.values())


def group_of(cell: Cell) -> tuple[str, str]:
    """The comparison group of a cell, as dispatchers keep it together: its workload, and its GPU type where it has one."""
    return cell.workload.name, cell.axis("gpu_type")


def group_nodes(earlier: list[Record]) -> dict[tuple[str, str], str]:
    """Comparison group -> the host (node) that measured its last good record: where placement: same-node keeps it on a resume."""
    return {(record.workload, record.axes.get("gpu_type", "")): record.environment["host"] for record in earlier
            if record.status == "ok" and record.environment.get("host")}


def new_seed() -> int:
    """A run's order seed, when none is given: recorded in its manifest, so that the order can be made again."""
    return random.SystemRandom().randrange(2**32)


def runs_left(todo: list[Cell], earlier: list[Record], repeats: int, why_not: Callable[[Cell], NotRun | None],
              seed: int = 0) -> list[tuple[Cell, int]]:
    """Every (cell, repeat) a run has left, interleaved by the seed; a cell that will not run is there once, in the first
    round, for its record, unless an earlier session of the run recorded it already."""
    noted = {record.cell_id for record in earlier if record.status in ("excluded", "skipped")}
    left = {cell.id: range(0 if cell.id in noted else 1) if why_not(cell) else repeats_left(earlier, cell.id, repeats) for cell in todo}
    return interleaved(todo, left, seed)


@dataclass(frozen=True)
class Here:
    """What the place a run is carried out offers its cells, as far as the not-run ladder asks."""

    no_gpu: str | None = None  # why GPU cells cannot run there; None: they can
    environments: Mapping = field(default_factory=dict)  # EnvironmentSpec -> what the executor made of it
    wrong_gpu: Callable[[Cell], NotRun | None] = lambda cell: None  # a cell of a gpu_type there is none of


def not_run(cell: Cell, here: Here) -> NotRun | None:
    """Why a cell does not run here, as its record's status and reason; None when it runs. The first rung that applies:

    excluded by the compatibility table; skipped for want of a GPU; its gpu_type not here (skipped,
    or failed where a scheduler placed it); excluded by the executor, which will not make its environment here.
    """
    if cell.excluded:
        return "excluded", cell.excluded
    if cell.kind == "gpu" and here.no_gpu:
        return "skipped", here.no_gpu
    if wrong := here.wrong_gpu(cell):
        return wrong
    environment = here.environments.get(cell.environment)
    return ("excluded", environment.reason) if isinstance(environment, Unsuitable) else None


def record(cell: Cell, executor: str, status: str, reason: str, environment: Prepared | PrepareFailure | None = None,
           started: str = "", measurement=None, log_tail: str = "", repeat: int = 0, where: Mapping[str, str] | None = None) -> Record:
    """A cell's record: of a run measured in `environment`, or (None) of a cell no run measured, with what was asked for.

    `where` adds facts of the place it ran or was meant to (a host, a job id) to the environment's provenance.
    """
    facts = {**provenance(environment, cell.environment), **{key: value for key, value in (where or {}).items() if value}}
    return Record(cell_id=cell.id, status=status, reason=reason, axes=cell.axes_dict, workload=cell.workload.name, executor=executor,
                  environment=facts, started=started or now(), ended=now(), measurement=measurement, log_tail=log_tail, repeat=repeat)


@dataclass(frozen=True)
class Turn:
    """One (cell, repeat) of a run's session, as a placement is handed it: which of how many, for its progress line."""

    cell: Cell
    repeat: int
    number: int  # among the runs this session carries out
    of: int
    repeats: int  # asked of every cell

    @property
    def place(self) -> str:
        return f"[{self.number}/{self.of}] {self.cell.id}"

    @property
    def label(self) -> str:
        return self.place + (f" (repeat {self.repeat + 1}/{self.repeats})" if self.repeats > 1 else "")


def not_on_this_host(cell: Cell) -> NotRun | None:
    """A cell of a gpu_type this machine has none of: skipped here, for a cluster to run."""
    return ("skipped", elsewhere) if (elsewhere := gpu_types.not_here(cell)) else None


def misplaced_here(cell: Cell) -> NotRun | None:
    """A typed cell a scheduler placed on a node without a GPU of its type: failed, for the scheduler was asked for one."""
    return ("failed", wrong_node) if (wrong_node := gpu_types.misplaced(cell)) else None
