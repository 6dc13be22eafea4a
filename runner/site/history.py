"""Each cell across runs: per host, in start order, every run against the host's previous one.

A driver or cuDNN update that made a cell slower shows as a step judged "slower" (the same test and
interval as a report's speed-ups: runner/stats.py), with what changed between the two runs beside it.
Plain values in, plain values out: the runs' summaries and cell points as views.py made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from runner.stats import Comparison

# What a change between two runs of a cell on one host is named by, in the order it is told.
CHANGES = (("driver", "driver"), ("cudnn", "cuDNN"), ("cuda", "CUDA runtime"), ("versions", "framework / Keras"), ("executor", "executor"))

Compare = Callable[[list[float], list[float]], Comparison]  # previous run's repeats, this run's -> this run against the previous


@dataclass(frozen=True)
class Step:
    """A cell in one run, and how it stands against the previous measured run of it on the same host."""

    run: dict  # the run's summary (views.summary)
    point: dict  # the cell in that run (views.cell_points)
    previous_run: dict | None  # the previous run on the same host that measured the cell
    comparison: Comparison | None
    changes: tuple[str, ...]  # "driver 550.54 -> 560.35"

    @property
    def measured(self) -> bool:
        return self.point["median"] is not None

    @property
    def verdict(self) -> str:
        return self.comparison.verdict if self.comparison else ""

    def timing(self) -> str:
        p = self.point
        return f"{p['median']:.2f} ({p['low']:.2f}-{p['high']:.2f})" if self.measured else "-"


def by_cell(runs: list[tuple[dict, list[dict]]]) -> dict[str, list[tuple[dict, dict]]]:
    """Cell id -> (run summary, point) in the runs' order (oldest first)."""
    cells: dict[str, list[tuple[dict, dict]]] = {}
    for run, points in runs:
        for point in points:
            cells.setdefault(point["cell_id"], []).append((run, point))
    return cells


def steps(history: list[tuple[dict, dict]], compare: Compare) -> list[Step]:
    """Each run of the cell against the previous measured run on the same host."""
    last: dict[str, tuple[dict, dict]] = {}
    found = []
    for run, point in history:
        before = last.get(run["host_key"])
        comparison, changes = None, ()
        if before and point["median"] is not None:
            previous = before[1]
            comparison = compare(previous["per_repeat"], point["per_repeat"])
            changes = tuple(f"{label} {previous[key]} -> {point[key]}" for key, label in CHANGES if previous.get(key) != point.get(key))
        found.append(Step(run, point, before[0] if before else None, comparison, changes))
        if point["median"] is not None:
            last[run["host_key"]] = (run, point)
    return found


def series(found: list[Step]) -> list[tuple[str, list[Step]]]:
    """Per host (in order of first appearance), its measured steps: one line of a cell's chart."""
    hosts: dict[str, tuple[str, list[Step]]] = {}
    for step in found:
        if step.measured:
            hosts.setdefault(step.run["host_key"], (step.run["host_label"], []))[1].append(step)
    return list(hosts.values())


def annotation(step: Step) -> str:
    """What a chart says beside a point: a change that was called, and what differs from the host's previous run."""
    lines = []
    if step.comparison and step.comparison.verdict not in ("no_difference", "not_comparable"):
        lines.append(f"{step.comparison.ratio:.2f}x {step.comparison.verdict}")
    lines += [change for change in step.changes if not change.startswith("executor")]
    return "\n".join(lines)


def changed_cells(all_steps: dict[str, list[Step]]) -> dict[str, dict[str, list[str]]]:
    """Run id -> verdict (faster, slower) -> the cells judged so against the previous run on the same host."""
    changed: dict[str, dict[str, list[str]]] = {}
    for cell_id, found in all_steps.items():
        for step in found:
            if step.verdict in ("faster", "slower"):
                changed.setdefault(step.run["run_id"], {"faster": [], "slower": []})[step.verdict].append(cell_id)
    return changed
