"""bisect: the first cuDNN release between two that changes a cell's verdict, as `git bisect` finds a commit.

The releases are those the compatibility table pins for the cell's CUDA major (read from PyPI,
so pip can install each); each probe is the cell at one of them, a normal cell with normal records
in one run folder. The search measures both ends, then halves: the half whose ends still differ
as the two ends do holds the change. It names the first release whose verdict changes, or says
that no single release explains the difference (both halves differ, or neither does).

Verdicts follow the report's rule (stats.verdict: the interval against the minimum effect, and
Welch's test); the search's comparisons are one family, planned before it starts, so each is held
to alpha over their number (Bonferroni: Holm's step-down needs every p-value at once).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from pathlib import Path

from runner import session, stats
from runner.analysis import cell_results
from runner.cells import Cell, expand
from runner.compatibility import Table, load_table, major_minor
from runner.errors import UserError
from runner.executors import Executor
from runner.progress import Progress

Measure = Callable[[list[str]], Mapping[str, Sequence[float]]]  # cuDNN releases -> each one's seconds, one per repeat


@dataclass(frozen=True)
class Step:
    """A newer release set against an older one: how many times faster the newer is, and the verdict."""

    older: str
    newer: str
    comparison: stats.Comparison

    def __str__(self) -> str:
        return f"cuDNN {self.older} -> {self.newer}: {self.comparison.as_percent()}"


@dataclass(frozen=True)
class Finding:
    cells: str  # the cell at every release searched: gpu-cuda12.5-cudnn*-tf2.21-mnist
    releases: tuple[str, ...]  # the ones searched, oldest first
    steps: tuple[Step, ...]  # every comparison made, in order
    first: str | None  # the first release whose verdict changes; None when no single release does
    conclusion: str  # one sentence


class Unmeasured(Exception):
    """A probe that gave no timed repeats (it failed, or was skipped): the search cannot go on without it."""


def run(plan: session.Plan, cell_id: str, older: str, newer: str, make_executor: Callable[[], Executor], results_dir: Path,
        repeats: int | None, progress: Progress, min_effect: float = stats.MIN_EFFECT) -> tuple[Finding, Path | None]:
    """Search by measuring: each probe runs as cells of one run folder (the first probe makes it, the others resume it).

    The cell and the releases are checked before the executor is made: a wrong one is refused without an engine.
    """
    by_release = probes(plan.cells, cell_id, plan.matrix, load_table(), older, newer)
    executor = make_executor()
    cells = list(by_release.values())
    label = by_release[older].id.replace(f"cudnn{older}", "cudnn*")  # the cell at every release searched
    folder: list[Path] = []

    def measure(releases: list[str]) -> dict[str, Sequence[float]]:
        probe = session.Plan(plan.matrix, cells, [by_release[release] for release in releases])
        result = session.run(probe, executor, results_dir, folder[0].name if folder else None, repeats, progress)
        folder[:] = [result.folder]
        measured = {cell.cell_id: cell for cell in cell_results(result.records)}
        timed = {release: measured.get(by_release[release].id) for release in releases}
        for release, cell in timed.items():
            if cell is None or cell.timed is None:
                raise Unmeasured(f"cuDNN {release} gave no timed repeat ({cell.reason if cell else 'not run'})")
        return {release: cell.timed.per_repeat for release, cell in timed.items()}

    progress(f"bisect {label}: cuDNN {', '.join(by_release)}; at most {comparisons_planned(len(by_release))} comparisons")
    try:
        finding = search(label, list(by_release), measure, min_effect)
    except Unmeasured as failure:
        finding = Finding(label, tuple(by_release), (), None, f"stopped: {failure}; its record says why")
    return finding, (folder[0] if folder else None)


def releases_between(table: Table, cuda: str, older: str, newer: str) -> list[str]:
    """The cuDNN releases the table pins for this CUDA's major, from `older` to `newer` inclusive, oldest first."""
    pinned = sorted(table.cudnn_pip.get(str(major_minor(cuda)[0]), {}), key=major_minor)
    for given in (older, newer):
        if given not in pinned:
            raise UserError(f"--cudnn {given}: not a cuDNN release pip can install for CUDA {cuda}; expected one of {', '.join(pinned)}")
    if major_minor(older) >= major_minor(newer):
        raise UserError(f"--cudnn {older} {newer}: expected the older release first")
    return [release for release in pinned if major_minor(older) <= major_minor(release) <= major_minor(newer)]


def probes(cells: list[Cell], cell_id: str, matrix, table: Table, older: str, newer: str) -> dict[str, Cell]:
    """The cell at each release between `older` and `newer` that the table lets it run with, by release."""
    chosen = next((cell for cell in cells if cell.id == cell_id), None)
    if chosen is None:
        raise UserError(f"{cell_id}: no cell of {matrix.path} has that id (see `list`)")
    if chosen.kind != "gpu":
        raise UserError(f"{cell_id}: a CPU cell loads no cuDNN; bisect takes a GPU cell")
    releases = releases_between(table, chosen.axis("cuda"), older, newer)
    wider = dataclasses.replace(matrix, gpu=dataclasses.replace(matrix.gpu, cudnn=tuple(releases), include=(), exclude=()))
    same = {name: value for name, value in chosen.axes_dict.items() if name != "cudnn"}
    found = {cell.axis("cudnn"): cell for cell in expand(wider, table)
             if cell.workload == chosen.workload and {n: v for n, v in cell.axes_dict.items() if n != "cudnn"} == same}
    runnable = {release: found[release] for release in releases if release in found and not found[release].excluded}
    for end in (older, newer):
        if end not in runnable:
            reason = found[end].excluded if end in found else "the matrix makes no such cell"
            raise UserError(f"--cudnn {end}: {cell_id} cannot run with cuDNN {end}: {reason}")
    return runnable


def comparisons_planned(releases: int) -> int:
    """Both ends, then two comparisons a halving: the family each verdict of the search is held in."""
    return 1 + 2 * math.ceil(math.log2(max(releases - 1, 1)))


def search(cells: str, releases: list[str], measure: Measure, min_effect: float = stats.MIN_EFFECT,
           alpha: float = stats.ALPHA) -> Finding:
    """Binary search over `releases` (oldest first) for the one whose verdict changes, measuring as it goes."""
    family = comparisons_planned(len(releases))
    seconds: dict[str, Sequence[float]] = {}
    steps: list[Step] = []

    def step(older: int, newer: int) -> Step:
        for release in (releases[older], releases[newer]):
            if release not in seconds:
                seconds.update(measure([release]))
        evidence = stats.weigh(seconds[releases[older]], seconds[releases[newer]])
        p_adjusted = min(1.0, evidence.p_value * family)
        steps.append(Step(releases[older], releases[newer], stats.judged(evidence, p_adjusted, family, min_effect, alpha)))
        return steps[-1]

    def found(first: str | None, conclusion: str) -> Finding:
        return Finding(cells, tuple(releases), tuple(steps), first, conclusion)

    seconds.update(measure([releases[0], releases[-1]]))  # both ends in one run, interleaved
    whole = step(0, len(releases) - 1)
    change = whole.comparison.verdict
    if change not in ("faster", "slower"):
        return found(None, f"cuDNN {releases[0]} and {releases[-1]} show no change for {cells} "
                           f"({whole.comparison.words}): there is nothing to bisect")
    low, high = 0, len(releases) - 1
    while high - low > 1:
        middle = (low + high) // 2
        left, right = step(low, middle), step(middle, high)
        if (left.comparison.verdict == change) == (right.comparison.verdict == change):
            how = "both halves are" if left.comparison.verdict == change else "neither half is"
            return found(None, f"no single release explains it: {how} {change} on their own ({left}; {right})")
        low, high = (low, middle) if left.comparison.verdict == change else (middle, high)
    last = next(step for step in reversed(steps) if (step.older, step.newer) == (releases[low], releases[high]))
    return found(releases[high], f"cuDNN {releases[high]} is where {cells} became {change}: against {releases[low]}, "
                                 f"{last.comparison.as_percent()}")


def render(finding: Finding) -> str:
    searched = ", ".join(finding.releases)
    lines = [f"bisect {finding.cells} over cuDNN {searched}", *(f"  {step}" for step in finding.steps), finding.conclusion]
    return "\n".join(lines)
