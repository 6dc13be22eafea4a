"""The compatibility table (compatibility.yaml) and the rules the frameworks apply at run time.

The table is data with its sources cited in the file; the rules below are the
few that decide whether a (CUDA, cuDNN, framework) cell can measure anything:

- the loaded cuDNN must have the major the framework was built with, or
  TensorFlow silently skips the GPU and trains on the CPU (torch refuses);
- and an equal or higher minor, or TensorFlow fails with "DNN library
  initialization failed" (torch refuses again);
- the CUDA major must match the one the framework was built with;
- the base image's Python must be one the release supports;
- convolutions without cuDNN (`cudnn: false`) exist only in torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from workload.contract import FRAMEWORKS

TABLE_FILE = Path(__file__).with_name("compatibility.yaml")


@dataclass(frozen=True)
class Release:
    framework: str
    version: str
    cuda: str
    cudnn: str
    python: tuple[str, str]
    keras: str  # TensorFlow: the Keras its wheel requires; torch and jax: the Keras 3 release installed beside them

    @property
    def name(self) -> str:
        return f"{FRAMEWORKS[self.framework].title} {self.version}"


@dataclass(frozen=True)
class CudaBase:
    version: str
    base_image: str
    cudnn: str  # the full cuDNN version the base tag carries
    python: str  # the Python its distribution installs


@dataclass(frozen=True)
class Table:
    releases: dict[str, dict[str, Release]]  # framework -> version -> release
    cuda: dict[str, CudaBase]
    cudnn_pip: dict[str, dict[str, str]]  # CUDA major -> cuDNN major.minor -> pip requirement

    @property
    def tensorflow(self) -> dict[str, Release]:
        return self.releases["tensorflow"]

    def newest(self, framework: str, python: str | None = None) -> str:
        """The newest release of the framework, of those that support this Python when one is given."""
        fits = [v for v, r in self.releases[framework].items() if python is None or python_mismatch(r, python, "") is None]
        return max(fits or self.releases[framework], key=major_minor)


def load_table(path: Path = TABLE_FILE) -> Table:
    # libyaml's parser where PyYAML was built with it: seven times as fast, and every plan reads the table.
    data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return Table(
        releases={framework: {v: Release(framework, v, e["cuda"], e["cudnn"], tuple(e["python"]), e["keras"])
                              for v, e in data[framework].items()} for framework in FRAMEWORKS},
        cuda={v: CudaBase(v, e["base_image"], e["cudnn"], e["python"]) for v, e in data["cuda"].items()},
        cudnn_pip={str(major): dict(pins) for major, pins in data["cudnn_pip"].items()},
    )


def major_minor(version: str) -> tuple[int, int]:
    parts = [int(p) for p in version.split(".")]
    return parts[0], (parts[1] if len(parts) > 1 else 0)


def unknown_release(table: Table, framework: str, version: str) -> str | None:
    if version not in table.releases[framework]:
        return f"{FRAMEWORKS[framework].title} {version} is not in the compatibility table (known: {', '.join(table.releases[framework])})"
    return None


def python_mismatch(release: Release, python: str, where: str) -> str | None:
    low, high = release.python
    if not major_minor(low) <= major_minor(python) <= major_minor(high):
        return f"{release.name} supports Python {low}-{high}; {where} has Python {python}"
    return None


def exclusion(table: Table, framework: str, version: str, cuda: str, cudnn: str, installs: bool = True) -> str | None:
    """Why this GPU cell cannot measure what it claims, or None when it can.

    `installs` false: the environment is an interpreter as it is (the local executor), whose framework
    carries its own CUDA and cuDNN; what a build would need — a base image, a pip pin — is then no reason,
    and the workload checks the cuDNN it loaded against the cell's.
    """
    if unknown := unknown_release(table, framework, version):
        return unknown
    release = table.releases[framework][version]
    base = table.cuda.get(cuda)
    if base is None and installs:
        return f"CUDA {cuda} is not in the compatibility table (known: {', '.join(table.cuda)})"
    if major_minor(cuda)[0] != major_minor(release.cuda)[0]:
        return f"{release.name} was built with CUDA {release.cuda}; CUDA {cuda} is another major"
    wanted, built = major_minor(cudnn), major_minor(release.cudnn)
    if wanted[0] != built[0]:
        consequence = ("it would skip the GPU silently and train on the CPU" if framework == "tensorflow"
                       else "it refuses to start")
        return f"{release.name} was built with cuDNN {release.cudnn}; with cuDNN {cudnn} (another major) {consequence}"
    if wanted[1] < built[1]:
        consequence = ('fails with "DNN library initialization failed"' if framework == "tensorflow"
                       else "is refused as incompatible")
        return f"{release.name} was built with cuDNN {release.cudnn}; cuDNN {cudnn} is an older minor and {consequence}"
    if not installs:
        return None
    if cudnn_source(table, framework, cuda, cudnn) is None:
        return f"no way to install cuDNN {cudnn} for CUDA {cuda}: not in the base image ({base.cudnn}) nor in the table's pip pins"
    return python_mismatch(release, base.python, f"the CUDA {cuda} base image")


def without_cudnn(framework: str) -> str | None:
    """Why a framework cannot run convolutions without cuDNN (workload setting cudnn: false), or None for torch."""
    if framework == "torch":
        return None
    return (f"{FRAMEWORKS[framework].title} has no switch to run convolutions on a GPU without cuDNN; "
            "cudnn: false needs the torch backend (the seed's GPU-without-cuDNN row)")


def cudnn_source(table: Table, framework: str, cuda: str, cudnn: str) -> str | None:
    """"" when the environment already carries this cuDNN minor, else the pip requirement that pins it, or None.

    TensorFlow uses the base image's cuDNN; torch and jax bring their own with pip, so theirs is
    always pinned, to exactly the minor the cell names.
    """
    base = table.cuda[cuda]
    if framework == "tensorflow" and major_minor(base.cudnn) == major_minor(cudnn):
        return ""
    return table.cudnn_pip.get(str(major_minor(cuda)[0]), {}).get(cudnn)
