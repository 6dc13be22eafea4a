"""Two runs' records -> the same cells side by side: B's speed against A's, judged as a report's speed-ups are.

What `compare` prints (runner/report.py) and what `compare --fail-on slower` fails on. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.analysis import CellResult, TelemetryWarning, cell_results, telemetry_warnings
from runner.records import Record
from runner.stats import MIN_EFFECT, Comparison, judge, weigh


@dataclass(frozen=True)
class CellAcrossRuns:
    """One cell in runs A and B, and B's speed against A's where both measured it."""

    cell_id: str
    a: CellResult
    b: CellResult
    comparison: Comparison | None

    @property
    def energy_ratio(self) -> float | None:
        """B's GPU energy per epoch over A's: below 1 B used less."""
        a, b = _energy(self.a), _energy(self.b)
        return b / a if a is not None and b is not None else None


@dataclass(frozen=True)
class RunComparison:
    """The same cells of two runs side by side: B's speed against A's, judged as a speed-up is."""

    name_a: str
    name_b: str
    cells: tuple[CellAcrossRuns, ...]  # the cells both runs have, in A's order
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    warnings_a: tuple[TelemetryWarning, ...]  # of the cells both runs have
    warnings_b: tuple[TelemetryWarning, ...]
    min_effect: float

    @property
    def with_energy(self) -> bool:
        return any(cell.energy_ratio is not None for cell in self.cells)

    @property
    def slower(self) -> tuple[str, ...]:
        """The cells whose verdict in B against A is slower: what `compare --fail-on slower` fails on."""
        return tuple(cell.cell_id for cell in self.cells if cell.comparison and cell.comparison.verdict == "slower")


def compare_runs(records_a: list[Record], records_b: list[Record], name_a: str, name_b: str,
                 min_effect: float = MIN_EFFECT) -> RunComparison:
    results_a = {result.cell_id: result for result in cell_results(records_a)}
    results_b = {result.cell_id: result for result in cell_results(records_b)}
    common = [cell_id for cell_id in results_a if cell_id in results_b]
    timed = [cell_id for cell_id in common if results_a[cell_id].timed and results_b[cell_id].timed]
    # The cells of the two runs are one family, as a report's comparisons are: Holm's correction over them all.
    family = judge([weigh(results_a[c].timed.per_repeat, results_b[c].timed.per_repeat) for c in timed], min_effect)
    judged = dict(zip(timed, family))
    cells = [CellAcrossRuns(c, results_a[c], results_b[c], judged.get(c)) for c in common]
    return RunComparison(name_a, name_b, tuple(cells), tuple(c for c in results_a if c not in results_b),
                         tuple(c for c in results_b if c not in results_a), telemetry_warnings([results_a[c] for c in common]),
                         telemetry_warnings([results_b[c] for c in common]), min_effect)


def _energy(result: CellResult) -> float | None:
    return result.telemetry.energy_joules if result.telemetry else None
