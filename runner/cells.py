"""Stage 2: Matrix -> ordered cells. Pure: no files, no Docker.

A cell is one workload in one environment, described by its axes: `kind`,
`framework` (the Keras backend: tensorflow, torch or jax) and
`framework_version`, and for GPU cells `cuda` and `cudnn` (plus `keras` when
pinned). Cells whose build axes agree share one EnvironmentSpec, and so one
build; the workloads are the run axis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from runner.compatibility import Table, cudnn_source, exclusion, python_mismatch, without_cudnn
from runner.config import GPU_AXES, GPU_TYPE_AXIS, GpuImages, Matrix
from runner.workloads import Workload
from runner.environments import EnvironmentSpec, environment_for, environment_name
from runner.errors import UserError
from workload.contract import FRAMEWORKS

PYTHON_TAG = re.compile(r"(?:docker\.io/)?(?:library/)?python:([0-9]+\.[0-9]+)(?:[.-].*)?")  # python:3.11-slim -> 3.11


@dataclass(frozen=True)
class Cell:
    id: str
    axes: tuple[tuple[str, str], ...]  # sorted (axis, value) pairs; see `axis` and `axes_dict`
    workload: Workload
    environment: EnvironmentSpec
    excluded: str = ""  # why the compatibility table rules the cell out; "" when it runs

    @property
    def kind(self) -> str:
        return self.axis("kind")

    def axis(self, name: str) -> str:
        return self.axes_dict.get(name, "")

    @property
    def axes_dict(self) -> dict[str, str]:
        return dict(self.axes)


def cell_id(axes: dict[str, str], workload: str) -> str:
    """The one way a cell's id is made: its environment's name, then its workload's.

    A GPU type is a run axis (one image runs on any GPU) but part of the id, right after the
    kind, so that `-k gpu-h200` selects by type: gpu-h200-cuda12.8-cudnn9.8-tf2.21-dogs-vs-cats.
    """
    name = environment_name(axes)
    if GPU_TYPE_AXIS in axes:
        kind = axes["kind"]
        name = f"{kind}-{axes[GPU_TYPE_AXIS]}{name[len(kind):]}"
    return f"{name}-{workload}"


def make_cell(axes: dict[str, str], workload: Workload, environment: EnvironmentSpec, excluded: str = "") -> Cell:
    return Cell(cell_id(axes, workload.name), tuple(sorted(axes.items())), workload, environment, excluded)


def expand(matrix: Matrix, table: Table, installs: bool = True) -> list[Cell]:
    """Every cell of the matrix: CPU environments first, then GPU ones; workloads within each.

    `installs` false: for an executor that installs nothing (local), see compatibility.exclusion.
    """
    cells = {}
    for axes, environment, excluded in [*_cpu_environments(matrix, table), *_gpu_environments(matrix, table, installs)]:
        for workload in matrix.workloads:
            cell = make_cell(axes, workload, environment, excluded or _unsuitable(axes, workload) or "")
            if cell.id in cells:
                raise UserError(f"{matrix.path}: cell {cell.id} comes out of the matrix twice: check gpu.include for repeated entries")
            cells[cell.id] = cell
    return list(cells.values())


def _unsuitable(axes: dict[str, str], workload: Workload) -> str | None:
    """Why a workload's settings cannot be honoured in this environment, or None."""
    if workload.loader == "tfdata" and axes["framework"] != "tensorflow":
        return f"workloads.{workload.name}.loader: tf.data needs TensorFlow, which a {axes['framework']} environment does not have"
    if not workload.cudnn and axes["kind"] == "gpu":
        return without_cudnn(axes["framework"])
    return None


def _versions(backends, table: Table, python: str | None = None):
    """(backend, version) pairs; a backend listed without versions gets the table's newest (that runs on this Python)."""
    return [(backend, version) for backend, versions in backends for version in versions or (table.newest(backend, python),)]


def _cpu_environments(matrix: Matrix, table: Table):
    cpu = matrix.cpu
    python = PYTHON_TAG.fullmatch(cpu.base_image) if cpu else None
    for framework, version in _versions(cpu.frameworks, table, python[1] if python else None) if cpu else ():
        axes = {"kind": "cpu", "framework": framework, "framework_version": version}
        if cpu.keras:
            axes["keras"] = cpu.keras
        yield axes, environment_for(axes, cpu.base_image, _keras(table, axes)), _cpu_python_mismatch(table, axes, cpu.base_image) or ""


def _cpu_python_mismatch(table: Table, axes: dict[str, str], base_image: str) -> str | None:
    """The Python of an official python:X.Y image against the release's range.

    A CPU cell of a release the table does not know is tried all the same: the table's rules are
    about CUDA and cuDNN, and a CPU build of a newer release may well install.
    """
    python = PYTHON_TAG.fullmatch(base_image)
    release = table.releases[axes["framework"]].get(axes["framework_version"])
    return python_mismatch(release, python[1], base_image) if python and release else None


def _keras(table: Table, axes: dict[str, str]) -> str:
    """The Keras to install beside torch or jax (TensorFlow brings its own unless the matrix pins one)."""
    if "keras" in axes or axes["framework"] == "tensorflow":
        return axes.get("keras", "")
    releases = table.releases[axes["framework"]]
    return releases.get(axes["framework_version"], releases[table.newest(axes["framework"])]).keras


def _gpu_environments(matrix: Matrix, table: Table, installs: bool):
    if matrix.gpu is None:
        return
    for combination in gpu_combinations(matrix.gpu, matrix.path, table):
        (framework, version), = ((b, combination[b]) for b in FRAMEWORKS if b in combination)
        cuda, cudnn = combination["cuda"], combination["cudnn"]
        axes = {"kind": "gpu", "framework": framework, "framework_version": version, "cuda": cuda, "cudnn": cudnn}
        keras = combination.get("keras", matrix.gpu.keras or "")
        if keras:
            axes["keras"] = keras
        if GPU_TYPE_AXIS in combination:
            axes[GPU_TYPE_AXIS] = combination[GPU_TYPE_AXIS]
        excluded = exclusion(table, framework, version, cuda, cudnn, installs) or ""
        base = table.cuda.get(cuda)
        pin = "" if excluded else cudnn_source(table, framework, cuda, cudnn)
        environment = environment_for(axes, base.base_image if base else "", _keras(table, axes), pin)
        yield axes, environment, excluded


def gpu_combinations(gpu: GpuImages, path: Path, table: Table) -> list[dict[str, str]]:
    """The axes' product, then exclude, then include, as GitHub Actions matrices do.

    The GPU types (gpu_type) are an axis of the product like the others. An exclude
    entry removes every combination that matches all its keys. An include entry
    extends each combination whose axis values it does not contradict (its other
    keys, such as keras, are added); if it extends none, it becomes a combination
    of its own and must then name cuda, cudnn and one backend's version: one per GPU
    type, unless it names its type.
    """
    types = gpu.gpu_types or (None,)
    combinations = [
        {"cuda": cuda, backend: version, "cudnn": cudnn, **({GPU_TYPE_AXIS: name} if name else {})}
        for cuda in gpu.cuda for backend, version in _versions(gpu.frameworks, table) for cudnn in gpu.cudnn for name in types
    ]
    combinations = [c for c in combinations if not any(_matches_all(c, dict(entry)) for entry in gpu.exclude)]
    originals = list(combinations)
    for index, entry in enumerate(map(dict, gpu.include)):
        axes = {k: v for k, v in entry.items() if k in (*GPU_AXES, *FRAMEWORKS, GPU_TYPE_AXIS)}
        extended = [c for c in originals if _matches_all(c, axes)]
        for combination in extended:
            combination.update(entry)
        if not extended:
            if not set(GPU_AXES) <= set(axes) or sum(b in axes for b in FRAMEWORKS) != 1:
                raise UserError(f"{path}: gpu.include[{index}]: expected cuda, cudnn and one backend's version (tensorflow, torch or jax), "
                                "since it extends no combination and so adds a cell of its own")
            combinations += [entry] if GPU_TYPE_AXIS in entry else [{**entry, **({GPU_TYPE_AXIS: name} if name else {})} for name in types]
    return combinations


def _matches_all(combination: dict[str, str], entry: dict[str, str]) -> bool:
    return all(combination.get(key) == value for key, value in entry.items())


def matches(cell: Cell, pattern: str | None) -> bool:
    return matches_id(cell.id, pattern)


def matches_id(cell_id: str, pattern: str | None) -> bool:
    """-k PATTERN: a glob matched anywhere in the cell id, so a plain word selects by substring."""
    return pattern is None or fnmatchcase(cell_id, f"*{pattern}*")


def environments_of(cells: list[Cell]) -> list[EnvironmentSpec]:
    """The distinct environments the cells need, in first-use order."""
    return list(dict.fromkeys(cell.environment for cell in cells))
