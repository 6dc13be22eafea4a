"""Charts, drawn with matplotlib: a run's (for `run --plot`, `report --plot` and the site) and a cell's across runs (the site).

The site's are SVG files: nothing to load from anywhere at view time; a run's chart may also be PNG or PDF.

Colours are the Okabe-Ito palette, told apart with colour-vision deficiencies, and never the only
channel: markers differ too, and every point that matters carries a text label. Text from results
files is drawn as text, never parsed: matplotlib's mathtext would read "$...$" in a cell id.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from runner.analysis import Analysis, CellResult
from runner.errors import UserError
from runner.stats import ALPHA

# Okabe & Ito (2008), "Color Universal Design": blue, orange, bluish green, vermillion, reddish purple, sky blue, black.
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, BLACK = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"
HOST_COLOURS = (BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, BLACK)
HOST_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
KIND_STYLE = {"cpu": (ORANGE, "s", "CPU cell"), "gpu": (BLUE, "o", "GPU cell")}
VERDICT_STYLE = {"faster": (GREEN, "^", "faster"), "slower": (VERMILLION, "v", "slower"), "same": (BLUE, "s", "same"),
                 "no_difference": (BLACK, "o", "no difference shown"), "not_comparable": (BLACK, "x", "not comparable")}
LABEL_CHARACTERS = 56  # longer cell ids and host names are cut, with an ellipsis, in charts (pages give them whole)


@contextmanager
def _style():
    import matplotlib

    with matplotlib.rc_context({
        "text.parse_math": False,  # a "$" in a cell id is a dollar sign
        "svg.hashsalt": "cudnn-matrix",  # the same chart twice is the same file
        "svg.fonttype": "path",  # looks the same without the fonts installed
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlelocation": "left",
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
    }):
        yield


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARACTERS else text[:LABEL_CHARACTERS - 1] + "\u2026"


# No date in the file: the same chart twice is the same file. PNG has no date to leave out.
UNDATED = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}


def _save(figure, path: Path) -> Path:
    """Whole or not at all: a page never shows half a chart. The format is the file name's: .svg, .png or .pdf."""
    partial = path.with_name(f".{path.name}.partial")
    kind = path.suffix.lower().lstrip(".")
    try:
        figure.savefig(partial, format=kind, metadata=UNDATED[kind], dpi=110 if kind == "png" else "figure")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def run_chart(analysis: Analysis, path: Path) -> Path:
    """A run's measured cells, one row of panels per workload: training time per epoch (median repeat, range of the
    repeats) on the left, the speed-up against the workload's baseline with its interval on the right."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    measured = analysis.measured
    if not measured:
        raise UserError(f"{path}: no measured cell in this run, so there is no chart to draw")
    min_effect = analysis.min_effect
    speedups = {pair.other.cell_id: pair.comparison for pair in analysis.pairs if pair.question == "speed-up"}
    workloads = list(dict.fromkeys(result.workload for result in measured))
    heights = [sum(result.workload == workload for result in measured) for workload in workloads]
    with _style():
        figure = Figure(figsize=(12, 1.7 + 0.34 * sum(heights) + 0.75 * len(workloads)))
        rows = _run_chart_axes(figure, measured, speedups, heights)
        for (times, ratios), workload in zip(rows, workloads):
            mine = [result for result in measured if result.workload == workload]
            _times_panel(times, mine)
            _speedup_panel(ratios, mine, analysis.baselines.get(workload), speedups, min_effect)
            times.set_title(f"{workload}: training time per epoch", fontsize=10)
            ratios.set_title(f"{workload}: speed-up against the baseline", fontsize=10)
        rows[-1][0].set_xlabel("training seconds per timed epoch\n(marker: median repeat; whiskers: range of the repeats)")
        rows[-1][1].set_xlabel(f"speed-up, times, log scale: above 1x is faster\n(whiskers: {(1 - ALPHA) * 100:.0f}% bootstrap "
                               f"interval; shaded: within {min_effect * 100:g}% of 1x)")
        legend = [Line2D([], [], color=colour, marker=marker, linestyle="", label=label) for colour, marker, label in KIND_STYLE.values()]
        legend += [Line2D([], [], color=colour, marker=marker, linestyle="", label=label) for colour, marker, label in VERDICT_STYLE.values()]
        figure.legend(handles=legend, loc="lower center", bbox_to_anchor=(0.5, 0.05 / figure.get_figheight()), ncols=len(legend), frameon=False)
        return _save(figure, path)


# A fixed layout, in inches, instead of matplotlib's constrained one: that one draws the whole figure once
# more to measure it, half of a chart's time. What varies, the labels' widths, is measured from the font.
TOP, ROW_GAP, BOTTOM, EDGE = 0.3, 0.55, 1.05, 0.1  # title; tick labels and the next title; labels and legend; paper's edge
TICK = 0.1  # a tick and its pad


def _run_chart_axes(figure, measured: list[CellResult], speedups: dict, heights: list[int]) -> list[tuple]:
    """Two axes a workload, placed so the cell ids fit on the left, the speed-up labels on the right, and
    the epoch-time labels that pass their panel's edge in the gap between the two."""
    width, height = figure.get_figwidth(), figure.get_figheight()
    left = EDGE + TICK + _widest([_short(result.cell_id) for result in measured], 9)
    right = EDGE + 6 / 72 + _widest([c.as_times() for c in speedups.values()] or ["baseline"], 8)
    gap = 0.45 + _widest([_time_note(result) for result in measured], 8)
    # Width ratio 1 : 1.15; the epoch-time panel's limit leaves a quarter of it free beside the widest note.
    times_width = (width - left - right - gap) / 2.15
    gap = max(0.8, gap - 0.25 * times_width)  # at least room for the two panels' axis labels, each wider than its panel
    times_width = (width - left - right - gap) / 2.15
    per_cell = (height - TOP - BOTTOM - ROW_GAP * (len(heights) - 1)) / sum(heights)
    rows, top = [], height - TOP
    for cells in heights:
        bottom = top - per_cell * cells
        box = lambda x, w: (x / width, bottom / height, w / width, per_cell * cells / height)  # noqa: E731
        rows.append((figure.add_axes(box(left, times_width)), figure.add_axes(box(left + times_width + gap, times_width * 1.15))))
        top = bottom - ROW_GAP
    return rows


def _widest(texts: list[str], size: float) -> float:
    """The widest of these texts in inches, at this font size, from the font's metrics: nothing is drawn."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    font = FontProperties(size=size)
    return max(text_to_path.get_text_width_height_descent(text, font, ismath=False)[0] for text in texts) / 72


def _time_note(result: CellResult) -> str:
    outliers = len(result.outlier_epochs)
    return f"  {result.timed.median:.2f} s" + (f", {outliers} outlier epoch{'s' * (outliers > 1)}" if outliers else "")


def _times_panel(axis, results: list[CellResult]) -> None:
    for index, result in enumerate(results):
        colour, marker, _ = KIND_STYLE.get(result.kind, (BLACK, "o", ""))
        low, middle, high = result.timed.low, result.timed.median, result.timed.high
        axis.errorbar(middle, index, xerr=[[middle - low], [high - middle]], fmt=marker, color=colour, capsize=4, markersize=7)
        axis.annotate(_time_note(result), xy=(high, index), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    axis.set_yticks(range(len(results)), [_short(result.cell_id) for result in results])
    axis.set_ylim(len(results) - 0.5, -0.5)
    axis.set_xlim(left=0, right=max(result.timed.high for result in results) * 1.35)
    axis.grid(axis="x", color="#dddddd", linewidth=0.6)
    axis.set_axisbelow(True)


def _speedup_panel(axis, results: list[CellResult], reference: CellResult | None, speedups: dict, min_effect: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    # A log scale: 2x faster and 2x slower lie as far from 1x.
    axis.set_xscale("log")
    axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.axvspan(1 - min_effect, 1 + min_effect, color="#e8e8e8", zorder=0)
    axis.axvline(1.0, color="#555555", linewidth=0.8, zorder=1)
    values = [1.0]
    for index, result in enumerate(results):
        c = speedups.get(result.cell_id)
        if c is None:
            axis.annotate("baseline" if result is reference else "no baseline", xy=(1.0, index), xytext=(6, 0),
                          textcoords="offset points", va="center", fontsize=8, color="#333333")
            continue
        colour, marker, _ = VERDICT_STYLE[c.verdict]
        error = [[c.ratio - c.ci_low], [c.ci_high - c.ratio]] if c.ci_low is not None else None
        axis.errorbar(c.ratio, index, xerr=error, fmt=marker, color=colour, capsize=4, markersize=7, zorder=2)
        values += [c.ratio] + ([c.ci_low, c.ci_high] if c.ci_low is not None else [])
        axis.annotate(c.as_times(), xy=(1.0, index), xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points",
                      va="center", fontsize=8, color="#000000")
    low, high = min(min(values) / 1.3, 1 / 1.3), max(max(values) * 1.3, 1.3)
    axis.set_xlim(low, high)
    axis.xaxis.set_major_locator(FixedLocator(_ratio_ticks(low, high)))
    axis.set_yticks(range(len(results)), [""] * len(results))
    axis.set_ylim(len(results) - 0.5, -0.5)
    axis.grid(axis="x", color="#dddddd", linewidth=0.6, which="major")


def _ratio_ticks(low: float, high: float) -> list[float]:
    """Round ratios within (low, high), at most about eight: 0.8x 0.9x 1x 1.1x 1.25x on a narrow axis, 1x 2x 5x 10x on a wide one."""
    decades = [10.0 ** power for power in range(-3, 4)]
    for steps in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.1, 1.25, 1.5, 2, 3, 5, 7), (0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 7)):
        ticks = sorted({round(d * s, 6) for d in decades for s in steps if low < d * s < high})
        if len(ticks) >= 4 or steps[0] == 0.8:
            return ticks[:: max(1, len(ticks) // 8)]
    return [1.0]


def history_chart(cell_id: str, lines: list[tuple[str, list[tuple[datetime, float, float, float, str]]]], path: Path) -> Path:
    """A cell across runs: per host a line of (start, median repeat, range, annotation), in the Okabe-Ito colours."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    with _style():
        figure = Figure(figsize=(10, 4.2))
        legend_rows = -(-len(lines) // 3) if lines else 1
        bottom = 0.7 + 0.17 * (legend_rows + 1)  # tick labels, the date's offset, the axis label; the legend's title and rows
        left = EDGE + TICK + 0.35 + 0.4  # the two-line axis label; tick labels of a few figures
        axis = figure.add_axes((left / 10, bottom / 4.2, (10 - left - 0.2) / 10, (4.2 - bottom - TOP) / 4.2))
        top = 0.0
        for index, (host, points) in enumerate(lines):
            colour, marker = HOST_COLOURS[index % len(HOST_COLOURS)], HOST_MARKERS[index % len(HOST_MARKERS)]
            moments = [point[0] for point in points]
            middles = [point[1] for point in points]
            errors = [[m - p[2] for m, p in zip(middles, points)], [p[3] - m for m, p in zip(middles, points)]]
            axis.errorbar(moments, middles, yerr=errors, fmt=marker, linestyle=("-", "--", ":")[index // len(HOST_COLOURS) % 3],
                          color=colour, capsize=4, markersize=7, linewidth=1.4, label=_short(host))
            for moment, middle, _, high, note in points:
                if note:
                    axis.annotate(note, xy=(moment, high), xytext=(0, 8), textcoords="offset points", ha="center", va="bottom",
                                  fontsize=8, color=VERMILLION if "slower" in note.split("\n")[0] else "#222222")
            top = max([top] + [point[3] for point in points])
        axis.set_ylim(0, top * 1.35 or 1)
        locator = AutoDateLocator(minticks=3, maxticks=8)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axis.set_xlabel("run start (UTC)")
        axis.set_ylabel("training seconds per timed epoch\n(median repeat; whiskers: range of the repeats)")
        axis.set_title(_short(cell_id), fontsize=10)
        axis.grid(axis="y", color="#dddddd", linewidth=0.6)
        axis.set_axisbelow(True)
        figure.legend(title="host", loc="lower center", bbox_to_anchor=(0.5, 0.05 / 4.2), ncols=min(len(lines), 3) or 1, fontsize=8,
                      title_fontsize=8, frameon=False)
        return _save(figure, path)
