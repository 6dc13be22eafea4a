"""A chart of a run: timed epoch time per cell (the median repeat, with the range of the repeats), grouped by workload, speed-ups labelled.

Kept apart from report.py so that matplotlib is imported only when a chart is asked for.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import UserError
from runner.report import CellResult, Pair, baselines, cell_results, pairs
from runner.records import Record


def plot(records: list[Record], path: Path, baseline: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    results = [result for result in cell_results(records) if result.timed]
    if not results:
        raise UserError(f"{path}: no measured cell in this run, so there is no chart to draw")
    chosen = baselines(results, baseline)
    speedups = {pair.other.cell_id: pair for pair in pairs(results, chosen) if pair.question == "speed-up"}
    workloads = list(dict.fromkeys(result.model for result in results))
    heights = [sum(r.model == w for r in results) for w in workloads]
    figure, axes = plt.subplots(len(workloads), 1, figsize=(10, 1.2 + 0.55 * sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    for axis, workload in zip(axes[:, 0], workloads):
        _draw(axis, [r for r in results if r.model == workload], chosen.get(workload), speedups)
        axis.set_title(workload, loc="left", fontsize=11)
    axes[-1, 0].set_xlabel("timed epoch, seconds (median repeat; bars: range of the repeats)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _draw(axis, results: list[CellResult], reference: CellResult | None, speedups: dict[str, Pair]) -> None:
    names = [result.cell_id for result in results]
    medians = [result.timed.median for result in results]
    errors = [[m - r.timed.low for m, r in zip(medians, results)], [r.timed.high - m for m, r in zip(medians, results)]]
    colours = ["#4c72b0" if result.kind == "gpu" else "#999999" for result in results]
    axis.barh(names, medians, xerr=errors, color=colours, capsize=3)
    axis.invert_yaxis()
    for index, result in enumerate(results):
        pair = speedups.get(result.cell_id)
        label = f" {pair.comparison.as_times()}" if pair else " baseline" if result is reference else ""
        axis.text(result.timed.high, index, label, va="center", fontsize=9)
    axis.margins(x=0.15)
