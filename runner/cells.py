"""Stage 2: Matrix -> ordered cells. Pure: no files, no Docker.

A cell is one workload on one image. Cells that need the same image share one
ImageSpec (and so one build): the image axes are the build axes, the workloads
are the run axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from runner.config import Matrix, Workload

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


def expand(matrix: Matrix) -> list[Cell]:
    """Every cell of the matrix, images in file order, workloads within each image."""
    cells = []
    for image, tensorflow in _cpu_images(matrix):
        for workload in matrix.workloads:
            cells.append(Cell(f"{image.name}-{workload.name}", image.kind, image, workload, tensorflow))
    return cells


def _cpu_images(matrix: Matrix):
    cpu = matrix.cpu
    for tensorflow in cpu.tensorflow:
        args = {"BASE_IMAGE": cpu.base_image, "TENSORFLOW_VERSION": tensorflow, "KERAS_VERSION": cpu.keras or ""}
        name = f"cpu-tf{tensorflow}" + (f"-keras{cpu.keras}" if cpu.keras else "")
        yield ImageSpec("cpu", name, "Dockerfile.cpu", tuple(sorted(args.items()))), tensorflow


def matches(cell: Cell, pattern: str | None) -> bool:
    """-k PATTERN: a glob matched anywhere in the cell id, so a plain word selects by substring."""
    return pattern is None or fnmatchcase(cell.id, f"*{pattern}*")


def images_of(cells: list[Cell]) -> list[ImageSpec]:
    """The distinct images the cells need, in first-use order."""
    return list(dict.fromkeys(cell.image for cell in cells))
