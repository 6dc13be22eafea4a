"""Stage 6: records -> a report. Pure: it formats what it is given.

One row per cell: the first epoch (tracing, autotuning, caches) apart, the
median over repeats of each repeat's median timed epoch, images/s, outlier
epochs, and the speed-up against a baseline, by default the workload's CPU
cell, with its interval and verdict (runner/stats.py says how they are
decided). Under the table, the seed's kind of sentences ("the GPU is 12.3x
the CPU"; each cuDNN against the previous one), with the same interval and
verdict. Where the records carry telemetry (runner/telemetry.py), peak memory,
GPU energy per epoch and images per joule join the table, and throttling or
moving clocks during timed epochs are said under it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from statistics import median

from tabulate import tabulate

from runner import telemetry
from runner.records import Record
from runner.stats import ALPHA, MIN_EFFECT, OUTLIER_MADS, Comparison, Summary, compare_repeats, summarize
from runner.telemetry import CellTelemetry
from workload.contract import FRAMEWORKS, Epoch

FORMATS = ("github", "plain", "markdown", "csv", "json")
# The default table, per workload, of its measured cells: what a terminal of 100 columns shows whole (--wide: COLUMNS).
NARROW_COLUMNS = ["cell", "status", "epoch s", "speed-up", "verdict"]
NARROW_NOTE = ("epoch s: the median repeat's timed epochs (training and validation); the speed-up and its verdict\n"
               "are from those repeats. Cells not measured are listed below; --wide shows every column.")
WIDE_NOTE = ("The speed-up and its verdict are from epoch s (training and validation, the median repeat); images/s counts "
             "training alone, so the two can rank cells differently.")
COLUMNS = ["cell", "status", "workload", "device", "CUDA", "cuDNN named / loaded", "framework, Keras loaded",
           "first epoch s", "repeats", "epoch s median (repeat range)", "outlier epochs", "images/s", "speed-up"]
# Added only when some cell's records carry the figures, so that runs from before telemetry read as they did.
MEMORY_COLUMNS = ["peak RSS"]
GPU_COLUMNS = ["GPU memory peak", "GPU energy/epoch", "images/J"]
ESTIMATED_NOTE = "* GPU energy integrated from power samples: the GPU has no energy counter."
TELEMETRY_NOTE = f"Telemetry, during timed epochs ({telemetry.LOCK_NOTE[:-1]}):"


def method_note(min_effect: float) -> str:
    """How every ratio in a report was judged, said once under it."""
    return (f"Speed-ups: ratios of the median repeat (one fresh process; its number is the median of its timed epochs), "
            f"with a {(1 - ALPHA) * 100:.0f}% bootstrap interval.\n"
            f"Faster or slower only when a Mann-Whitney U test gives p < {ALPHA} and the ratio is at least {min_effect * 100:g}% "
            "away from 1.00x; otherwise no difference is shown.")


@dataclass(frozen=True)
class CellResult:
    """Everything a report says about one cell, its repeats together."""

    cell_id: str
    status: str
    reason: str
    workload: str
    model: str  # cells of one model share a baseline, whatever their workload settings
    kind: str
    gpu_type: str  # "" unless the matrix names GPU models (gpu.gpu_type)
    cuda: str
    cudnn_named: str
    cudnn_loaded: str
    versions: str
    data_kind: str
    first_epochs: tuple[float, ...]
    timed: Summary | None
    outlier_epochs: tuple[str, ...]  # "repeat 2, epoch 3: 2.10 s", as the epoch log numbers them
    images_per_second: float | None
    repeats: int
    input_wait: float | None = None  # median share of a timed step spent waiting for the next batch, where recorded
    telemetry: CellTelemetry | None = None  # what the machine did (runner/telemetry.py); None for records without it


def cell_results(records: list[Record]) -> list[CellResult]:
    by_cell: dict[str, list[Record]] = {}
    for record in records:
        by_cell.setdefault(record.cell_id, []).append(record)
    return [_pool(group) for group in by_cell.values()]


def _pool(group: list[Record]) -> CellResult:
    ok = [record for record in group if record.status == "ok"]
    failed = [record for record in group if record.status == "failed"]
    last = group[-1]
    # Measured cells are ok, with any failed repeat counted; skipped/excluded records left by a run
    # that --resume completed later do not count against them.
    status = (f"ok ({len(failed)} of {len(ok) + len(failed)} failed)" if failed else "ok") if ok else last.status
    measured = ok[-1].measurement if ok else last.measurement
    # Each ok record is one repeat, a --resume's included: one fresh process, however it is numbered.
    repeats = [record for record in ok if _timed(record)]
    timed = summarize([[epoch.seconds for epoch in _timed(record)] for record in repeats]) if repeats else None
    return CellResult(
        cell_id=last.cell_id, status=status, reason=(failed or [last])[-1].reason if status != "ok" else "",
        workload=last.workload, model=measured.workload if measured else last.workload, kind=last.kind,
        gpu_type=last.axes.get("gpu_type", ""), cuda=last.axes.get("cuda", ""), cudnn_named=last.axes.get("cudnn", ""),
        cudnn_loaded=((measured.gpu if measured else {}).get("cudnn") or {}).get("version") or "",
        versions=_versions_loaded(last.axes["framework"], measured.versions) if measured else "",
        data_kind=measured.data.get("kind", "") if measured else "",
        first_epochs=tuple(epoch.seconds for record in ok for epoch in record.measurement.epochs[:record.measurement.warmup_epochs]),
        timed=timed, outlier_epochs=tuple(_outlier_label(repeats[r], e) for r, e in timed.outliers) if timed else (),
        images_per_second=median([epoch.images_per_second for record in ok for epoch in _timed(record)]) if repeats else None,
        repeats=len(repeats),
        input_wait=_median_of([epoch.input_wait_share for record in repeats for epoch in _timed(record)]),
        telemetry=telemetry.summarize(last.cell_id, last.kind, ok),
    )


def _median_of(values: list) -> float | None:
    known = [value for value in values if value is not None]
    return median(known) if known else None


def _timed(record: Record) -> list[Epoch]:
    return record.measurement.epochs[record.measurement.warmup_epochs:]


def _outlier_label(record: Record, timed_index: int) -> str:
    number = record.measurement.warmup_epochs + timed_index + 1
    return f"repeat {record.repeat + 1}, epoch {number}: {record.measurement.epochs[number - 1].seconds:.2f} s"


def _versions_loaded(framework: str, versions: dict) -> str:
    """The backend's and Keras' versions as the workload imported them: "tf 2.21.0, Keras 3.15.1", "torch 2.11.0, Keras 3.15.1"."""
    return f"{(FRAMEWORKS[framework].short if framework in FRAMEWORKS else framework)} {versions.get(framework, '?')}, Keras {versions.get('keras', '?')}" if versions else ""


def baselines(results: list[CellResult], baseline: str | None) -> dict[str, CellResult]:
    """Per model, the cell speed-ups are measured against: the named one, else the first measured CPU cell."""
    chosen: dict[str, CellResult] = {}
    for result in results:
        if result.timed and result.kind == "cpu" and result.model not in chosen:
            chosen[result.model] = result
    for result in results:
        if result.timed and result.cell_id == baseline:
            chosen[result.model] = result
    return chosen


@dataclass(frozen=True)
class Pair:
    """Two measured cells set against each other, and what the statistics say of `other` against `baseline`."""

    question: str  # "speed-up" (a cell against its baseline), "GPU vs CPU" or "cuDNN step"
    baseline: CellResult
    other: CellResult
    comparison: Comparison

    def to_dict(self) -> dict:
        return _comparison_json(self.question, self.baseline.cell_id, self.other.cell_id, self.comparison)


def _comparison_json(question: str, baseline: str, other: str, comparison: Comparison) -> dict:
    return {"question": question, "baseline": baseline, "other": other, **comparison.to_dict()}


def pairs(results: list[CellResult], chosen: dict[str, CellResult], min_effect: float = MIN_EFFECT) -> list[Pair]:
    """Every comparison a report makes: each cell against its baseline, and the pairs the sentences speak of."""
    def pair(question: str, baseline: CellResult, other: CellResult) -> Pair:
        return Pair(question, baseline, other, compare_repeats(baseline.timed.per_repeat, other.timed.per_repeat, min_effect))

    found = [pair("speed-up", chosen[r.model], r) for r in results if r.timed and r.model in chosen and chosen[r.model] is not r]
    for model in dict.fromkeys(result.model for result in results):
        gpus = [r for r in results if r.model == model and r.timed and r.kind == "gpu"]
        reference = chosen.get(model)
        fastest = min(gpus, key=lambda r: r.timed.median) if gpus else None
        if reference and fastest and fastest is not reference:
            found.append(pair("GPU vs CPU", reference, fastest))
        found += [pair("cuDNN step", previous, current) for previous, current in _cudnn_steps(gpus)]
    return found


def _cudnn_steps(gpus: list[CellResult]) -> list[tuple[CellResult, CellResult]]:
    """Within one workload, GPU model, CUDA line and framework, each cuDNN minor with the one before it."""
    groups: dict[tuple[str, str, str, str], list[CellResult]] = {}
    for result in gpus:
        groups.setdefault((result.workload, result.gpu_type, result.cuda, result.versions), []).append(result)
    steps = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: tuple(int(p) for p in r.cudnn_named.split(".")))
        steps += list(zip(ordered, ordered[1:]))
    return steps


def columns(results: list[CellResult]) -> list[str]:
    """COLUMNS, and the telemetry columns some cell has figures for."""
    found = [result.telemetry for result in results if result.telemetry]
    memory = any(t.peak_rss_bytes is not None for t in found)
    gpu = any(t.energy_per_repeat or t.gpu_memory_bytes is not None for t in found)
    return COLUMNS + MEMORY_COLUMNS * (memory or gpu) + GPU_COLUMNS * gpu  # every row's values are in this order


def table_rows(results: list[CellResult], chosen: dict[str, CellResult], found: list[Pair]) -> list[dict[str, str]]:
    speedups = {pair.other.cell_id: pair.comparison for pair in found if pair.question == "speed-up"}
    shown = columns(results)
    rows = []
    for result in results:
        speedup = speedups.get(result.cell_id)
        rows.append(dict(zip(shown, [
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
            "baseline" if chosen.get(result.model) is result else speedup.as_times() if speedup else "-",
            *_telemetry_cells(result.telemetry),
        ])))
    return rows


def _telemetry_cells(figures: CellTelemetry | None) -> list[str]:
    """peak RSS, GPU memory peak, GPU energy per epoch (* when integrated from power samples), images per joule."""
    if figures is None:
        return ["-"] * 4
    energy = figures.energy_joules
    return [
        telemetry.size(figures.peak_rss_bytes) if figures.peak_rss_bytes is not None else "-",
        telemetry.size(figures.gpu_memory_bytes) if figures.gpu_memory_bytes is not None else "-",
        telemetry.joules(energy) + "*" * figures.energy_estimated if energy is not None else "-",
        f"{figures.images_per_joule:.3g}" if figures.images_per_joule is not None else "-",
    ]


def sentences(results: list[CellResult], chosen: dict[str, CellResult], found: list[Pair]) -> list[str]:
    """The seed's kind of answer, per model: the GPU against the CPU, then each cuDNN against the previous."""
    said = []
    for model in dict.fromkeys(result.model for result in results):
        reference = chosen.get(model)
        mine = [pair for pair in found if pair.baseline.model == model]
        if reference and not any(r.model == model and r.timed and r.kind == "gpu" for r in results):
            said.append(f"{model}: no GPU cell was measured, so there is nothing to set against the {_name(reference)}.")
        said += [_gpu_sentence(model, pair) for pair in mine if pair.question == "GPU vs CPU"]
        said += [_cudnn_sentence(model, pair) for pair in mine if pair.question == "cuDNN step"]
    return said


def _gpu_sentence(model: str, pair: Pair) -> str:
    c = pair.comparison
    interval = f" ({c.ci_low:.1f}-{c.ci_high:.1f}x)" if c.ci_low is not None else ""
    return f"{model}: the GPU ({pair.other.cell_id}) is {c.ratio:.1f}x the {_name(pair.baseline)}{interval}: {c.words}{_doubt(pair)}."


def _cudnn_sentence(model: str, pair: Pair) -> str:
    previous, current = pair.baseline, pair.other
    return (f"{model}: cuDNN {current.cudnn_named} vs {previous.cudnn_named} (CUDA {current.cuda}, {current.versions}): "
            f"{pair.comparison.as_percent()}{_doubt(pair)}.")


def _doubt(pair: Pair) -> str:
    """What a sentence must add when one of its cells ran throttled or on moving clocks."""
    doubtful = [r.cell_id for r in (pair.baseline, pair.other) if r.telemetry and r.telemetry.doubtful]
    return f" (not comparable: {' and '.join(doubtful)} ran throttled or on moving clocks, see below)" if doubtful else ""


def _name(result: CellResult) -> str:
    return "CPU" if result.kind == "cpu" else result.cell_id


def not_measured(results: list[CellResult]) -> list[str]:
    """Cells without numbers, with their reason; cells sharing one reason are listed under it once."""
    by_reason: dict[tuple[str, str], list[str]] = {}
    for result in results:
        if result.status != "ok":
            by_reason.setdefault((result.status, result.reason), []).append(result.cell_id)
    lines = []
    for (status, reason), cells in by_reason.items():
        if len(cells) == 1:
            lines.append(f"- {cells[0]}: {status}: {reason}")
        else:
            lines.append(f"- {len(cells)} cells {status}: {reason}: {', '.join(cells)}")
    return lines


INPUT_BOUND = 0.10  # a cell waiting for input more than this share of each step times its pipeline, not its device
INPUT_BOUND_NOTE = (f"Input-bound cells: more than {INPUT_BOUND:.0%} of each timed training step waits for the next batch, "
                    "so these cells time the input pipeline, not the model (compare devices on `input: cached`, or raise parallel_calls):")


def input_bound_lines(results: list[CellResult]) -> list[str]:
    return [f"- {result.cell_id}: {result.input_wait:.0%} of each step waiting for input"
            for result in results if result.input_wait is not None and result.input_wait > INPUT_BOUND]


def telemetry_lines(results: list[CellResult]) -> list[str]:
    """The telemetry's warnings; cells with the same words (clocks held but not locked, alike) are listed under them once."""
    by_words: dict[str, list[str]] = {}
    for result in results:
        for subject, words in result.telemetry.warnings if result.telemetry else ():
            by_words.setdefault(words, []).append(subject)
    return [f"- {subjects[0]}: {words}" if len(subjects) == 1 else f"- {len(subjects)} cells: {words[:-1]}: {', '.join(subjects)}"
            for words, subjects in by_words.items()]


def outlier_lines(results: list[CellResult]) -> list[str]:
    return [f"- {result.cell_id}: {label}" for result in results for label in result.outlier_epochs]


OUTLIER_NOTE = (f"Outlier epochs, more than {OUTLIER_MADS:g} MADs from their cell's median epoch (kept: one moves only its own "
                "repeat's number, and the test ranks repeats):")


def narrow_tables(results: list[CellResult], chosen: dict[str, CellResult], found: list[Pair], table_format: str) -> str:
    """Per workload, a table of its measured cells, named without the workload: the answer first, in 100 columns."""
    speedups = {pair.other.cell_id: pair.comparison for pair in found if pair.question == "speed-up"}
    tables = []
    for workload in dict.fromkeys(result.workload for result in results if result.timed):
        measured = [result for result in results if result.workload == workload and result.timed]
        reference = chosen.get(measured[0].model)
        rows = [[result.cell_id.removesuffix(f"-{workload}"), result.status, f"{result.timed.median:.2f}",
                 "baseline" if result is reference else speedups[result.cell_id].short_times() if result.cell_id in speedups else "-",
                 speedups[result.cell_id].short_words if result.cell_id in speedups else "-"] for result in measured]
        against = f"speed-ups against {reference.cell_id}" if reference else "no baseline measured"
        tables.append(f"{workload} ({against}):\n" + _table(NARROW_COLUMNS, rows, table_format))
    return "\n\n".join(tables) + "\n" + NARROW_NOTE if tables else "No cell was measured."


def render(records: list[Record], table_format: str = "github", baseline: str | None = None, min_effect: float = MIN_EFFECT,
           wide: bool = False) -> str:
    """The report; its table, in text formats, is the narrow one per workload unless `wide` (CSV and JSON have every column)."""
    results = cell_results(records)
    chosen = baselines(results, baseline)
    found = pairs(results, chosen, min_effect)
    rows = table_rows(results, chosen, found)
    said = sentences(results, chosen, found)
    warned = telemetry_lines(results)
    if table_format == "json":
        return json.dumps({"cells": rows, "comparisons": [pair.to_dict() for pair in found], "sentences": said,
                           "outlier_epochs": outlier_lines(results), "input_bound": input_bound_lines(results),
                           "telemetry_warnings": warned, "not_measured": not_measured(results)}, indent=2)
    if table_format == "csv":
        return _table(columns(results), [list(row.values()) for row in rows], table_format)
    if wide:
        text = _table(columns(results), [list(row.values()) for row in rows], table_format) + "\n" + WIDE_NOTE
    else:
        text = narrow_tables(results, chosen, found, table_format)
    if wide and any(result.telemetry and result.telemetry.energy_estimated for result in results):
        text += "\n" + ESTIMATED_NOTE
    if said:
        text += "\n\n" + "\n".join(said)
    if found:
        text += "\n" + method_note(min_effect)
    for heading, lines in ((OUTLIER_NOTE, outlier_lines(results)), (INPUT_BOUND_NOTE, input_bound_lines(results)),
                           (TELEMETRY_NOTE, warned), ("Not measured:", not_measured(results))):
        if lines:
            text += f"\n\n{heading}\n" + "\n".join(lines)
    synthetic = sorted({r.workload for r in results if r.data_kind == "synthetic"})
    if synthetic:
        text += f"\n\nSynthetic data (no real data was present) for: {', '.join(synthetic)}. Timings are real; accuracy is meaningless."
    unisolated = sorted({record.executor for record in records if record.environment.get("isolation") == "none"})
    if unisolated:
        text += (f"\n\nCells run without isolation (executor {', '.join(unisolated)}): "
                 "other processes on the host may have shared their CPU, memory and GPU.")
    return text


def compare(records_a: list[Record], records_b: list[Record], name_a: str, name_b: str, table_format: str = "github",
            min_effect: float = MIN_EFFECT) -> str:
    """The same cells in two runs side by side: B's speed against A's, judged as render() judges a speed-up."""
    results_a = {result.cell_id: result for result in cell_results(records_a)}
    results_b = {result.cell_id: result for result in cell_results(records_b)}
    headers = ["cell", f"A: {name_a} epoch s", f"B: {name_b} epoch s", "repeats A / B", "B vs A"]
    common = [cell for cell in results_a if cell in results_b]
    energies = {cell: (_energy(results_a[cell]), _energy(results_b[cell])) for cell in common}
    with_energy = any(a is not None and b is not None for a, b in energies.values())
    if with_energy:
        headers += ["A GPU energy/epoch", "B GPU energy/epoch", "energy B / A"]
    rows, compared = [], []
    judged = b_against_a(results_a, results_b, min_effect)
    for cell_id in common:
        a, b = results_a[cell_id], results_b[cell_id]
        comparison = judged.get(cell_id)
        rows.append([cell_id, _timing(a, missing=a.status), _timing(b, missing=b.status), f"{a.repeats} / {b.repeats}",
                     comparison.as_times() if comparison else "-"])
        if with_energy:
            joules_a, joules_b = energies[cell_id]
            both = joules_a is not None and joules_b is not None
            rows[-1] += [telemetry.joules(joules_a) if joules_a is not None else "-", telemetry.joules(joules_b) if joules_b is not None else "-",
                         f"{joules_b / joules_a:.2f}" if both else "-"]
        if comparison:
            compared.append(_comparison_json("B vs A", f"{name_a}/{cell_id}", f"{name_b}/{cell_id}", comparison))
    only = {label: [c for c in mine if c not in theirs] for label, mine, theirs in (("A", results_a, results_b), ("B", results_b, results_a))}
    warned = {label: telemetry_lines([results[cell] for cell in common])
              for label, results in (("A", results_a), ("B", results_b))}
    if table_format == "json":
        return json.dumps({"cells": [dict(zip(headers, row)) for row in rows], "comparisons": compared,
                           "only_in": only, "telemetry_warnings": warned}, indent=2)
    text = _table(headers, rows, table_format)
    if table_format == "csv":
        return text
    text += "\n\nB vs A above 1.00x: B is faster." + (" energy B / A below 1.00: B used less GPU energy per epoch." if with_energy else "")
    text += "\n" + method_note(min_effect)
    for label, cells in only.items():
        if cells:
            text += f"\nOnly in {label}: {', '.join(cells)}"
    for label, name in (("A", name_a), ("B", name_b)):
        if warned[label]:
            text += f"\n\n{label} ({name}): {TELEMETRY_NOTE[0].lower()}{TELEMETRY_NOTE[1:]}\n" + "\n".join(warned[label])
    return text


def b_against_a(results_a: dict[str, CellResult], results_b: dict[str, CellResult], min_effect: float) -> dict[str, Comparison]:
    """Per cell measured in both runs, B's speed against A's."""
    return {cell_id: compare_repeats(a.timed.per_repeat, results_b[cell_id].timed.per_repeat, min_effect)
            for cell_id, a in results_a.items() if cell_id in results_b and a.timed and results_b[cell_id].timed}


def slower_in_b(records_a: list[Record], records_b: list[Record], min_effect: float = MIN_EFFECT) -> list[str]:
    """The cells whose verdict in B against A is slower: what `compare --fail-on slower` fails on."""
    judged = b_against_a({r.cell_id: r for r in cell_results(records_a)}, {r.cell_id: r for r in cell_results(records_b)}, min_effect)
    return [cell_id for cell_id, comparison in judged.items() if comparison.verdict == "slower"]


def _energy(result: CellResult) -> float | None:
    return result.telemetry.energy_joules if result.telemetry else None


def _spread(seconds: tuple[float, ...]) -> str:
    """One warm-up epoch as it is; several (one per repeat) as their median and range."""
    if len(seconds) < 2:
        return f"{seconds[0]:.2f}" if seconds else "-"
    return f"{median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f})"


def _timing(result: CellResult, missing: str) -> str:
    """The median repeat and the range of the repeats, or `missing` for a cell without them."""
    return f"{result.timed.median:.2f} ({result.timed.low:.2f}-{result.timed.high:.2f})" if result.timed else missing


def _table(headers: list[str], rows: list[list[str]], table_format: str) -> str:
    """CSV, or a tabulate table (markdown is tabulate's pipe format)."""
    if table_format == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([headers, *rows])
        return buffer.getvalue().rstrip("\n")
    return tabulate(rows, headers=headers, disable_numparse=True, tablefmt={"markdown": "pipe"}.get(table_format, table_format))
