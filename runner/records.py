"""Records: one per cell, appended to results/<run-id>/results.jsonl as soon as the cell ends.

A record carries the cell's outcome (ok or failed, with the reason), its axes,
the executor that ran it and that executor's provenance of the environment
(for Docker: image tag and id, base image), and the measurement the workload
printed, raw per-epoch times included. Runs of older schemas are converted
as they are read, never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner import __version__
from runner.errors import UserError
from workload.contract import ContractError, Measurement

RESULTS_SCHEMA = 3  # 2: CUDA/cuDNN requested, repeats; 3: axes, executor, environment provenance
READABLE_SCHEMAS = (2, 3)
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"


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
    schema: int = field(default=RESULTS_SCHEMA)

    @property
    def kind(self) -> str:
        return self.axes["kind"]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str, where: str, written_by: str) -> "Record":
        data = json.loads(line)
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema not in READABLE_SCHEMAS:
            age = "older" if isinstance(schema, int) and schema < RESULTS_SCHEMA else "newer"
            raise UserError(f"{where}: results schema {schema!r} is {age} than this runner reads ({', '.join(map(str, READABLE_SCHEMAS))}): "
                            f"render it with cudnn-matrix {written_by}, which wrote it, or run the matrix again")
        if schema == 2:
            data = _from_schema_2(data)
        try:
            measurement = data.pop("measurement", None)
            return cls(**data, measurement=None if measurement is None else Measurement.from_dict(measurement))
        except (TypeError, ContractError) as error:
            raise UserError(f"{where}: not a record of results schema {schema}: the results file is damaged ({str(error)[:200]})")


def _from_schema_2(data: dict) -> dict:
    """A schema-2 record (every cell a TensorFlow cell in a Docker image) in schema 3's terms."""
    data = dict(data)
    axes = {"kind": data.pop("kind"), "framework": "tensorflow", "framework_version": data.pop("tensorflow_requested")}
    for axis in ("cuda", "cudnn"):
        requested = data.pop(f"{axis}_requested")
        if requested:
            axes[axis] = requested
    environment = {key: data.pop(key) for key in ("image", "image_id", "base_image")}
    return {**data, "axes": axes, "executor": "docker", "environment": environment, "schema": RESULTS_SCHEMA}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run(results_dir: Path, matrix_path: Path, host: dict) -> Path:
    """A fresh results/<run-id>/ folder, named by its UTC start time so that names sort by age."""
    run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = results_dir / run_id
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = results_dir / f"{run_id}-{suffix}"
    folder.mkdir(parents=True)
    manifest = {
        "schema": RESULTS_SCHEMA,
        "runner_version": __version__,
        "run_id": folder.name,
        "matrix_file": str(matrix_path),
        "matrix_sha256": hashlib.sha256(matrix_path.read_bytes()).hexdigest(),
        "host": host,
        "started": now(),
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def append(run_folder: Path, record: Record) -> None:
    """Write and flush one record, so nothing measured is lost if a later cell fails."""
    with open(run_folder / RESULTS_FILE, "a", encoding="utf-8") as results:
        results.write(record.to_json() + "\n")
        results.flush()
        os.fsync(results.fileno())


def finish_run(run_folder: Path, state: str) -> None:
    """Note in the manifest how the run ended: finished or interrupted."""
    path = run_folder / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest.update(ended=now(), state=state)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def load(run_folder: Path) -> list[Record]:
    """The run's records. A last line cut short (power loss, a killed runner) is left out with a warning."""
    path = run_folder / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"{run_folder}: no {RESULTS_FILE} here: is this a run folder?")
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    written_by = _manifest(run_folder).get("runner_version", "of that time")
    loaded = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            loaded.append(Record.from_json(line, f"{path}:{number}", written_by))
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith("\n"):
                print(f"warning: {path}:{number}: the last record was cut short and is left out (rerun its cell with --resume)", file=sys.stderr)
                continue
            raise UserError(f"{path}:{number}: not a JSON record: the results file is damaged")
    return loaded


def _start_order(folder: Path) -> tuple[str, int]:
    """Run ids are UTC start times, with -2, -3... for runs started in the same second."""
    stamp, _, suffix = folder.name.partition("-")[2].partition("-")
    return folder.name.partition("-")[0] + stamp, int(suffix) if suffix.isdigit() else 1


def _manifest(run_folder: Path) -> dict:
    try:
        return json.loads((run_folder / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def find_run(results_dir: Path, which: str) -> Path:
    """A run folder named on the command line: "latest", a run id under results_dir, or a path."""
    if which == "latest":
        return latest_run(results_dir)
    for folder in (results_dir / which, Path(which)):
        if (folder / MANIFEST_FILE).is_file():
            return folder
    raise UserError(f"{which}: no such run under {results_dir}")


def latest_run(results_dir: Path) -> Path:
    runs = [p for p in results_dir.glob("*/") if (p / RESULTS_FILE).is_file()] if results_dir.is_dir() else []
    runs.sort(key=_start_order)
    if not runs:
        raise UserError(f"{results_dir}: no runs yet: run `python -m runner run` (or `make matrix`) first")
    return runs[-1]
