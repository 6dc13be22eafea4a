"""Helpers for running cells for real with the venv and local executors, without Docker.

A whole cell in a venv is one line once its matrix is written:

    records = run_cells(plan_of(tmp_path, MATRIX), venv_executor(tmp_path))

The workload's faults (crash, hang, garbage) happen before it imports any framework, so cells
that ask for nothing but what this interpreter has (`asking_for(plan, ())`) test the run path in
well under a second each.
"""

from __future__ import annotations

import dataclasses
import io
import sys
from pathlib import Path

from runner import session
from runner.executors.local_executor import LocalExecutor
from runner.executors.venv_executor import VenvExecutor
from runner.progress import Progress
from runner.records import Record

SMALL = "model: mnist, epochs: 2, train_images: 64, validation_images: 32"
FAULTS = f"""workloads:
  crash: {{{SMALL}, fault: crash}}
  garbage: {{{SMALL}, fault: garbage}}
  hang: {{{SMALL}, fault: hang, timeout_minutes: 0.02}}
  stuck: {{{SMALL}, fault: hang}}
cpu:
  tensorflow: ["2.21"]
build:
  ca_certificates: []
"""


def plan_of(folder: Path, matrix: str, pattern: str | None = None) -> session.Plan:
    """The plan of a matrix, written to folder/matrix.yaml (its synthetic data goes to folder/data)."""
    path = folder / "matrix.yaml"
    path.write_text(matrix)
    return session.plan(path, pattern)


def asking_for(plan: session.Plan, requirements: tuple[str, ...], libraries: tuple[str, ...] = ()) -> session.Plan:
    """The plan with every environment asking for these requirements instead of its framework's."""
    def replaced(cell):
        environment = dataclasses.replace(cell.environment, requirements=requirements, libraries=libraries)
        return dataclasses.replace(cell, environment=environment)
    return dataclasses.replace(plan, cells=[replaced(c) for c in plan.cells], selected=[replaced(c) for c in plan.selected])


def local_executor(python: str = sys.executable, gpu_devices: str = "none", stream=None) -> LocalExecutor:
    return LocalExecutor(python, gpu_devices, Progress(stream or io.StringIO()))


def venv_executor(folder: Path, python: str = sys.executable, gpu_devices: str = "none", stream=None) -> VenvExecutor:
    """A venv executor keeping its venvs in folder/venvs, its progress in stream (default: nowhere)."""
    return VenvExecutor(python, gpu_devices, Progress(stream or io.StringIO()), folder / "venvs")


def run_cells(plan: session.Plan, executor, results: Path | None = None) -> dict[str, Record]:
    """Run the plan's selected cells into results (default: beside the matrix); the records by cell id."""
    folder = results or plan.matrix.path.parent / "results"
    result = session.run(plan, executor, folder, None, 1, Progress(io.StringIO()))
    return {record.cell_id: record for record in result.records}
