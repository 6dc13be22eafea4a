"""What a cell's software environment is made of, as data: a base, requirements, variables.

Pure: no files, no Docker. Every executor builds the same spec its own way (an
image for Docker), so the install recipe is written once, here, and the spec's
content is what names and hashes an environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from workload.contract import FRAMEWORKS

# pynvml, through which the workload's telemetry reads GPU energy, clocks and throttling (workload/telemetry_sampler.py).
# Pure Python; it loads the driver's libnvidia-ml.so.1 at run time, so any release works with any driver.
NVML_REQUIREMENT = "nvidia-ml-py>=12"


@dataclass(frozen=True)
class EnvironmentSpec:
    """One environment, shared by every cell whose build axes agree."""

    kind: str  # "cpu" or "gpu": which recipe builds it
    name: str  # cpu-tf2.21, gpu-cuda12.6-cudnn9.3-tf2.21
    base: str  # the base image (for Docker) the recipe starts from
    requirements: tuple[str, ...]  # pip requirements, installed together
    libraries: tuple[str, ...] = ()  # pip requirements installed without dependencies, first on the loader path (a pinned cuDNN)
    variables: tuple[tuple[str, str], ...] = ()  # set for every run of the workload
    lock: str = ""  # the digest of the lock (runner/locks.py) its requirements were pinned from, if they were

    def describe(self) -> dict:
        """The spec as `list --json` shows it."""
        return {"name": self.name, "base": self.base, "requirements": list(self.requirements),
                "libraries": list(self.libraries), "variables": dict(self.variables), "lock": self.lock or None}


def environment_name(axes: dict[str, str]) -> str:
    """The name of the environment the build axes describe; a cell's id is this and its workload's name."""
    parts = [axes["kind"]]
    parts += [f"{axis}{axes[axis]}" for axis in ("cuda", "cudnn") if axis in axes]
    parts.append(FRAMEWORKS[axes["framework"]].short + axes["framework_version"])
    if "keras" in axes:
        parts.append(f"keras{axes['keras']}")
    return "-".join(parts)


def environment_for(axes: dict[str, str], base: str, keras: str = "", cudnn_requirement: str = "") -> EnvironmentSpec:
    """The recipe: the framework (and Keras) from PyPI, a pinned cuDNN on its own, the Keras backend named.

    Plain tensorflow, never tensorflow[and-cuda]: the extra would bring pip
    copies of CUDA and cuDNN that shadow the base image's, and the cell would
    not time the versions it names. torch's PyPI build and jax[cudaN] bring
    their own CUDA libraries; their cuDNN is pinned to the cell's minor. GPU
    environments also get nvidia-ml-py, for the workload's telemetry.
    """
    framework, version = axes["framework"], axes["framework_version"]
    package = framework
    if framework == "jax" and axes["kind"] == "gpu":
        package = f"jax[cuda{axes['cuda'].split('.')[0]}]"
    # Pillow decodes JPEGs for the framework-neutral loader (workload/python_input.py); TensorFlow uses its own.
    requirements = [f"{package}=={version}.*"] + ([f"keras=={keras}.*"] if keras else []) + ["pillow>=10"]
    if axes["kind"] == "gpu":
        requirements.append(NVML_REQUIREMENT)
    variables = {"KERAS_BACKEND": framework}
    if framework == "tensorflow":
        variables["TF_CPP_MIN_LOG_LEVEL"] = "1"
    return EnvironmentSpec(
        kind=axes["kind"],
        name=environment_name(axes),
        base=base,
        requirements=tuple(requirements),
        libraries=(cudnn_requirement,) if cudnn_requirement else (),
        variables=tuple(sorted(variables.items())),
    )
