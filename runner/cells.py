"""Stage 2: Matrix -> ordered cells. Pure: no files, no Docker.

A cell is one workload in one environment, described by its axes: `kind`,
`framework` and `framework_version`, and for GPU cells `cuda` and `cudnn`
(plus `keras` when pinned). Cells whose build axes agree share one
EnvironmentSpec, and so one build; the workloads are the run axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from runner.compatibility import Table, cudnn_source, exclusion
from runner.config import GPU_AXES, GpuImages, Matrix, Workload
from runner.environments import EnvironmentSpec, environment_for, environment_name
from runner.errors import UserError


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
    """The one way a cell's id is made: its environment's name, then its workload's."""
    return f"{environment_name(axes)}-{workload}"


def make_cell(axes: dict[str, str], workload: Workload, environment: EnvironmentSpec, excluded: str = "") -> Cell:
    return Cell(cell_id(axes, workload.name), tuple(sorted(axes.items())), workload, environment, excluded)


def expand(matrix: Matrix, table: Table) -> list[Cell]:
    """Every cell of the matrix: CPU environments first, then GPU ones; workloads within each."""
    cells = {}
    for axes, environment, excluded in [*_cpu_environments(matrix), *_gpu_environments(matrix, table)]:
        for workload in matrix.workloads:
            cell = make_cell(axes, workload, environment, excluded)
            if cell.id in cells:
                raise UserError(f"{matrix.path}: cell {cell.id} comes out of the matrix twice: check gpu.include for repeated entries")
            cells[cell.id] = cell
    return list(cells.values())


def _cpu_environments(matrix: Matrix):
    cpu = matrix.cpu
    for tensorflow in cpu.tensorflow if cpu else ():
        axes = {"kind": "cpu", "framework": "tensorflow", "framework_version": tensorflow}
        if cpu.keras:
            axes["keras"] = cpu.keras
        yield axes, environment_for(axes, cpu.base_image), ""


def _gpu_environments(matrix: Matrix, table: Table):
    if matrix.gpu is None:
        return
    for combination in gpu_combinations(matrix.gpu, matrix.path):
        cuda, cudnn, tensorflow = (combination[axis] for axis in GPU_AXES)
        axes = {"kind": "gpu", "framework": "tensorflow", "framework_version": tensorflow, "cuda": cuda, "cudnn": cudnn}
        keras = combination.get("keras", matrix.gpu.keras or "")
        if keras:
            axes["keras"] = keras
        excluded = exclusion(table, cuda, cudnn, tensorflow) or ""
        base = table.cuda.get(cuda)
        environment = environment_for(axes, base.base_image if base else "", "" if excluded else cudnn_source(table, cuda, cudnn))
        yield axes, environment, excluded


def gpu_combinations(gpu: GpuImages, path: Path) -> list[dict[str, str]]:
    """The axes' product, then exclude, then include, as GitHub Actions matrices do.

    An exclude entry removes every combination that matches all its keys. An
    include entry extends each combination whose axis values it does not
    contradict (its other keys, such as keras, are added); if it extends none,
    it becomes a combination of its own and must then name every axis.
    """
    combinations = [
        {"cuda": cuda, "cudnn": cudnn, "tensorflow": tensorflow}
        for cuda in gpu.cuda for tensorflow in gpu.tensorflow for cudnn in gpu.cudnn
    ]
    combinations = [c for c in combinations if not any(_matches_all(c, dict(entry)) for entry in gpu.exclude)]
    originals = list(combinations)
    for index, entry in enumerate(map(dict, gpu.include)):
        axes = {k: v for k, v in entry.items() if k in GPU_AXES}
        extended = [c for c in originals if _matches_all(c, axes)]
        for combination in extended:
            combination.update(entry)
        if not extended:
            if set(axes) != set(GPU_AXES):
                raise UserError(f"{path}: gpu.include[{index}]: expected cuda, cudnn and tensorflow, since it extends no combination and so adds a cell of its own")
            combinations.append(entry)
    return combinations


def _matches_all(combination: dict[str, str], entry: dict[str, str]) -> bool:
    return all(combination.get(key) == value for key, value in entry.items())


def matches(cell: Cell, pattern: str | None) -> bool:
    """-k PATTERN: a glob matched anywhere in the cell id, so a plain word selects by substring."""
    return pattern is None or fnmatchcase(cell.id, f"*{pattern}*")


def environments_of(cells: list[Cell]) -> list[EnvironmentSpec]:
    """The distinct environments the cells need, in first-use order."""
    return list(dict.fromkeys(cell.environment for cell in cells))
