"""What the site's pages show, as plain values built from a run's files with report.py's own functions.

Nothing here writes files or draws: a run folder is read once into a Snapshot (its files' bytes, and
whether a live runner holds it), its records are parsed from those very bytes (so that what is shown
and what the content hash says are the same moment of a run still being written), and everything the
templates need is computed from them. The summaries and per-cell points the index and the cross-run
pages need are plain JSON values, kept in the site's state file so that an unchanged run is not read
again.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path

from runner import records
from runner.errors import UserError
from runner.records import DamagedRecord, Record
from runner.report import (COLUMNS, ESTIMATED_NOTE, INPUT_BOUND_NOTE, OUTLIER_NOTE, TELEMETRY_NOTE, CellResult, Pair, baselines,
                           cell_results, input_bound_lines, method_note, not_measured, outlier_lines, pairs, sentences, table_rows,
                           telemetry_lines)
from runner.stats import Comparison

STATUSES = records.STATUSES
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def file_name(text: str) -> str:
    """A name for a file or folder made from a run or cell id: the id itself when it is a plain name, else a slug and a hash.

    Ids come from results files, which anyone may have edited: one with a slash, "..", a space or markup
    must neither leave the site folder nor collide with another.
    """
    if _SAFE_NAME.fullmatch(text):
        return text
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:60] or "id"
    return f"{slug}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


@dataclass(frozen=True)
class Snapshot:
    """A run folder as read at one moment."""

    run_id: str
    folder: Path
    manifest_bytes: bytes
    results_bytes: bytes
    live: bool  # a runner holds the run's lock now (records.in_progress)

    @property
    def key(self) -> str:
        """The content hash of manifest and results: what decides whether the run's pages are rendered again."""
        digest = hashlib.sha256()
        for part in (self.manifest_bytes, self.results_bytes):
            digest.update(len(part).to_bytes(8, "big") + part)
        return digest.hexdigest()

    @cached_property
    def parsed_manifest(self):
        try:
            return json.loads(self.manifest_bytes)
        except ValueError:
            return {}

    @property
    def manifest_problem(self) -> str | None:
        return records.manifest_problem(self.parsed_manifest)

    @property
    def manifest(self) -> dict:
        """The manifest; {} when it is missing or is not one (parse notes why)."""
        return {} if self.manifest_problem else self.parsed_manifest


def read(folder: Path) -> Snapshot:
    live = records.in_progress(folder)
    try:
        manifest = (folder / records.MANIFEST_FILE).read_bytes()
    except OSError:
        manifest = b""
    return Snapshot(folder.name, folder, manifest, (folder / records.RESULTS_FILE).read_bytes(), live)


def run_folders(results_dir: Path) -> list[Path]:
    """Every run under results_dir, oldest first (run ids are UTC start times, -2, -3... for the same second)."""
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such folder: run `python -m runner run` first, or name the results with --results DIR")
    folders = [path for path in results_dir.iterdir() if path.is_dir() and (path / records.RESULTS_FILE).is_file()]
    return sorted(folders, key=start_order)


def start_order(folder: Path) -> tuple[str, int, str]:
    match = re.fullmatch(r"([0-9]{8}-[0-9]{6})(?:-([0-9]+))?", folder.name)
    return (match.group(1), int(match.group(2) or 1), "") if match else ("", 0, folder.name)


def parse(snapshot: Snapshot) -> tuple[list[Record], list[str]]:
    """The run's records from the snapshot's bytes, and a note for each line left out.

    As records.load: a damaged line costs that line only. The last line of a run still being
    written may be a record half on disk; that is said as what it is, not as damage.
    """
    path = snapshot.folder / records.RESULTS_FILE
    written_by = str(snapshot.manifest.get("runner_version", "of that time"))
    lines = list(io.TextIOWrapper(io.BytesIO(snapshot.results_bytes), encoding="utf-8", errors="replace"))
    loaded, notes = [], []
    if snapshot.manifest_problem:
        notes.append(f"{records.MANIFEST_FILE}: not a manifest ({snapshot.manifest_problem}); the run's facts are left out")
    for number, line, parsed in records.parse_lines(lines, path, written_by):
        if not isinstance(parsed, DamagedRecord):
            loaded.append(parsed)
        elif number == len(lines) and not line.endswith("\n") and is_running(snapshot):
            notes.append(f"line {number}: a record not complete yet (still being written, or cut short); publish again later")
        else:
            notes.append(f"line {number}: {parsed}; the line is left out")
    return loaded, notes


def is_running(snapshot: Snapshot) -> bool:
    """A runner holds the run now. A manifest that says `running` without one is a run whose runner stopped without a word."""
    return snapshot.live


def run_state(snapshot: Snapshot) -> tuple[str, str]:
    """(state, what to say about it): finished, interrupted, in-progress, stopped, or what the manifest says."""
    state = snapshot.manifest.get("state")
    if snapshot.live:
        return "in-progress", "A runner is writing this run now: these pages show the records written so far. Publish again to update them."
    if state == "running":
        return "stopped", ("The manifest says the run is going, but no runner holds it: its runner was stopped without a word "
                           "(kill -9, a power cut), or it runs on another machine sharing this folder. "
                           "`python -m runner run --resume RUN` measures the cells it lacks.")
    if state == "interrupted":
        return "interrupted", "The run was interrupted: `python -m runner run --resume RUN` measures the cells it lacks."
    if state == "finished":
        return "finished", ""
    return "unknown", "The manifest does not say how the run ended."


def state_label(state: str) -> str:
    return {"in-progress": "in progress"}.get(state, state)


def when(text) -> datetime | None:
    """A manifest or record time (ISO 8601) as a naive UTC datetime, or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment.astimezone(timezone.utc) if moment.tzinfo else moment).replace(tzinfo=None)


def started(snapshot: Snapshot) -> datetime | None:
    """The run's start: its manifest's, else the time its id names."""
    moment = when(snapshot.manifest.get("started"))
    if moment is None:
        try:
            moment = datetime.strptime(snapshot.run_id[:15], "%Y%m%d-%H%M%S")
        except ValueError:
            return None
    return moment


def show_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
    results: list[CellResult]
    chosen: dict[str, CellResult]
    found: list[Pair]
    min_effect: float

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
    results = cell_results(loaded)
    chosen = baselines(results, None)
    return RunView(snapshot, loaded, notes, problem, results, chosen, pairs(results, chosen, min_effect), min_effect)


def counts(results: list[CellResult]) -> dict[str, int]:
    """Cells by status; a measured cell with some failed repeats counts as ok."""
    counted = dict.fromkeys(STATUSES, 0)
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
    record_drivers = sorted({str(r.measurement.gpu.get("driver")) for r in view.records if r.measurement and r.measurement.gpu.get("driver")})
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
    axes, measured = record.axes, record.measurement
    if measured is None:
        return {}
    gpu = _dict(measured.gpu)
    versions = _dict(measured.versions)
    framework = axes.get("framework", "tensorflow")
    cudnn, cuda = _dict(gpu.get("cudnn")), _dict(gpu.get("cuda_runtime"))
    gpu_cell = axes.get("kind") == "gpu"
    facts = {
        "framework": f"{framework} {versions.get(framework, '?')} (asked: {axes.get('framework_version', '?')})",
        "Keras": f"{versions.get('keras', '?')}" + (f" on {versions['keras_backend']}" if versions.get("keras_backend") else ""),
        "Python": _text(versions.get("python")),
        "cuDNN loaded": _text(cudnn.get("version")) if cudnn.get("version") else ("none loaded" if gpu_cell else "none (CPU cell)"),
        "cuDNN path": _text(cudnn.get("path")),
        "cuDNN named": _text(axes.get("cudnn")),
        "CUDA runtime loaded": _text(cuda.get("version")) if cuda.get("version") else ("none loaded" if gpu_cell else "none (CPU cell)"),
        "CUDA runtime path": _text(cuda.get("path")),
        "CUDA named": _text(axes.get("cuda")),
        "driver": _text(gpu.get("driver") or drivers(host)),
        "driver's CUDA": _text(gpu.get("driver_cuda")),
        "GPUs registered": _text(gpu.get("registered")),
        "built with": _text(gpu.get("built_with") or gpu.get("tensorflow_built_with")),
        "devices": _text(measured.devices),
    }
    if measured.convolution_ops:
        facts["convolution operators"] = _text(measured.convolution_ops)
    others = {name: version for name, version in versions.items() if name not in (framework, "keras", "keras_backend", "python")}
    if others:
        facts["other versions"] = _text(others)
    return facts


def epoch_rows(record: Record, outliers: set[int]) -> list[dict]:
    """A repeat's epochs, the warm-up ones marked, outliers flagged (their number as the epoch log gives it)."""
    measured = record.measurement
    if measured is None:
        return []
    rows = []
    for number, epoch in enumerate(measured.epochs, 1):
        rows.append({
            "number": number,
            "warmup": number <= measured.warmup_epochs,
            "outlier": number in outliers,
            "seconds": _number(epoch.seconds, 2),
            "train_seconds": _number(epoch.train_seconds, 2),
            "images_per_second": _number(epoch.images_per_second, 0),
            "loss": _number(epoch.logs.get("loss"), 4),
            "accuracy": _number(epoch.logs.get("accuracy"), 4),
            "val_loss": _number(epoch.logs.get("val_loss"), 4),
            "val_accuracy": _number(epoch.logs.get("val_accuracy"), 4),
        })
    return rows


def _number(value, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def outlier_epochs(result: CellResult) -> dict[int, set[int]]:
    """Per repeat number, the epoch numbers report.py flagged ("repeat 2, epoch 3: 2.10 s")."""
    flagged: dict[int, set[int]] = {}
    for label in result.outlier_epochs:
        found = re.match(r"repeat ([0-9]+), epoch ([0-9]+):", label)
        if found:
            flagged.setdefault(int(found.group(1)) - 1, set()).add(int(found.group(2)))
    return flagged


def comparison_row(pair: Pair) -> dict:
    c = pair.comparison
    return {
        "question": pair.question,
        "baseline": pair.baseline.cell_id,
        "other": pair.other.cell_id,
        **comparison_cells(c),
        # As the report's sentences say "(not comparable: ...)": a verdict on a throttled cell or moving clocks is not one to act on.
        "doubtful": [r.cell_id for r in (pair.baseline, pair.other) if r.telemetry and r.telemetry.doubtful],
    }


def comparison_cells(c: Comparison) -> dict:
    return {
        "ratio": f"{c.ratio:.2f}x",
        "interval": f"{c.ci_low:.2f}-{c.ci_high:.2f}x" if c.ci_low is not None else "-",
        "p_value": f"{c.p_value:.3g}",
        "repeats": f"{c.repeats[0]} / {c.repeats[1]}",
        "verdict": c.verdict,
        "words": c.words,
        "text": c.as_times(),
    }


def is_measured(result: CellResult) -> bool:
    """A cell with numbers: at least one ok repeat (some failed ones beside it count as the report counts them)."""
    return result.status.startswith("ok")


def report_parts(view: RunView) -> dict:
    """The report as report.render writes it, in parts a page lays out: table, sentences, verdicts, notes.

    Every note is report.py's own words (its functions and constants), so that the site says what the terminal says.
    """
    results = view.results
    rows = table_rows(results, view.chosen, view.found)
    synthetic = sorted({r.workload for r in results if r.data_kind == "synthetic"})
    unisolated = sorted({record.executor for record in view.records if record.environment.get("isolation") == "none"})
    return {
        "columns": list(rows[0]) if rows else COLUMNS,
        "rows": rows,
        # Cells without numbers are said once per reason (not_measured), not as rows of dashes.
        "measured_rows": [row for row, result in zip(rows, results) if is_measured(result)],  # table_rows: one row per result, in order
        "estimated_note": ESTIMATED_NOTE if any(r.telemetry and r.telemetry.energy_estimated for r in results) else "",
        "sentences": sentences(results, view.chosen, view.found),
        "method": method_note(view.min_effect) if view.found else "",
        "comparisons": [comparison_row(pair) for pair in view.found],
        "outlier_note": OUTLIER_NOTE,
        "outliers": outlier_lines(results),
        "input_bound_note": INPUT_BOUND_NOTE,
        "input_bound": input_bound_lines(results),
        "telemetry_note": TELEMETRY_NOTE,
        "telemetry": telemetry_lines(results),
        "not_measured": not_measured_groups(results),
        "synthetic": synthetic,
        "unisolated": unisolated,
    }


def not_measured_groups(results: list[CellResult]) -> list[dict]:
    """report.not_measured's lines, one per (status, reason), each with the cells it names, so that a page can fold the list.

    The line is report.not_measured's own, asked of the group alone: it gives that group the one line it gives it in the
    whole run; the page shows a count and the reason, and the cells under a <details>.
    """
    groups: dict[tuple[str, str], list[CellResult]] = {}
    for result in results:
        if result.status != "ok":  # the test not_measured makes: a cell with some failed repeats is listed too
            groups.setdefault((result.status, result.reason), []).append(result)
    return [{"status": status, "reason": reason, "cells": [r.cell_id for r in group], "line": not_measured(group)[0][2:]}
            for (status, reason), group in groups.items()]


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
        measured = record.measurement
        gpu = _dict(measured.gpu) if measured else {}
        points.append({
            "cell_id": result.cell_id,
            "model": result.model,
            "kind": result.kind,
            "status": result.status,
            "median": result.timed.median if result.timed else None,
            "low": result.timed.low if result.timed else None,
            "high": result.timed.high if result.timed else None,
            "per_repeat": list(result.timed.per_repeat) if result.timed else [],
            "cudnn": _text(_dict(gpu.get("cudnn")).get("version")),
            "cudnn_path": _text(_dict(gpu.get("cudnn")).get("path")),
            "cuda": _text(_dict(gpu.get("cuda_runtime")).get("version")),
            "driver": _text(gpu.get("driver") or drivers(view.host)),
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

    Each square gives the cell's timed epoch seconds (median repeat) and its speed-up verdict against the workload's baseline, the
    same comparison the verdicts table gives; of two or more measured cells, the one with the lowest median is marked fastest.
    Unmeasured cells show their status, so that a hole in the matrix is seen as one.
    """
    axes = {cell_id: group[-1].axes for cell_id, group in by_cell(view.records).items()}
    speedups = {pair.other.cell_id: pair.comparison for pair in view.found if pair.question == "speed-up"}
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
        baseline = view.chosen.get(cells[0].model)
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
        "doubtful": bool(result.telemetry and result.telemetry.doubtful),
    }
