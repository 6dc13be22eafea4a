"""Stage 6: records -> a report. Pure: it formats what it is given.

One row per cell (repeats pooled): the first epoch (tracing, autotuning,
caches) apart, the median of the timed epochs with their min-max range,
images/s, and the speed-up against a baseline, by default the workload's CPU
cell. Under the table, the seed's kind of sentences ("the GPU is 12.3x the
CPU"; each cuDNN against the previous one), marked when within noise.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from statistics import median

from tabulate import tabulate

from runner.records import Record
from runner.stats import Ratio, Summary, speedup, summarize

FORMATS = ("github", "plain", "markdown", "csv", "json")
COLUMNS = ["cell", "status", "workload", "device", "CUDA", "cuDNN named / loaded", "TF / Keras loaded",
           "first epoch s", "epoch s median (min-max)", "images/s", "speed-up"]
NOISE_NOTE = "~ within noise: the min-max bounds of the speed-up include 1.0x."


@dataclass(frozen=True)
class CellResult:
    """Everything a report says about one cell, its repeats pooled."""

    cell_id: str
    status: str
    reason: str
    workload: str
    model: str  # cells of one model share a baseline, whatever their workload settings
    kind: str
    cuda: str
    cudnn_named: str
    cudnn_loaded: str
    versions: str
    data_kind: str
    first_epochs: tuple[float, ...]
    timed: Summary | None
    images_per_second: float | None
    repeats: int


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
    timed, first, rates = [], [], []
    for record in ok:
        warmup = record.measurement.warmup_epochs
        epochs = record.measurement.epochs
        first += [epoch["seconds"] for epoch in epochs[:warmup]]
        timed += [epoch["seconds"] for epoch in epochs[warmup:]]
        rates += [epoch["images_per_second"] for epoch in epochs[warmup:]]
    return CellResult(
        cell_id=last.cell_id, status=status, reason=(failed or [last])[-1].reason if status != "ok" else "",
        workload=last.workload, model=measured.workload if measured else last.workload, kind=last.kind,
        cuda=last.axes.get("cuda", ""), cudnn_named=last.axes.get("cudnn", ""),
        cudnn_loaded=((measured.gpu if measured else {}).get("cudnn") or {}).get("version") or "",
        versions=_versions_loaded(last.axes["framework"], measured.versions) if measured else "",
        data_kind=measured.data.get("kind", "") if measured else "",
        first_epochs=tuple(first), timed=summarize(timed) if timed else None,
        images_per_second=median(rates) if rates else None, repeats=len(ok),
    )


def _versions_loaded(framework: str, versions: dict) -> str:
    """The framework's and Keras' versions as the workload imported them: "2.21.0 / 3.15.1"."""
    return f"{versions.get(framework, '?')} / {versions.get('keras', '?')}" if versions else ""


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


def table_rows(results: list[CellResult], chosen: dict[str, CellResult]) -> list[dict[str, str]]:
    rows = []
    for result in results:
        reference = chosen.get(result.model)
        ratio = speedup(reference.timed, result.timed) if reference and result.timed else None
        rows.append(dict(zip(COLUMNS, [
            result.cell_id,
            result.status,
            result.workload,
            result.kind,
            result.cuda or "-",
            f"{result.cudnn_named} / {result.cudnn_loaded or '-'}" if result.kind == "gpu" else "-",
            result.versions or "-",
            ", ".join(f"{s:.2f}" for s in result.first_epochs) or "-",
            _timing(result, missing="-"),
            f"{result.images_per_second:.0f}" if result.images_per_second else "-",
            ("baseline" if reference is result else ratio.as_times()) if ratio else "-",
        ])))
    return rows


def sentences(results: list[CellResult], chosen: dict[str, CellResult]) -> list[str]:
    """The seed's kind of answer, per model: the GPU against the CPU, then each cuDNN against the previous."""
    said = []
    for workload in dict.fromkeys(result.model for result in results):
        measured = [r for r in results if r.model == workload and r.timed]
        gpus = [r for r in measured if r.kind == "gpu"]
        reference = chosen.get(workload)
        if reference and gpus:
            fastest = min(gpus, key=lambda r: r.timed.median)
            ratio = speedup(reference.timed, fastest.timed)
            said.append(f"{workload}: the GPU ({fastest.cell_id}) is {ratio.value:.1f}x the {_name(reference)} "
                        f"(bounds {ratio.low:.1f}-{ratio.high:.1f}x{', within noise' if ratio.within_noise else ''}).")
        elif reference:
            said.append(f"{workload}: no GPU cell was measured, so there is nothing to set against the {_name(reference)}.")
        for line in _cudnn_steps(workload, gpus):
            said.append(line)
    return said


def _name(result: CellResult) -> str:
    return "CPU" if result.kind == "cpu" else result.cell_id


def _cudnn_steps(workload: str, gpus: list[CellResult]) -> list[str]:
    """Within one CUDA line and TensorFlow, each cuDNN minor against the one before it."""
    lines = []
    groups: dict[tuple[str, str, str], list[CellResult]] = {}
    for result in gpus:
        groups.setdefault((result.workload, result.cuda, result.versions), []).append(result)
    for (_, cuda, versions), group in groups.items():
        ordered = sorted(group, key=lambda r: tuple(int(p) for p in r.cudnn_named.split(".")))
        for previous, current in zip(ordered, ordered[1:]):
            ratio: Ratio = speedup(previous.timed, current.timed)
            lines.append(f"{workload}: cuDNN {current.cudnn_named} vs {previous.cudnn_named} (CUDA {cuda}, TF/Keras {versions}): "
                         f"{ratio.as_percent()}.")
    return lines


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


def render(records: list[Record], table_format: str = "github", baseline: str | None = None) -> str:
    results = cell_results(records)
    chosen = baselines(results, baseline)
    rows = table_rows(results, chosen)
    if table_format == "json":
        return json.dumps({"cells": rows, "sentences": sentences(results, chosen), "not_measured": not_measured(results)}, indent=2)
    text = _table(COLUMNS, [list(row.values()) for row in rows], table_format)
    if table_format == "csv":
        return text
    said = sentences(results, chosen)
    if said:
        text += "\n\n" + "\n".join(said)
    if any(row["speed-up"].endswith("~") for row in rows) or any("within noise" in line for line in said):
        text += "\n" + NOISE_NOTE
    problems = not_measured(results)
    if problems:
        text += "\n\nNot measured:\n" + "\n".join(problems)
    synthetic = sorted({r.workload for r in results if r.data_kind == "synthetic"})
    if synthetic:
        text += f"\n\nSynthetic data (no real data was present) for: {', '.join(synthetic)}. Timings are real; accuracy is meaningless."
    return text


def compare(records_a: list[Record], records_b: list[Record], name_a: str, name_b: str, table_format: str = "github") -> str:
    """The same cells in two runs side by side: B's speed against A's, with bounds and noise marks."""
    results_a = {result.cell_id: result for result in cell_results(records_a)}
    results_b = {result.cell_id: result for result in cell_results(records_b)}
    headers = ["cell", f"A: {name_a} epoch s", f"B: {name_b} epoch s", "B vs A"]
    rows = []
    for cell_id in (cell for cell in results_a if cell in results_b):
        a, b = results_a[cell_id], results_b[cell_id]
        ratio = speedup(a.timed, b.timed) if a.timed and b.timed else None
        rows.append([cell_id, _timing(a, missing=a.status), _timing(b, missing=b.status), ratio.as_times() if ratio else "-"])
    if table_format == "json":
        return json.dumps([dict(zip(headers, row)) for row in rows], indent=2)
    text = _table(headers, rows, table_format)
    if table_format == "csv":
        return text
    text += "\n\nB vs A above 1.00x: B is faster. " + NOISE_NOTE
    for label, only in (("A", [c for c in results_a if c not in results_b]), ("B", [c for c in results_b if c not in results_a])):
        if only:
            text += f"\nOnly in {label}: {', '.join(only)}"
    return text


def _timing(result: CellResult, missing: str) -> str:
    """The timed epochs' median and range, or `missing` for a cell without them."""
    return f"{result.timed.median:.2f} ({result.timed.low:.2f}-{result.timed.high:.2f})" if result.timed else missing


def _table(headers: list[str], rows: list[list[str]], table_format: str) -> str:
    """CSV, or a tabulate table (markdown is tabulate's pipe format)."""
    if table_format == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([headers, *rows])
        return buffer.getvalue().rstrip("\n")
    return tabulate(rows, headers=headers, disable_numparse=True, tablefmt={"markdown": "pipe"}.get(table_format, table_format))
