"""Stage 2: Matrix -> ordered cells. Pure: no files, no Docker.

A cell is one workload on one image. Cells that need the same image share one
ImageSpec (and so one build): the image axes are the build axes, the workloads
are the run axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from runner.compatibility import Table, cudnn_source, exclusion
from runner.config import GPU_AXES, GpuImages, Matrix, Workload
from runner.errors import UserError

IMAGE_NAMESPACE = "cudnn-matrix"


@dataclass(frozen=True)
class ImageSpec:
    """What one image is built from: a Dockerfile of its kind and the build ARGs."""

    kind: str
    name: str
    dockerfile: str
    build_args: tuple[tuple[str, str], ...]

    @property
    def repository(self) -> str:
        return f"{IMAGE_NAMESPACE}/{self.name}"

    @property
    def base_image(self) -> str:
        return dict(self.build_args)["BASE_IMAGE"]

    def with_base(self, base_image: str) -> "ImageSpec":
        args = tuple((k, base_image if k == "BASE_IMAGE" else v) for k, v in self.build_args)
        return ImageSpec(self.kind, self.name, self.dockerfile, args)


@dataclass(frozen=True)
class Cell:
    id: str
    kind: str
    image: ImageSpec
    workload: Workload
    tensorflow: str
    cuda: str = ""
    cudnn: str = ""
    excluded: str = ""  # why the compatibility table rules the cell out; "" when it runs


def expand(matrix: Matrix, table: Table) -> list[Cell]:
    """Every cell of the matrix: CPU images first, then GPU ones; workloads within each image."""
    cells = {}
    for image, versions, excluded in [*_cpu_images(matrix), *_gpu_images(matrix, table)]:
        for workload in matrix.workloads:
            cell = Cell(f"{image.name}-{workload.name}", image.kind, image, workload, excluded=excluded, **versions)
            if cell.id in cells:
                raise UserError(f"{matrix.path}: cell {cell.id} comes out of the matrix twice: check gpu.include for repeated entries")
            cells[cell.id] = cell
    return list(cells.values())


def _cpu_images(matrix: Matrix):
    cpu = matrix.cpu
    for tensorflow in cpu.tensorflow if cpu else ():
        args = {"BASE_IMAGE": cpu.base_image, "TENSORFLOW_VERSION": tensorflow, "KERAS_VERSION": cpu.keras or ""}
        name = f"cpu-tf{tensorflow}" + (f"-keras{cpu.keras}" if cpu.keras else "")
        yield ImageSpec("cpu", name, "Dockerfile.cpu", tuple(sorted(args.items()))), {"tensorflow": tensorflow}, ""


def _gpu_images(matrix: Matrix, table: Table):
    if matrix.gpu is None:
        return
    for combination in gpu_combinations(matrix.gpu, matrix.path):
        cuda, cudnn, tensorflow = (combination[axis] for axis in GPU_AXES)
        keras = combination.get("keras", matrix.gpu.keras or "")
        excluded = exclusion(table, cuda, cudnn, tensorflow) or ""
        base = table.cuda.get(cuda)
        args = {
            "BASE_IMAGE": base.base_image if base else "",
            "TENSORFLOW_VERSION": tensorflow,
            "KERAS_VERSION": keras,
            "CUDNN_PIP": "" if excluded else cudnn_source(table, cuda, cudnn),
        }
        name = f"gpu-cuda{cuda}-cudnn{cudnn}-tf{tensorflow}" + (f"-keras{keras}" if keras else "")
        image = ImageSpec("gpu", name, "Dockerfile.gpu", tuple(sorted(args.items())))
        yield image, {"tensorflow": tensorflow, "cuda": cuda, "cudnn": cudnn}, excluded


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


def images_of(cells: list[Cell]) -> list[ImageSpec]:
    """The distinct images the cells need, in first-use order."""
    return list(dict.fromkeys(cell.image for cell in cells))
