"""Records: one per cell, appended to results/<run-id>/results.jsonl as soon as the cell ends.

A record carries the cell's outcome (ok or failed, with the reason), its axes,
the executor that ran it and that executor's provenance of the environment
(for Docker: image tag and id, base image), and the measurement the workload
printed, raw per-epoch times included. Runs of older schemas are converted
as they are read (older_schemas.py), never rewritten.
"""

from __future__ import annotations

import difflib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from runner import __version__
from runner.errors import UserError
from runner.invocation import command
from runner.older_schemas import measurement_to_current, record_2_to_3
from workload.contract import ContractError, Measurement, finite

RESULTS_SCHEMA = 3  # 2: CUDA/cuDNN requested, repeats; 3: axes, executor, environment provenance
READABLE_SCHEMAS = (2, 3)
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"
MATRIX_COPY = "matrix.yaml"  # the matrix as the run started: a resume with another is refused, naming what changed
LOCK_FILE = ".lock"
STATUSES = ("ok", "failed", "skipped", "excluded")
KINDS = ("cpu", "gpu")
VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")  # cuDNN and CUDA as the matrix names them; ASCII digits only


class DamagedRecord(ValueError):
    """A line of a results file that cannot be read back as a record; it costs that line only."""


@dataclass(frozen=True)
class Record:
    cell_id: str
    status: str  # "ok", "failed", "skipped" (no GPU here) or "excluded" (by the compatibility table)
    reason: str
    axes: dict[str, str]  # kind, framework, framework_version, and cuda, cudnn, keras where the cell has them
    workload: str
    executor: str
    environment: dict[str, str]  # the executor's provenance: for Docker the image tag and id, the base used
    started: str
    ended: str
    measurement: Measurement | None = None
    log_tail: str = ""
    repeat: int = 0
    launched: float | None = None  # time.time() as the runner handed the cell to the executor; see Measurement.timeline
    schema: int = field(default=RESULTS_SCHEMA)

    @property
    def kind(self) -> str:
        return self.axes["kind"]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str, where: str, written_by: str) -> "Record":
        try:
            data = json.loads(line)
        except ValueError:
            raise DamagedRecord("not a complete JSON record")
        if not isinstance(data, dict):
            raise DamagedRecord("not a record")
        schema = data.get("schema")
        if isinstance(schema, bool) or not isinstance(schema, int):
            raise DamagedRecord("a record without a schema version")
        if schema not in READABLE_SCHEMAS:
            age = "older" if schema < RESULTS_SCHEMA else "newer"
            raise UserError(f"{where}: results schema {schema!r} is {age} than this runner reads ({', '.join(map(str, READABLE_SCHEMAS))}): "
                            f"render it with cudnn-matrix {written_by}, which wrote it, or run the matrix again")
        if schema == 2:
            try:
                data = record_2_to_3(data)
            except KeyError as missing:
                raise DamagedRecord(f"a schema-2 record without {missing}")
        try:
            problem = envelope_problem(data)
            if problem:
                raise ContractError(problem)
            measurement = data.pop("measurement", None)
            measured = None if measurement is None else _measurement(measurement)
            if data["status"] == "ok" and len(measured.epochs) <= measured.warmup_epochs:
                raise ContractError("status ok without a timed epoch")  # the report would leave it out without a word
            return cls(**data, measurement=measured)
        except (TypeError, KeyError, ContractError) as error:
            raise DamagedRecord(f"not a record of results schema {schema} ({str(error)[:200]})")


def envelope_problem(data: dict) -> str | None:
    """What keeps a record's fields (its measurement's aside) from being what every reader takes them for; None if nothing.

    Valid JSON of the wrong type (an edited line, another tool's) must cost its line, not stop report, compare,
    publish or --resume.
    """
    for key in ("cell_id", "reason", "workload", "executor", "started", "ended", "log_tail"):
        if not isinstance(data.get(key, "" if key == "log_tail" else None), str):
            return f"{key}: expected text"
    if not data["cell_id"]:
        return "cell_id: expected a cell id, got nothing"
    if data.get("status") not in STATUSES:
        return f"status: expected one of {', '.join(STATUSES)}"
    axes = data.get("axes")
    if not isinstance(axes, dict) or not all(isinstance(value, str) for value in axes.values()):
        return "axes: expected an object of texts"
    if axes.get("kind") not in KINDS:
        return f"axes.kind: expected one of {', '.join(KINDS)}"
    for axis in ("framework", "framework_version", *(("cuda", "cudnn") if axes["kind"] == "gpu" else ())):
        if not axes.get(axis):
            return f"axes.{axis}: missing"
    if axes["kind"] == "gpu" and not VERSION.fullmatch(axes["cudnn"]):
        return "axes.cudnn: expected a version such as 9.3"
    environment = data.get("environment")
    # The keys readers look up (the report, the dispatch table, the Slurm ledger's merge) are text or absent.
    if not isinstance(environment, dict) or not all(isinstance(environment.get(key, ""), str) for key in ("isolation", "host", "job_id", "gpu_devices")):
        return "environment: expected an object, its isolation, host, job_id and gpu_devices text"
    repeat = data.get("repeat", 0)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
        return "repeat: expected a whole number from 0"
    launched = data.get("launched")
    if launched is not None and not finite(launched):
        return "launched: expected a time in seconds"
    if data.get("measurement") is None and data["status"] == "ok":
        return "status ok without a measurement"
    return None


def _measurement(data) -> Measurement:
    """The record's measurement, an older schema's converted; the parts readers look into beyond the contract's types checked too."""
    if not isinstance(data, dict):
        raise ContractError("measurement: expected an object")
    measurement = Measurement.from_dict(measurement_to_current(data))
    if measurement.warmup_epochs < 0:
        raise ContractError("measurement: warmup_epochs: expected a whole number from 0")
    for part in ("cudnn", "cuda_runtime"):
        if not isinstance(measurement.gpu.get(part, {}), dict):
            raise ContractError(f"measurement: gpu.{part}: expected an object")
    return measurement


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run(results_dir: Path, matrix_path: Path, host: dict, order_seed: int | None = None, cells: list[str] | None = None,
            notes: dict | None = None) -> Path:
    """A fresh results/<run-id>/ folder, named by its UTC start time so that names sort by age.

    It holds a manifest and an empty results file from the start, so a run stopped at any
    moment can be found and resumed. Two runners starting in the same second get distinct
    folders: mkdir either creates a folder or fails, with no moment between a check and a creation.
    """
    run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = None
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        folder = _new_folder(results_dir, run_id)
        _start(folder, matrix_path, host, order_seed, cells, notes or {})
    except OSError as error:  # a results disk full from the start: no run, rather than a run without a manifest
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        raise UserError(f"{results_dir}: cannot start a run there ({error.strerror or error}); free some space, or name another folder with --results")
    return folder


def _new_folder(results_dir: Path, run_id: str) -> Path:
    for suffix in range(1, 1000):
        folder = results_dir / (run_id if suffix == 1 else f"{run_id}-{suffix}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise UserError(f"{results_dir}: a thousand runs started in second {run_id}: is something starting runs in a loop?")


def _start(folder: Path, matrix_path: Path, host: dict, order_seed: int | None, cells: list[str] | None, notes: dict) -> None:
    """A new run's copy of its matrix, its manifest (with the notes its command adds) and its empty results file."""
    matrix = matrix_path.read_bytes()
    (folder / MATRIX_COPY).write_bytes(matrix)
    manifest = {
        "schema": RESULTS_SCHEMA, "runner_version": __version__, "run_id": folder.name,
        "matrix_file": str(matrix_path), "matrix_sha256": hashlib.sha256(matrix).hexdigest(),
        "host": host, "started": now(), "state": "running",
        **({"order_seed": order_seed} if order_seed is not None else {}), **({"cells": cells} if cells else {}),  # see in_matrix_order
        **notes,
    }
    _write_atomically(folder / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    (folder / RESULTS_FILE).touch()


@contextmanager
def hold(run_folder: Path) -> Iterator[None]:
    """Mark the run as in progress for as long as this runner works on it.

    An exclusive flock on the folder's lock file: the kernel drops it when the runner
    ends in any way (kill -9 included), so `clean` can tell live runs from dead ones
    and a second runner cannot resume a run that is still going.
    """
    with open(run_folder / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run_folder}: another runner is working on this run right now; wait for it to end, or stop it first")
        yield


def in_progress(run_folder: Path) -> bool:
    """Whether a live runner holds this run (see hold)."""
    try:
        with open(run_folder / LOCK_FILE) as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False  # no lock file, no folder: nobody holds it


def append(run_folder: Path, record: Record) -> None:
    """Write and flush one record, so nothing measured is lost if a later cell fails.

    A record always starts on a line of its own: after a record cut short (power loss, a
    full disk), the next one must not be glued to the fragment.
    """
    path = run_folder / RESULTS_FILE
    with open(path, "a+b") as results:
        results.seek(0, os.SEEK_END)
        fresh_line = results.tell() == 0 or _last_byte(results) == b"\n"
        results.write((b"" if fresh_line else b"\n") + record.to_json().encode() + b"\n")
        results.flush()
        os.fsync(results.fileno())


def _last_byte(stream) -> bytes:
    stream.seek(-1, os.SEEK_END)
    return stream.read(1)


def finish_run(run_folder: Path, state: str) -> None:
    """Note in the manifest how the run ended: finished or interrupted (over a manifest that is not one, with that alone)."""
    note_in_manifest(run_folder, ended=now(), state=state)


def note_in_manifest(run_folder: Path, **facts) -> None:
    """Add facts to the run's manifest (over a manifest that is not one, the facts alone), whole or not at all."""
    path = run_folder / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        manifest = {}
    manifest = manifest if manifest_problem(manifest) is None else {}
    manifest.update(facts)
    text = json.dumps(manifest, indent=2) + "\n"
    try:
        _write_atomically(path, text)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        _overwrite(path, text)  # a full disk has no room for a second copy; the old one's blocks hold the new one


def _overwrite(path: Path, text: str) -> None:
    with open(path, "r+", encoding="utf-8") as file:
        file.write(text)
        file.truncate()
        file.flush()
        os.fsync(file.fileno())


def save(path: Path, record: Record) -> None:
    """One record in a file of its own, complete or not at all: a dispatched job's record, for the runner to merge.

    On disk before it appears under its name: the job ends right after, and its node may go with it.
    """
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as file:
        file.write(record.to_json() + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def read_one(path: Path) -> Record:
    """The record in a file `save` wrote; DamagedRecord when it is not one, OSError when it cannot be read."""
    with open(path, encoding="utf-8", errors="replace") as file:
        text = file.read(16 * 1024 * 1024)
    return Record.from_json(text, str(path), "of that time")


def manifest(run_folder: Path) -> dict:
    """The run's manifest, or {} when it is missing or unreadable; one that is not a manifest is {} too, with a warning."""
    return _manifest(run_folder)


MANIFEST_TEXTS = ("runner_version", "run_id", "matrix_file", "matrix_sha256", "started", "ended", "state")
HOST_TEXTS = ("dispatch", "executor", "node_executor", "isolation", "hostname")  # the host facts readers decide by


def manifest_problem(data) -> str | None:
    """What keeps parsed JSON from being a manifest every reader can use; None if nothing."""
    if not isinstance(data, dict):
        return "expected an object"
    for key in MANIFEST_TEXTS:
        if not isinstance(data.get(key, ""), str):
            return f"{key}: expected text"
    for key in ("schema", "order_seed"):
        if isinstance(data.get(key, 0), bool) or not isinstance(data.get(key, 0), int):
            return f"{key}: expected a whole number"
    host = data.get("host", {})
    if not isinstance(host, dict):
        return "host: expected an object"
    for key in HOST_TEXTS:
        if not isinstance(host.get(key, ""), str):
            return f"host.{key}: expected text"
    if not isinstance(host.get("node_python", ""), (str, type(None))):
        return "host.node_python: expected text"
    return None


def _write_atomically(path: Path, text: str) -> None:
    """The file is either the old one or the new one, never half of each."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise


def load(run_folder: Path) -> list[Record]:
    """The run's records. A damaged line (cut short by power loss or a killed runner) costs that line, with a warning."""
    path = run_folder / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"{run_folder}: no {RESULTS_FILE} here: is this a run folder?")
    manifest = _manifest(run_folder)
    written_by, loaded = manifest.get("runner_version", "of that time"), []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, _, parsed in parse_lines(lines, path, written_by):
            if isinstance(parsed, DamagedRecord):
                print(f"warning: {path}:{number}: {parsed}; the line is left out (--resume reruns a cell without a good record)", file=sys.stderr)
            else:
                loaded.append(parsed)
    return in_matrix_order(loaded, manifest)


def in_matrix_order(loaded: list[Record], manifest: dict) -> list[Record]:
    """The records, their cells in the order the manifest's matrix lists them (rounds run shuffled), repeats as they came."""
    order = manifest.get("cells")
    place = {cell_id: index for index, cell_id in enumerate(order) if isinstance(cell_id, str)} if isinstance(order, list) else {}
    return sorted(loaded, key=lambda record: place.get(record.cell_id, len(place)))


def parse_lines(lines: Iterable[str], path: Path, written_by: str) -> Iterator[tuple[int, str, Record | DamagedRecord]]:
    """Each non-blank line of a results file: its number, its text, and its record or the damage that keeps it from being one."""
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield number, line, Record.from_json(line, f"{path}:{number}", written_by)
            except DamagedRecord as damage:
                yield number, line, damage


def _start_order(folder: Path) -> tuple[str, int]:
    """Run ids are UTC start times, with -2, -3... for runs started in the same second."""
    stamp, _, suffix = folder.name.partition("-")[2].partition("-")
    return folder.name.partition("-")[0] + stamp, int(suffix) if suffix.isascii() and suffix.isdigit() else 1


def _manifest(run_folder: Path) -> dict:
    path = run_folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    problem = manifest_problem(data)
    if problem:
        print(f"warning: {path}: not a manifest ({problem}); the run's facts are left out", file=sys.stderr)
        return {}
    return data


def matrix_changes(run_folder: Path, matrix_path: Path) -> str | None:
    """How MATRIX_PATH differs from the matrix RUN_FOLDER started with, in a few words, or None when it does not.

    The run's copy says; a run older than copies is held to its manifest's hash; with neither (a
    manifest that is not one) there is nothing to hold it to.
    """
    now_text = matrix_path.read_bytes()
    copy = run_folder / MATRIX_COPY
    if not copy.is_file():
        recorded = manifest(run_folder).get("matrix_sha256")
        if recorded in (None, hashlib.sha256(now_text).hexdigest()):
            return None
        return "its content is not what the run started with (the run keeps no copy to compare it with)"
    if copy.read_bytes() == now_text:
        return None
    before, after = copy.read_text(errors="replace").splitlines(), now_text.decode(errors="replace").splitlines()
    changes = []
    for tag, first, last, new_first, new_last in difflib.SequenceMatcher(None, before, after).get_opcodes():
        if tag != "equal":
            was, now_is = _around_difference(" / ".join(before[first:last]).strip(), " / ".join(after[new_first:new_last]).strip())
            changes.append(f"line {new_first + 1}: {was!r} is now {now_is!r}")
    return f"{len(changes)} change(s) since the run started, first {changes[0]}"


def _around_difference(was: str, now: str, width: int = 60) -> tuple[str, str]:
    """The two texts from a little before where they first differ, cut to `width`: a long line's change stays in view."""
    first = next((index for index, (a, b) in enumerate(zip(was, now)) if a != b), min(len(was), len(now)))
    begin = max(0, first - 20)
    return tuple(("..." if begin else "") + text[begin:begin + width] for text in (was, now))


def find_run(results_dir: Path, which: str) -> Path:
    """A run folder named on the command line: "latest", a run id under results_dir, or a path."""
    if which == "latest":
        return latest_run(results_dir)
    for folder in (results_dir / which, Path(which)):
        if (folder / MANIFEST_FILE).is_file():
            return folder
    raise UserError(f"{which}: no such run under {results_dir}")


def latest_run(results_dir: Path) -> Path:
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such folder: check --results (default: results)")
    runs = [p for p in results_dir.glob("*/") if (p / RESULTS_FILE).is_file()]
    runs.sort(key=_start_order)
    if not runs:
        raise UserError(f"{results_dir}: no runs yet: run `{command('run')}` (or `make matrix`) first")
    return runs[-1]
