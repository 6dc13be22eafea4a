"""The compatibility table (compatibility.yaml) and the rules TensorFlow applies at run time.

The table is data with its sources cited in the file; the rules below are the
few that decide whether a (CUDA, cuDNN, TensorFlow) cell can measure anything:

- the loaded cuDNN must have the major TensorFlow was built with, or TF
  silently skips the GPU and trains on the CPU;
- and an equal or higher minor, or TF fails with "DNN library initialization
  failed";
- the CUDA major must match the one TensorFlow was built with;
- the base image's Python must be one the TensorFlow release supports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

TABLE_FILE = Path(__file__).with_name("compatibility.yaml")


@dataclass(frozen=True)
class TensorflowRelease:
    version: str
    cuda: str
    cudnn: str
    python: tuple[str, str]
    keras: str


@dataclass(frozen=True)
class CudaBase:
    version: str
    base_image: str
    cudnn: str  # the full cuDNN version the base tag carries
    python: str  # the Python its distribution installs


@dataclass(frozen=True)
class Table:
    tensorflow: dict[str, TensorflowRelease]
    cuda: dict[str, CudaBase]
    cudnn_pip: dict[str, dict[str, str]]  # CUDA major -> cuDNN major.minor -> pip requirement


def load_table(path: Path = TABLE_FILE) -> Table:
    data = yaml.safe_load(path.read_text())
    return Table(
        tensorflow={v: TensorflowRelease(v, e["cuda"], e["cudnn"], tuple(e["python"]), e["keras"]) for v, e in data["tensorflow"].items()},
        cuda={v: CudaBase(v, e["base_image"], e["cudnn"], e["python"]) for v, e in data["cuda"].items()},
        cudnn_pip={str(major): dict(pins) for major, pins in data["cudnn_pip"].items()},
    )


def major_minor(version: str) -> tuple[int, int]:
    parts = [int(p) for p in version.split(".")]
    return parts[0], (parts[1] if len(parts) > 1 else 0)


def exclusion(table: Table, cuda: str, cudnn: str, tensorflow: str) -> str | None:
    """Why this cell cannot measure what it claims, or None when it can."""
    release = table.tensorflow.get(tensorflow)
    if release is None:
        return f"TensorFlow {tensorflow} is not in the compatibility table (known: {', '.join(table.tensorflow)})"
    base = table.cuda.get(cuda)
    if base is None:
        return f"CUDA {cuda} is not in the compatibility table (known: {', '.join(table.cuda)})"
    if major_minor(cuda)[0] != major_minor(release.cuda)[0]:
        return f"TensorFlow {tensorflow} was built with CUDA {release.cuda}; CUDA {cuda} is another major"
    wanted, built = major_minor(cudnn), major_minor(release.cudnn)
    if wanted[0] != built[0]:
        return (f"TensorFlow {tensorflow} was built with cuDNN {release.cudnn}; with cuDNN {cudnn} (another major) "
                "it would skip the GPU silently and train on the CPU")
    if wanted[1] < built[1]:
        return (f"TensorFlow {tensorflow} was built with cuDNN {release.cudnn}; cuDNN {cudnn} is an older minor and "
                "fails with \"DNN library initialization failed\"")
    if cudnn_source(table, cuda, cudnn) is None:
        return f"no way to install cuDNN {cudnn} for CUDA {cuda}: not in the base image ({base.cudnn}) nor in the table's pip pins"
    low, high = release.python
    if not major_minor(low) <= major_minor(base.python) <= major_minor(high):
        return f"TensorFlow {tensorflow} supports Python {low}-{high}; the CUDA {cuda} base image has Python {base.python}"
    return None


def cudnn_source(table: Table, cuda: str, cudnn: str) -> str | None:
    """"" when the base image carries this cuDNN minor, else the pip requirement that pins it, or None."""
    base = table.cuda[cuda]
    if major_minor(base.cudnn) == major_minor(cudnn):
        return ""
    return table.cudnn_pip.get(str(major_minor(cuda)[0]), {}).get(cudnn)
