"""A chart of a run, one row of panels per model: on the left each cell's timed epoch time (the median
repeat, whiskers: the range of the repeats), on the right its speed-up against the baseline with the
interval and the verdict report.py gives it.

Kept apart from report.py so that matplotlib is imported only when a chart is asked for.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import UserError
from runner.records import Record
from runner.report import CellResult, Pair, baselines, cell_results, pairs
from runner.stats import ALPHA, MIN_EFFECT

VERDICT_COLOURS = {"faster": "#2a9d8f", "slower": "#d1495b", "no_difference": "#999999"}


def plot(records: list[Record], path: Path, baseline: str | None = None, min_effect: float = MIN_EFFECT) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    results = [result for result in cell_results(records) if result.timed]
    if not results:
        raise UserError(f"{path}: no measured cell in this run, so there is no chart to draw")
    chosen = baselines(results, baseline)
    speedups = {pair.other.cell_id: pair for pair in pairs(results, chosen, min_effect) if pair.question == "speed-up"}
    models = list(dict.fromkeys(result.model for result in results))
    heights = [sum(r.model == m for r in results) for m in models]
    figure, axes = plt.subplots(len(models), 2, figsize=(14, 1.6 + 0.55 * sum(heights)), squeeze=False, sharey="row",
                                gridspec_kw={"height_ratios": heights})
    for (times, ratios), model in zip(axes, models):
        mine = [r for r in results if r.model == model]
        _draw_times(times, mine)
        _draw_speedups(ratios, mine, chosen.get(model), speedups, min_effect)
        times.set_title(model, loc="left", fontsize=11)
    axes[-1, 0].set_xlabel("timed epoch, seconds\n(median repeat; whiskers: range of the repeats)")
    axes[-1, 1].set_xlabel(f"speed-up against the baseline, times (log scale)\n"
                           f"(whiskers: {(1 - ALPHA) * 100:.0f}% interval; shaded: under the minimum effect)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _draw_times(axis, results: list[CellResult]) -> None:
    medians = [result.timed.median for result in results]
    errors = [[m - r.timed.low for m, r in zip(medians, results)], [r.timed.high - m for m, r in zip(medians, results)]]
    colours = ["#4c72b0" if result.kind == "gpu" else "#999999" for result in results]
    axis.barh([result.cell_id for result in results], medians, xerr=errors, color=colours, capsize=3)
    for index, result in enumerate(results):
        count = len(result.outlier_epochs)
        if count:
            axis.text(result.timed.high, index, f" {count} outlier epoch{'s' * (count > 1)}", va="center", fontsize=9)
    axis.invert_yaxis()
    axis.margins(x=0.25)


def _draw_speedups(axis, results: list[CellResult], reference: CellResult | None, speedups: dict[str, Pair], min_effect: float) -> None:
    from matplotlib.ticker import FuncFormatter

    # A log scale, so that 2x faster and 2x slower lie as far from 1x, and no ratio is drawn below zero.
    axis.set_xscale("log")
    axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    axis.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    axis.axvspan(1 - min_effect, 1 + min_effect, color="#eeeeee", zorder=0)
    axis.axvline(1.0, color="#555555", linewidth=0.8, zorder=1)
    for index, result in enumerate(results):
        pair = speedups.get(result.cell_id)
        if pair is None:
            axis.text(1.0, index, " baseline" if result is reference else " no baseline", va="center", fontsize=9)
            continue
        c = pair.comparison
        error = [[c.ratio - c.ci_low], [c.ci_high - c.ratio]] if c.ci_low is not None else None
        axis.errorbar(c.ratio, index, xerr=error, fmt="o", color=VERDICT_COLOURS[c.verdict], capsize=4, zorder=2)
        # Labels in a column right of the panel: beside the points they would run off a log axis.
        axis.annotate(c.as_times(), xy=(1.0, index), xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points",
                      va="center", fontsize=9, color=VERDICT_COLOURS[c.verdict] if c.verdict != "no_difference" else "black")
    axis.margins(x=0.15)
