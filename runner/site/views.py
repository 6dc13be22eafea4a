"""What the site's pages show, as plain values built from a run's analysis (runner/analysis.py) and the report's words.

Nothing here writes files or draws, and nothing reads a measurement's insides: every number comes from
the analysis, every note in the report's own words (runner/report.py), so that the site says what the
terminal says. The summaries and per-cell points the index and the cross-run pages need are plain JSON
values, kept in the site's state file so that an unchanged run is not read again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runner import analysis, kernels, records, report
from runner.analysis import Analysis, CellResult, Pair
from runner.errors import UserError
from runner.records import Record
from runner.site.snapshot import Snapshot, duration, parse, run_state, show_time, started, state_label, when
from runner.stats import Comparison


def host_identity(host: dict) -> tuple[str, str]:
    """(key, label) naming the machine a run ran on.

    Manifests record the machine's facts, not its name: a host is told apart by its hostname where a
    manifest has one, else by CPU model, cores, memory and GPUs. The label is short enough for a legend.
    """
    gpus = gpu_names(host)
    name = host.get("hostname")
    if isinstance(name, str) and name:
        return name, f"{name} ({gpus})"
    key = f"{host.get('cpu_cores', '?')}-core {host.get('cpu_model', 'unknown CPU')}, {host.get('memory_gib', '?')} GiB, {gpus}"
    return key, f"{machine(host)} + {gpus}" if _gpus(host) else f"{machine(host)}, no GPU"


def machine(host: dict) -> str:
    """The CPU side of a host, short: "AMD EPYC 7763 (128 cores)"; its hostname where the manifest has one."""
    if isinstance(host.get("hostname"), str) and host["hostname"]:
        return host["hostname"]
    model = re.sub(r"\((R|TM)\)|\bCPU\b|\bProcessor\b|[0-9]+-Core|@.*$", "", str(host.get("cpu_model", "unknown CPU")), flags=re.IGNORECASE)
    return f"{' '.join(model.split()) or 'unknown CPU'} ({host.get('cpu_cores', '?')} cores)"


def _gpus(host: dict) -> list[dict]:
    found = host.get("gpus")
    return [gpu for gpu in found if isinstance(gpu, dict)] if isinstance(found, list) else []


def gpu_names(host: dict) -> str:
    """"2x NVIDIA H100 80GB HBM3, NVIDIA L4", or "no GPU"."""
    names = [str(gpu.get("name", "?")) for gpu in _gpus(host)]
    counted = {name: names.count(name) for name in names}
    return ", ".join(f"{count}x {name}" if count > 1 else name for name, count in counted.items()) or "no GPU"


def drivers(host: dict) -> str:
    return ", ".join(dict.fromkeys(str(gpu.get("driver", "?")) for gpu in _gpus(host)))


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    """A recorded value as one line: "-" for nothing."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key} {_text(item)}" for key, item in value.items())
    return str(value)




@dataclass(frozen=True)
class RunView:
    """Everything a run's pages show."""

    snapshot: Snapshot
    records: list[Record]
    notes: list[str]  # lines of results.jsonl left out
    problem: str  # why the run could not be read at all, or ""
    analysis: Analysis

    @property
    def results(self) -> tuple[CellResult, ...]:
        return self.analysis.results

    @property
    def manifest(self) -> dict:
        return self.snapshot.manifest

    @property
    def host(self) -> dict:
        return _dict(self.manifest.get("host"))


def run_view(snapshot: Snapshot, min_effect: float) -> RunView:
    try:
        loaded, notes = parse(snapshot)
        problem = ""
    except UserError as error:  # a newer schema than this runner reads: the run is listed, with the reason
        loaded, notes, problem = [], [], str(error)
    return RunView(snapshot, loaded, notes, problem, analysis.analyze(loaded, min_effect=min_effect))


def counts(results: tuple[CellResult, ...]) -> dict[str, int]:
    """Cells by status; a measured cell with some failed repeats counts as ok."""
    counted = dict.fromkeys(records.STATUSES, 0)
    for result in results:
        status = "ok" if result.status.startswith("ok") else result.status
        counted[status] = counted.get(status, 0) + 1
    return counted


def summary(view: RunView, folder: str) -> dict:
    """The run's row on the index, as JSON values; folder: where its pages are, relative to the site."""
    manifest, host = view.manifest, view.host
    state, note = run_state(view.snapshot)
    begun, ended = started(view.snapshot), when(manifest.get("ended"))
    host_key, host_label = host_identity(host)
    record_drivers = sorted({facts.driver for facts in map(analysis.loaded, view.records) if facts and facts.driver})
    return {
        "run_id": view.snapshot.run_id,
        "folder": folder,
        "page": folder + "index.html",
        "started": begun.isoformat() if begun else None,
        "started_text": show_time(begun),
        "duration": duration((ended - begun).total_seconds()) if begun and ended and ended >= begun else "",
        "state": state,
        "state_label": state_label(state),
        "state_note": note,
        "host_key": host_key,
        "host_label": host_label,
        "machine": machine(host),
        "gpus": gpu_names(host),
        "driver": drivers(host) or ", ".join(record_drivers) or "-",
        "executor": _text(host.get("executor", "docker" if manifest.get("schema") == 2 else None)),
        "matrix_file": _text(manifest.get("matrix_file")),
        "matrix_name": Path(str(manifest.get("matrix_file", "-"))).name,
        "counts": counts(view.results),
        "records": len(view.records),
        "left_out": len(view.notes),
        "problem": view.problem,
    }


def measured_record(group: list[Record]) -> Record:
    """The record whose measurement a cell's page shows first: its last ok repeat, else its last record."""
    ok = [record for record in group if record.status == "ok" and record.measurement]
    return (ok or group)[-1]


def by_cell(loaded: list[Record]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = {}
    for record in loaded:
        grouped.setdefault(record.cell_id, []).append(record)
    return grouped


def loaded_facts(record: Record, host: dict) -> dict[str, str]:
    """What the cell's process really loaded: framework, Keras, CUDA runtime and cuDNN with their paths, driver."""
    axes, facts = record.axes, analysis.loaded(record)
    if facts is None:
        return {}
    versions = facts.versions
    framework = axes.get("framework", "tensorflow")
    gpu_cell = axes.get("kind") == "gpu"
    shown = {
        "framework": f"{framework} {versions.get(framework, '?')} (asked: {axes.get('framework_version', '?')})",
        "Keras": f"{versions.get('keras', '?')}" + (f" on {versions['keras_backend']}" if versions.get("keras_backend") else ""),
        "Python": _text(versions.get("python")),
        "cuDNN loaded": facts.cudnn_version or ("none loaded" if gpu_cell else "none (CPU cell)"),
        "cuDNN path": _text(facts.cudnn_path),
        "cuDNN named": _text(axes.get("cudnn")),
        "CUDA runtime loaded": facts.cuda_runtime_version or ("none loaded" if gpu_cell else "none (CPU cell)"),
        "CUDA runtime path": _text(facts.cuda_runtime_path),
        "CUDA named": _text(axes.get("cuda")),
        "driver": _text(facts.driver or drivers(host)),
        "driver's CUDA": _text(facts.driver_cuda),
        "GPUs registered": _text(facts.gpus_registered),
        "built with": _text(facts.built_with),
        "devices": _text(facts.devices),
    }
    if facts.convolution_ops:
        shown["convolution operators"] = _text(facts.convolution_ops)
    if profiled := kernels.of_cell([record]):
        shown["kernel time"] = kernels.line("this repeat", profiled).split(": ", 1)[1]
        shown["convolution kernels"] = "; ".join(f"{name} ({seconds * 1000:.2f} ms per step)" for name, seconds in profiled.convolutions.items())
    elif record.measurement and isinstance(record.measurement.kernel_time, str):
        shown["kernel time"] = record.measurement.kernel_time
    others = {name: version for name, version in versions.items() if name not in (framework, "keras", "keras_backend", "python")}
    if others:
        shown["other versions"] = _text(others)
    return shown


def epoch_rows(record: Record, outliers: set[int]) -> list[dict]:
    """A repeat's epochs, the warm-up ones marked, outliers flagged (their number as the epoch log gives it)."""
    return [{"number": e.number, "warmup": e.warmup, "outlier": e.number in outliers, "seconds": _number(e.seconds, 2),
             "train_seconds": _number(e.train_seconds, 2), "images_per_second": _number(e.images_per_second, 0),
             "loss": _number(e.loss, 4), "accuracy": _number(e.accuracy, 4), "val_loss": _number(e.val_loss, 4),
             "val_accuracy": _number(e.val_accuracy, 4)} for e in analysis.epochs(record)]


def _number(value: float | None, digits: int) -> str:
    return f"{value:.{digits}f}" if value is not None else "-"


def outlier_epochs(result: CellResult) -> dict[int, set[int]]:
    """Per record's repeat (as records number it, from 0), the epoch numbers the analysis flagged."""
    flagged: dict[int, set[int]] = {}
    for outlier in result.outlier_epochs:
        flagged.setdefault(outlier.repeat - 1, set()).add(outlier.epoch)
    return flagged


def comparison_row(pair: Pair) -> dict:
    c = pair.comparison
    return {
        "question": pair.question,
        "baseline": pair.baseline.cell_id,
        "other": pair.other.cell_id,
        "ratio": f"{c.ratio:.2f}x",
        "interval": f"{c.ci_low:.2f}-{c.ci_high:.2f}x" if c.ci_low is not None else "-",
        "p_value": f"{c.p_value:.3g}",
        "p_adjusted": f"{c.p_adjusted:.3g}",  # Holm's, over the report's comparisons: the one the verdict reads
        "repeats": f"{c.repeats[0]} / {c.repeats[1]}",
        "verdict": c.verdict,
        "words": c.words,
        "text": c.as_times(),
        # As the report's sentences say "(not comparable: ...)": a verdict on a throttled cell or moving clocks is not one to act on.
        "doubtful": list(pair.doubtful),
    }


def report_parts(view: RunView) -> dict:
    """The report as report.as_text writes it, in parts a page lays out: table, sentences, verdicts, notes, in the report's words."""
    found, notes = view.analysis, view.analysis.notes
    rows = report.table_rows(found)
    return {
        "columns": list(rows[0]) if rows else report.COLUMNS,
        "rows": rows,
        # Cells without numbers are said once per reason (not_measured), not as rows of dashes.
        "measured_rows": [row for row, result in zip(rows, found.results) if result.status.startswith("ok")],
        "estimated_note": report.ESTIMATED_NOTE if notes.energy_estimated else "",
        "sentences": list(found.sentences),
        "method": report.method_note(found.min_effect, found.family) if found.pairs else "",
        "comparisons": [comparison_row(pair) for pair in found.pairs],
        "outlier_note": report.OUTLIER_NOTE,
        "outliers": [f"{o.cell_id}: {report.outlier_words(o)}" for o in notes.outlier_epochs],
        "input_bound_note": report.INPUT_BOUND_NOTE,
        "input_bound": [line[2:] for line in report.input_bound_lines(notes.input_bound)],
        "telemetry_note": report.TELEMETRY_NOTE,
        "telemetry": [line[2:] for line in report.telemetry_lines(notes.telemetry_warnings)],
        # One entry per (status, reason), with the cells it names, so that a page can fold the list.
        "not_measured": [{"status": group.status, "reason": group.reason, "cells": list(group.cells),
                          "line": report.not_measured_words(group)} for group in notes.not_measured],
        "synthetic": report.SYNTHETIC_NOTE.format(", ".join(notes.synthetic)) if notes.synthetic else "",
        "unisolated": report.UNISOLATED_NOTE.format(", ".join(notes.unisolated)) if notes.unisolated else "",
    }


def manifest_facts(view: RunView) -> dict[str, str]:
    manifest, host = view.manifest, view.host
    facts = {
        "run": view.snapshot.run_id,
        "started": show_time(started(view.snapshot)),
        "ended": show_time(when(manifest.get("ended"))) if manifest.get("ended") else "-",
        "runner": f"cudnn-matrix {_text(manifest.get('runner_version'))}, results schema {_text(manifest.get('schema'))}",
        "project commit": _text(host.get("project_commit")) + (" (with local changes)" if host.get("project_dirty") else ""),
        "matrix file": _text(manifest.get("matrix_file")),
        "matrix SHA-256": _text(manifest.get("matrix_sha256")),
        "CPU": f"{_text(host.get('cpu_model'))}, {_text(host.get('cpu_cores'))} cores, {_text(host.get('memory_gib'))} GiB",
        "OS": _text(host.get("os")),
        "GPUs": gpu_names(host),
        "driver": drivers(host) or "-",
        "executor": _text(host.get("executor", "docker" if manifest.get("schema") == 2 else None))
                    + (f" (isolation: {host['isolation']})" if host.get("isolation") else ""),
    }
    for key, label in (("docker_engine", "Docker engine"), ("docker_api", "Docker API"), ("python", "interpreter"),
                       ("python_version", "interpreter version"), ("hostname", "host name")):
        if key in host:
            facts[label] = _text(host[key])
    return facts




def cell_points(view: RunView) -> list[dict]:
    """One point per cell of the run, as JSON values, for the pages that follow a cell across runs."""
    grouped = by_cell(view.records)
    points = []
    for result in view.results:
        record = measured_record(grouped[result.cell_id])
        facts = analysis.loaded(record)
        points.append({
            "cell_id": result.cell_id,
            "model": result.model,
            "kind": result.kind,
            "status": result.status,
            "median": result.timed.median if result.timed else None,
            "low": result.timed.low if result.timed else None,
            "high": result.timed.high if result.timed else None,
            "per_repeat": list(result.timed.per_repeat) if result.timed else [],
            "cudnn": _text(facts.cudnn_version if facts else None),
            "cudnn_path": _text(facts.cudnn_path if facts else None),
            "cuda": _text(facts.cuda_runtime_version if facts else None),
            "driver": _text((facts.driver if facts else None) or drivers(view.host)),
            "versions": result.versions or "-",
            "executor": record.executor,
        })
    return points


GRID_AXES = ("kind", "cuda", "cudnn")  # what a grid's rows and columns are; every other axis (framework, its version, Keras, GPU model) splits grids


def _version_key(version: str) -> tuple:
    """"12.10" after "12.9": versions by their numbers, anything else after them as text."""
    parts = version.split(".")
    return (0, tuple(int(p) for p in parts)) if all(p.isdigit() for p in parts) else (1, version)


def cudnn_grids(view: RunView) -> list[dict]:
    """Per workload and per framework build (framework, version, Keras, GPU model), its GPU cells as a table: CUDA down, cuDNN across.

    Each square gives the cell's timed training seconds (median repeat) and its speed-up verdict against the workload's baseline, the
    same comparison the verdicts table gives; of two or more measured cells, the one with the lowest median is marked fastest.
    Unmeasured cells show their status, so that a hole in the matrix is seen as one.
    """
    axes = {cell_id: group[-1].axes for cell_id, group in by_cell(view.records).items()}
    speedups = {pair.other.cell_id: pair.comparison for pair in view.analysis.pairs if pair.question == "speed-up"}
    grids: dict[tuple, list[CellResult]] = {}
    for result in view.results:
        cell_axes = axes.get(result.cell_id, {})
        if result.kind != "gpu" or not cell_axes.get("cuda") or not cell_axes.get("cudnn"):
            continue
        build = tuple(sorted((name, str(value)) for name, value in cell_axes.items() if name not in GRID_AXES))
        grids.setdefault((result.workload, build), []).append(result)
    made = []
    for (workload, build), cells in grids.items():
        measured = [r for r in cells if r.timed]
        # "Fastest" of one measured cell would say nothing: it takes two to have a fastest.
        fastest = min(measured, key=lambda r: r.timed.median).cell_id if len(measured) > 1 else None
        baseline = view.analysis.baseline_of(cells[0])
        squares = {(axes[r.cell_id]["cuda"], axes[r.cell_id]["cudnn"]): _square(r, speedups.get(r.cell_id), r.cell_id == fastest,
                                                                                 baseline is r) for r in cells}
        cudas = sorted({cuda for cuda, _ in squares}, key=_version_key)
        cudnns = sorted({cudnn for _, cudnn in squares}, key=_version_key)
        made.append({
            "workload": workload,
            "build": _build_label(dict(build)),
            "baseline": {"cell_id": baseline.cell_id, "seconds": f"{baseline.timed.median:.2f}"} if baseline else None,
            "cudnns": cudnns,
            "rows": [{"cuda": cuda, "squares": [squares.get((cuda, cudnn)) for cudnn in cudnns]} for cuda in cudas],
            "fastest": fastest,
        })
    return made


def _build_label(build: dict[str, str]) -> str:
    """"tensorflow 2.21, Keras 3.12, GPU h100": what the cells of one grid share besides their CUDA and cuDNN."""
    words = [f"{build.pop('framework', '?')} {build.pop('framework_version', '?')}"]
    if "keras" in build:
        words.append(f"Keras {build.pop('keras')}")
    if "gpu_type" in build:
        words.append(f"GPU {build.pop('gpu_type')}")
    return ", ".join(words + [f"{name} {value}" for name, value in build.items()])


def _square(result: CellResult, speedup: Comparison | None, fastest: bool, is_baseline: bool) -> dict:
    return {
        "cell_id": result.cell_id,
        "status": result.status,
        "seconds": f"{result.timed.median:.2f}" if result.timed else "",
        "verdict": speedup.verdict if speedup else "",
        "speedup": "baseline" if is_baseline else f"{speedup.ratio:.2f}x {speedup.words}" if speedup else "",
        "interval": f"{speedup.ci_low:.2f}-{speedup.ci_high:.2f}x" if speedup and speedup.ci_low is not None else "",
        "fastest": fastest,
        "doubtful": result.doubtful,
    }
