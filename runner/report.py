"""Stage 7: the analysis (runner/analysis.py) -> a report: text tables, JSON or CSV. Pure: it formats what it is given.

Text: per workload a table of its measured cells (--wide: one table of every column), the seed's kind of
sentences, how verdicts were reached, and the notes (outlier epochs, input-bound cells, telemetry
warnings, cells not measured, synthetic data, cells run without isolation). Where the records carry
telemetry (runner/telemetry.py), peak memory, GPU energy per epoch and images per joule join the wide table.

JSON and CSV carry numbers under stable snake_case keys, schema in docs/results.md: JSON has
`schema_version` (SCHEMA_VERSION), `cells` (one object per cell, CELL_KEYS and two lists), `comparisons`
(COMPARISON_KEYS), `sentences` and `notes`; CSV is one row per cell with the columns CELL_KEYS.
`compare`'s JSON and CSV are alike, one row per cell both runs have (COMPARE_KEYS).
"""

from __future__ import annotations

import csv
import io
import json
from statistics import median

from tabulate import tabulate

from runner import kernels, telemetry
from runner.analysis import INPUT_BOUND, Analysis, CellResult, NotMeasured, OutlierEpoch, TelemetryWarning, analyze
from runner.records import Record
from runner.run_comparison import CellAcrossRuns, RunComparison, compare_runs
from runner.stats import ALPHA, CORRECTION, FEWEST_REPEATS, MIN_EFFECT, OUTLIER_MADS, VERDICT_RULE, Comparison

FORMATS = ("github", "plain", "markdown", "csv", "json")
# Of report's and compare's JSON and CSV: raised when a key changes meaning or goes (2: Holm, verdict same; 3: the seconds are
# the timed epochs' training time, validation left out, under train_seconds_* keys, which were epoch_seconds_*).
SCHEMA_VERSION = 3
# The default table, per workload, of its measured cells: what a terminal of 100 columns shows whole (--wide: COLUMNS).
NARROW_COLUMNS = ["cell", "status", "train s", "speed-up", "verdict"]
NARROW_NOTE = ("train s: the median repeat's timed epochs, training only (validation is timed apart); the speed-up\n"
               "and its verdict are from those repeats. Cells not measured are listed below; --wide shows all.")
WIDE_NOTE = ("The speed-up and its verdict are from train s (the timed epochs' training alone, validation timed apart; "
             "the median repeat), as images/s is.")
COLUMNS = ["cell", "status", "workload", "device", "CUDA", "cuDNN named / loaded", "framework, Keras loaded",
           "first epoch train s", "repeats", "train s median (repeat range)", "outlier epochs", "images/s", "speed-up"]
# Added only when some cell's records carry the figures, so that runs from before telemetry read as they did.
MEMORY_COLUMNS = ["peak RSS"]
GPU_COLUMNS = ["GPU memory peak", "GPU energy/epoch", "images/J"]
ESTIMATED_NOTE = "* GPU energy integrated from power samples: the GPU has no energy counter."
TELEMETRY_NOTE = f"Telemetry, during timed epochs ({telemetry.LOCK_NOTE[:-1]}):"
COMPILED_NOTE = ("Compiled while timed: XLA compiled the training step during a timed epoch, which timed the compile as training "
                 "(one more warm-up epoch, warmup_epochs, keeps it out):")
INPUT_BOUND_NOTE = (f"Input-bound cells: more than {INPUT_BOUND:.0%} of each timed training step waits for the next batch, "
                    "so these cells time the input pipeline, not the model (compare devices on `input: cached`, or raise parallel_calls):")
OUTLIER_NOTE = (f"Outlier epochs, more than {OUTLIER_MADS:g} MADs from their cell's median epoch (kept: one moves only its own "
                "repeat's number, and the test ranks repeats):")
SYNTHETIC_NOTE = "Synthetic data (no real data was present) for: {}. Timings are real; accuracy is meaningless."
KERNEL_NOTE = ("Kernel time, from each framework's profiler over a few steps after the timed epochs (a CPU's operators "
               "may overlap on its threads: compare the classes, not the clock):")
CONVOLUTION_NOTE = ("Convolution time per step (the profiled convolution kernels' time): judged as above, Holm-corrected over its "
                    "own {} comparison(s), for cells profiled alike.")
UNISOLATED_NOTE = "Cells run without isolation (executor {}): other processes on the host may have shared their CPU, memory and GPU."


def method_note(min_effect: float, family: int) -> str:
    """How every ratio in a report was judged, said once under it."""
    effect = f"{min_effect * 100:g}%"
    return (f"Speed-ups: ratios of the median repeat (one fresh process; its number is the median of its timed epochs), "
            f"with a {(1 - ALPHA) * 100:.0f}% bootstrap interval.\n"
            f"With {FEWEST_REPEATS} repeats or more a cell, faster or slower only when Welch's t-test on log seconds, Holm-corrected "
            f"over the {family} comparison{'s' * (family != 1)} here, gives p < {ALPHA} and the whole interval is more than {effect} "
            f"from 1.00x; same within {effect} when the whole interval is inside it; otherwise no difference is shown, with about "
            "how many repeats would decide.")


def render(records: list[Record], table_format: str = "github", baseline: str | None = None, min_effect: float = MIN_EFFECT,
           wide: bool = False) -> str:
    """The report; its table, in text formats, is the narrow one per workload unless `wide` (CSV and JSON have every column)."""
    analysis = analyze(records, baseline, min_effect)
    if table_format == "json":
        return as_json(analysis)
    if table_format == "csv":
        return _csv(CELL_KEYS, [cell_numbers(analysis, result) for result in analysis.results])
    return as_text(analysis, table_format, wide)


def render_groups(groups: dict[str, list[Record]], key: str, table_format: str = "github", baseline: str | None = None,
                  min_effect: float = MIN_EFFECT, wide: bool = False) -> str:
    """One report per value of `key` (report --by): in JSON one object whose `groups` hold each value's report, in CSV
    one table whose first column, by_KEY, is the value, so that either stays one document a program can read."""
    if table_format == "json":
        return json.dumps({"by": key, "groups": [{"value": value, **json.loads(as_json(analyze(group, baseline, min_effect)))}
                                                 for value, group in groups.items()]}, indent=2)
    if table_format == "csv":
        rows = [{f"by_{key}": value, **cell_numbers(analysis, result)} for value, group in groups.items()
                for analysis in [analyze(group, baseline, min_effect)] for result in analysis.results]
        return _csv([f"by_{key}"] + CELL_KEYS, rows)
    return "\n\n".join(f"{key} {value}\n" + render(group, table_format, baseline, min_effect, wide) for value, group in groups.items())


def as_text(analysis: Analysis, table_format: str = "github", wide: bool = False) -> str:
    if wide:
        text = _table(columns(analysis), [list(row.values()) for row in table_rows(analysis)], table_format) + "\n" + WIDE_NOTE
        text += "\n" + ESTIMATED_NOTE if analysis.notes.energy_estimated else ""
    else:
        text = narrow_tables(analysis, table_format)
    if analysis.sentences:
        text += "\n\n" + "\n".join(analysis.sentences)
    if analysis.pairs:
        text += "\n" + method_note(analysis.min_effect, analysis.family)
    if analysis.convolution_family:
        text += "\n" + CONVOLUTION_NOTE.format(analysis.convolution_family)
    notes = analysis.notes
    for heading, lines in (("Not comparable (compared within a host, or over hosts only where both cells ran alike on each):",
                            not_comparable_lines(analysis.pairs)), (OUTLIER_NOTE, outlier_lines(notes.outlier_epochs)), (INPUT_BOUND_NOTE, input_bound_lines(notes.input_bound)),
                           (COMPILED_NOTE, [f"- {r.cell_id}: in {r.compiled_while_timed} of {r.repeats} repeat(s)" for r in notes.compiled_while_timed]),
                           (TELEMETRY_NOTE, telemetry_lines(notes.telemetry_warnings)),
                           (KERNEL_NOTE, [kernels.line(r.cell_id, r.kernels) for r in analysis.results if r.kernels]),
                           ("Not measured:", not_measured_lines(notes.not_measured))):
        if lines:
            text += f"\n\n{heading}\n" + "\n".join(lines)
    if notes.synthetic:
        text += "\n\n" + SYNTHETIC_NOTE.format(", ".join(notes.synthetic))
    if notes.unisolated:
        text += "\n\n" + UNISOLATED_NOTE.format(", ".join(notes.unisolated))
    return text


def columns(analysis: Analysis) -> list[str]:
    """COLUMNS, and the telemetry columns some cell has figures for."""
    found = [result.telemetry for result in analysis.results if result.telemetry]
    memory = any(t.peak_rss_bytes is not None for t in found)
    gpu = any(t.energy_per_repeat or t.gpu_memory_bytes is not None for t in found)
    return COLUMNS + MEMORY_COLUMNS * (memory or gpu) + GPU_COLUMNS * gpu  # every row's values are in this order


def table_rows(analysis: Analysis) -> list[dict[str, str]]:
    """The wide table: per cell, its columns as display text."""
    return [dict(zip(columns(analysis), _row(analysis, result))) for result in analysis.results]


def _row(analysis: Analysis, result: CellResult) -> list[str]:
    speedup = analysis.speedup(result.cell_id)
    return [
        result.cell_id,
        result.status,
        result.workload,
        result.kind,
        result.cuda or "-",
        f"{result.cudnn_named} / {result.cudnn_loaded or '-'}" if result.kind == "gpu" else "-",
        result.versions or "-",
        _spread(result.first_epochs),
        str(result.repeats) if result.timed else "-",
        _timing(result, missing="-"),
        str(len(result.outlier_epochs)) if result.timed else "-",
        f"{result.images_per_second:.0f}" if result.images_per_second else "-",
        "baseline" if analysis.is_baseline(result) else speedup.comparison.as_times() if speedup else "-",
        *_telemetry_cells(result),
    ]


def _telemetry_cells(result: CellResult) -> list[str]:
    """peak RSS, GPU memory peak, GPU energy per epoch (* when integrated from power samples), images per joule."""
    figures = result.telemetry
    if figures is None:
        return ["-"] * 4
    energy = figures.energy_joules
    return [
        telemetry.size(figures.peak_rss_bytes) if figures.peak_rss_bytes is not None else "-",
        telemetry.size(figures.gpu_memory_bytes) if figures.gpu_memory_bytes is not None else "-",
        telemetry.joules(energy) + "*" * figures.energy_estimated if energy is not None else "-",
        f"{figures.images_per_joule:.3g}" if figures.images_per_joule is not None else "-",
    ]


def narrow_tables(analysis: Analysis, table_format: str) -> str:
    """Per workload, a table of its measured cells, named without the workload: the answer first, in 100 columns."""
    tables = []
    for workload in dict.fromkeys(result.workload for result in analysis.measured):
        measured = [result for result in analysis.measured if result.workload == workload]
        reference = analysis.baseline_of(measured[0])
        rows = []
        for result in measured:
            speedup = analysis.speedup(result.cell_id)
            rows.append([result.cell_id.removesuffix(f"-{workload}"), result.status, f"{result.timed.median:.2f}",
                         "baseline" if result is reference else speedup.comparison.short_times() if speedup else "-",
                         speedup.comparison.short_words if speedup else "-"])
        against = f"speed-ups against {reference.cell_id}" if reference else "no baseline measured"
        tables.append(f"{workload} ({against}):\n" + _table(NARROW_COLUMNS, rows, table_format))
    return "\n\n".join(tables) + "\n" + NARROW_NOTE if tables else "No cell was measured."


def not_comparable_lines(pairs) -> list[str]:
    """Each pair whose hosts were not balanced, once, with the reason."""
    refused = {(p.baseline.cell_id, p.other.cell_id): p.comparison.reason for p in pairs if p.comparison.verdict == "not_comparable"}
    return [f"- {other} against {baseline}: {reason}" for (baseline, other), reason in refused.items()]


def outlier_lines(outliers: tuple[OutlierEpoch, ...]) -> list[str]:
    return [f"- {o.cell_id}: {outlier_words(o)}" for o in outliers]


def outlier_words(outlier: OutlierEpoch) -> str:
    """"repeat 2, epoch 3: 2.10 s", as the epoch log numbers them."""
    return f"repeat {outlier.repeat}, epoch {outlier.epoch}: {outlier.seconds:.2f} s"


def input_bound_lines(results: tuple[CellResult, ...]) -> list[str]:
    return [f"- {result.cell_id}: {result.input_wait:.0%} of each step waiting for input" for result in results]


def telemetry_lines(warnings: tuple[TelemetryWarning, ...]) -> list[str]:
    """The telemetry's warnings; cells with the same words (clocks held but not locked, alike) are listed under them once."""
    by_words: dict[str, list[str]] = {}
    for warning in warnings:
        by_words.setdefault(warning.words, []).append(warning.subject)
    return [f"- {subjects[0]}: {words}" if len(subjects) == 1 else f"- {len(subjects)} cells: {words[:-1]}: {', '.join(subjects)}"
            for words, subjects in by_words.items()]


def not_measured_lines(groups: tuple[NotMeasured, ...]) -> list[str]:
    """Cells without numbers, with their reason; cells sharing one reason are listed under it once."""
    return [f"- {not_measured_words(group)}" for group in groups]


def not_measured_words(group: NotMeasured) -> str:
    if len(group.cells) == 1:
        return f"{group.cells[0]}: {group.status}: {group.reason}"
    return f"{len(group.cells)} cells {group.status}: {group.reason}: {', '.join(group.cells)}"


# --- JSON and CSV: numbers under stable keys (docs/results.md) ---------------------------------------------------

CELL_KEYS = ["cell_id", "status", "reason", "workload", "model", "kind", "gpu_type", "cuda", "cudnn_named", "cudnn_loaded",
             "framework", "framework_version", "keras_version", "data_kind", "repeats", "train_seconds_median", "train_seconds_low",
             "train_seconds_high", "first_train_seconds_median", "outlier_epochs", "images_per_second", "input_wait_share",
             "peak_rss_bytes", "gpu_memory_bytes", "gpu_energy_joules_per_epoch", "gpu_energy_estimated", "images_per_joule",
             "timing_doubtful", "is_baseline", "baseline", "speedup", "speedup_ci_low", "speedup_ci_high", "speedup_p_value",
             "speedup_p_adjusted", "speedup_verdict", "speedup_repeats_needed", "convolution_seconds_per_step", "convolution_share"]
COMPARISON_KEYS = ["question", "baseline", "other", "ratio", "ci_low", "ci_high", "p_value", "p_adjusted", "family",
                   "repeats_baseline", "repeats_other", "verdict", "repeats_needed", "hosts", "reason", "not_comparable"]
COMPARE_KEYS = ["cell_id", "status_a", "status_b", "repeats_a", "repeats_b", "train_seconds_median_a", "train_seconds_median_b",
                "ratio", "ci_low", "ci_high", "p_value", "p_adjusted", "verdict", "repeats_needed", "gpu_energy_joules_per_epoch_a",
                "gpu_energy_joules_per_epoch_b", "energy_ratio"]


def as_json(analysis: Analysis) -> str:
    notes = analysis.notes
    return json.dumps({
        "schema_version": SCHEMA_VERSION,
        **method_numbers(analysis.min_effect),
        "cells": [{**cell_numbers(analysis, result), "first_train_seconds": list(result.first_epochs),
                   "train_seconds_per_repeat": list(result.timed.per_repeat) if result.timed else [],
                   "kernel_time": kernels.numbers(result.kernels) if result.kernels else None} for result in analysis.results],
        "comparisons": [{"question": p.question, "baseline": p.baseline.cell_id, "other": p.other.cell_id, **comparison_numbers(p.comparison),
                         "not_comparable": list(p.doubtful),
                         "convolution": comparison_numbers(p.convolution) if p.convolution else None} for p in analysis.pairs],
        "sentences": list(analysis.sentences),
        "notes": {
            "outlier_epochs": [{"cell_id": o.cell_id, "repeat": o.repeat, "epoch": o.epoch, "seconds": o.seconds} for o in notes.outlier_epochs],
            "input_bound": [{"cell_id": r.cell_id, "input_wait_share": r.input_wait} for r in notes.input_bound],
            "compiled_while_timed": [{"cell_id": r.cell_id, "repeats": r.compiled_while_timed} for r in notes.compiled_while_timed],
            "telemetry_warnings": [{"subject": w.subject, "message": w.words} for w in notes.telemetry_warnings],
            "not_measured": [{"status": g.status, "reason": g.reason, "cells": list(g.cells)} for g in notes.not_measured],
            "synthetic_data": list(notes.synthetic),
            "unisolated_executors": list(notes.unisolated),
        },
    }, indent=2)


def cell_numbers(analysis: Analysis, result: CellResult) -> dict:
    """A cell as CELL_KEYS: seconds, counts and ratios as numbers; null where the cell has none."""
    timed, figures = result.timed, result.telemetry
    speedup = analysis.speedup(result.cell_id)
    baseline = analysis.baseline_of(result)
    c = speedup.comparison if speedup else None
    values = [result.cell_id, result.status, result.reason or None, result.workload, result.model, result.kind,
              result.gpu_type or None, result.cuda or None, result.cudnn_named or None, result.cudnn_loaded or None, result.framework,
              result.framework_version or None, result.keras_version or None, result.data_kind or None, result.repeats,
              timed.median if timed else None, timed.low if timed else None, timed.high if timed else None,
              median(result.first_epochs) if result.first_epochs else None, len(result.outlier_epochs), result.images_per_second,
              result.input_wait, figures.peak_rss_bytes if figures else None, figures.gpu_memory_bytes if figures else None,
              figures.energy_joules if figures else None, figures.energy_estimated if figures else None,
              figures.images_per_joule if figures else None, result.doubtful, analysis.is_baseline(result),
              baseline.cell_id if baseline and timed and baseline is not result else None,
              c.ratio if c else None, c.ci_low if c else None, c.ci_high if c else None, c.p_value if c else None,
              c.p_adjusted if c else None, c.verdict if c else None, c.repeats_needed if c else None,
              median(result.kernels.convolution_per_repeat) if result.kernels else None,
              result.kernels.convolution_share if result.kernels else None]
    return dict(zip(CELL_KEYS, values))


def comparison_numbers(c: Comparison) -> dict:
    return {"ratio": c.ratio, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value, "p_adjusted": c.p_adjusted,
            "family": c.family, "repeats_baseline": c.repeats[0], "repeats_other": c.repeats[1], "verdict": c.verdict,
            "repeats_needed": c.repeats_needed, "hosts": list(c.hosts), "reason": c.reason or None}


def method_numbers(min_effect: float) -> dict:
    """The verdicts' basis, once per export: the level, the minimum effect, the test, the correction and the rule."""
    return {"min_effect": min_effect, "alpha": ALPHA, "test": "welch_t_log_seconds", "correction": CORRECTION,
            "interval": "percentile_bootstrap_ratio_of_medians", "verdict_rule": VERDICT_RULE}


# --- compare: two runs -------------------------------------------------------------------------------------------

def compare(records_a: list[Record], records_b: list[Record], name_a: str, name_b: str, table_format: str = "github",
            min_effect: float = MIN_EFFECT) -> str:
    return render_comparison(compare_runs(records_a, records_b, name_a, name_b, min_effect), table_format)


def render_comparison(compared: RunComparison, table_format: str = "github") -> str:
    """The same cells in two runs side by side: B's speed against A's, judged as a report judges a speed-up."""
    if table_format == "json":
        return json.dumps({"schema_version": SCHEMA_VERSION, "run_a": compared.name_a, "run_b": compared.name_b,
                           **method_numbers(compared.min_effect),
                           "cells": [_across_numbers(cell) for cell in compared.cells],
                           "only_in_a": list(compared.only_in_a), "only_in_b": list(compared.only_in_b),
                           "telemetry_warnings_a": [{"subject": w.subject, "message": w.words} for w in compared.warnings_a],
                           "telemetry_warnings_b": [{"subject": w.subject, "message": w.words} for w in compared.warnings_b]}, indent=2)
    if table_format == "csv":
        return _csv(COMPARE_KEYS, [_across_numbers(cell) for cell in compared.cells])
    headers = ["cell", f"A: {compared.name_a} train s", f"B: {compared.name_b} train s", "repeats A / B", "B vs A"]
    headers += ["A GPU energy/epoch", "B GPU energy/epoch", "energy B / A"] * compared.with_energy
    rows = [_across_row(cell, compared.with_energy) for cell in compared.cells]
    text = _table(headers, rows, table_format)
    text += "\n\nB vs A above 1.00x: B is faster." + (" energy B / A below 1.00: B used less GPU energy per epoch." * compared.with_energy)
    text += "\n" + method_note(compared.min_effect, len([cell for cell in compared.cells if cell.comparison]))
    for label, cells in (("A", compared.only_in_a), ("B", compared.only_in_b)):
        if cells:
            text += f"\nOnly in {label}: {', '.join(cells)}"
    for label, name, warnings in (("A", compared.name_a, compared.warnings_a), ("B", compared.name_b, compared.warnings_b)):
        if warnings:
            text += f"\n\n{label} ({name}): {TELEMETRY_NOTE[0].lower()}{TELEMETRY_NOTE[1:]}\n" + "\n".join(telemetry_lines(warnings))
    return text


def _across_row(cell: CellAcrossRuns, with_energy: bool) -> list[str]:
    a, b = cell.a, cell.b
    row = [cell.cell_id, _timing(a, missing=a.status), _timing(b, missing=b.status), f"{a.repeats} / {b.repeats}",
           cell.comparison.as_times() if cell.comparison else "-"]
    if with_energy:
        energies = [result.telemetry.energy_joules if result.telemetry else None for result in (a, b)]
        row += [telemetry.joules(joules) if joules is not None else "-" for joules in energies]
        row.append(f"{cell.energy_ratio:.2f}" if cell.energy_ratio is not None else "-")
    return row


def _across_numbers(cell: CellAcrossRuns) -> dict:
    a, b, c = cell.a, cell.b, cell.comparison
    energy = [result.telemetry.energy_joules if result.telemetry else None for result in (a, b)]
    return dict(zip(COMPARE_KEYS, [
        cell.cell_id, a.status, b.status, a.repeats, b.repeats, a.timed.median if a.timed else None, b.timed.median if b.timed else None,
        c.ratio if c else None, c.ci_low if c else None, c.ci_high if c else None, c.p_value if c else None,
        c.p_adjusted if c else None, c.verdict if c else None, c.repeats_needed if c else None, *energy, cell.energy_ratio]))


def _spread(seconds: tuple[float, ...]) -> str:
    """One warm-up epoch as it is; several (one per repeat) as their median and range."""
    if len(seconds) < 2:
        return f"{seconds[0]:.2f}" if seconds else "-"
    return f"{median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f})"


def _timing(result: CellResult, missing: str) -> str:
    """The median repeat and the range of the repeats, or `missing` for a cell without them."""
    return f"{result.timed.median:.2f} ({result.timed.low:.2f}-{result.timed.high:.2f})" if result.timed else missing


def _csv(keys: list[str], rows: list[dict]) -> str:
    """Numbers as Python writes them, booleans as true/false, nothing for null."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for row in rows:
        writer.writerow(["" if row[key] is None else str(row[key]).lower() if isinstance(row[key], bool) else row[key] for key in keys])
    return buffer.getvalue().rstrip("\n")


def _table(headers: list[str], rows: list[list[str]], table_format: str) -> str:
    """A tabulate table (markdown is tabulate's pipe format)."""
    return tabulate(rows, headers=headers, disable_numparse=True, tablefmt={"markdown": "pipe"}.get(table_format, table_format))
