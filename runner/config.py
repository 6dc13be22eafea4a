"""Stage 1: matrix.yaml -> Matrix, validated strictly before anything runs.

Every mistake becomes one UserError line naming the file, the line where YAML knows it, the key path and
what was expected. Versions must be quoted strings: YAML reads an unquoted 12.10 as the float 12.1, which
would silently select another release.

The file is read by the strict YAML reader (yaml_reader.py); the workloads: section is checked in workloads.py,
the slurm: and hosts: sections and placement: in dispatch_settings.py, CA certificates in certificates.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import certificates
from runner.dispatch_settings import SLURM_DEFAULTS, SlurmSettings, hosts_section, placement_setting, slurm_section
from runner.yaml_reader import Document, dotted, read_strict_yaml, shown
from runner.workloads import FOLDER_PATH, Workload, workloads_section
from workload.contract import FRAMEWORKS

# Patterns are only ever applied with fullmatch: with match, "$" also matches before a final newline.
VERSION = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}")
IMAGE_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
DEBIAN_MIRROR = re.compile(r"(https?|file)://[^\s'\"]+")
GPU_DEVICES = re.compile(r"all|none|[0-9]+(,[0-9]+)*")
GPU_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # a Slurm gres type: h100, a100_80gb, nvidia_h100_80gb_hbm3
MEMORY = re.compile(r"([1-9][0-9]{0,12})([kmg])")
DEFAULT_CPU_BASE = "python:3.11-slim"

# Upper bounds: a typo such as an extra three zeros is refused here, not discovered hours into a run.
MAX_REPEATS = 100  # run --repeats
DEFAULT_REPEATS = 5  # fresh processes per cell: enough for Holm-corrected verdicts on a report of ~20 comparisons (docs/statistics.md)
MIN_MEMORY_BYTES = 6 * 1024**2  # Docker refuses to start a container with less
MAX_MEMORY_BYTES = 1024**4
MEMORY_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
MAX_PIDS = 65536  # the kernel refuses more than 4194304; a benchmark needs a few hundred


# Which frameworks (Keras backends) to run, in the matrix's order, each with its versions (None: the compatibility table's newest).
Frameworks = tuple[tuple[str, tuple[str, ...] | None], ...]


@dataclass(frozen=True)
class CpuImages:
    base_image: str
    frameworks: Frameworks
    keras: str | None


@dataclass(frozen=True)
class GpuImages:
    """The GPU axes. include/exclude follow GitHub Actions matrix semantics (see cells.py)."""

    cuda: tuple[str, ...]
    cudnn: tuple[str, ...]
    frameworks: Frameworks
    keras: str | None
    include: tuple[tuple[tuple[str, str], ...], ...]
    exclude: tuple[tuple[tuple[str, str], ...], ...]
    devices: str  # "all", "none" (run without a GPU: to test recipes), or GPU indices "0,1"
    gpu_types: tuple[str, ...] = ()  # gpu_type: GPU models as Slurm names them (gres types); each GPU cell once per type


@dataclass(frozen=True)
class BuildSettings:
    offline_base: bool
    ca_certificates: tuple[Path, ...]
    debian_mirror: str


@dataclass(frozen=True)
class Limits:
    """What one benchmark container may use: it runs with no network and no privileges either way."""

    memory: str  # as Docker takes it: "16g"
    pids: int




@dataclass(frozen=True)
class Matrix:
    path: Path
    workloads: tuple[Workload, ...]
    cpu: CpuImages | None
    gpu: GpuImages | None
    build: BuildSettings
    limits: Limits
    repeats: int  # fresh processes per cell: the unit the report's statistics count
    slurm: SlurmSettings = SLURM_DEFAULTS
    hosts: tuple[str, ...] = ()  # remote Docker engines (`run --dispatch ssh`): ssh://user@host[:port], tcp://host:port, or a context name
    placement: str = "spread"  # dispatched runs: "same-node" pins each comparison group to the first node (host) that got it


def load_matrix(path: Path) -> Matrix:
    path = Path(path)
    data, document = read_strict_yaml(path)
    top = document.mapping(data, (), {"workloads"}, {"cpu", "gpu", "build", "limits", "repeats", "slurm", "hosts", "placement"})
    workloads = workloads_section(document, top["workloads"], path.parent)
    if "cpu" not in top and "gpu" not in top:
        raise document.error(("cpu",), "at least one kind of image (cpu or gpu) to run the workloads on")
    cpu = _cpu(document, top["cpu"]) if "cpu" in top else None
    gpu = _gpu(document, top["gpu"]) if "gpu" in top else None
    build = _build(document, top.get("build", {}))
    return Matrix(path=path, workloads=workloads, cpu=cpu, gpu=gpu, build=build, limits=_limits(document, top.get("limits", {})),
                  repeats=document.integer(top.get("repeats", DEFAULT_REPEATS), ("repeats",), 1, MAX_REPEATS),
                  slurm=slurm_section(document, top["slurm"]) if "slurm" in top else SLURM_DEFAULTS,
                  hosts=hosts_section(document, top.get("hosts", [])), placement=placement_setting(document, top.get("placement", "spread")))



def _version_list(document: Document, value: Any, key_path: tuple) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise document.error(key_path, 'a non-empty list of quoted versions such as ["2.21"]', value)
    versions = tuple(
        document.string(item, key_path + (index,), VERSION, 'a version in quotes such as "2.21"')
        for index, item in enumerate(value)
    )
    for index, version in enumerate(versions):
        if version in versions[:index]:
            raise document.error(key_path + (index,), "each version once", found=f"{shown(version)} a second time")
    return versions


def _cpu(document: Document, value: Any) -> CpuImages:
    settings = document.mapping(value, ("cpu",), required=set(), optional={"base_image", "keras", "backend", *FRAMEWORKS})
    keras = settings.get("keras")
    return CpuImages(
        base_image=document.string(settings.get("base_image", DEFAULT_CPU_BASE), ("cpu", "base_image"), IMAGE_REFERENCE, "an image reference such as python:3.11-slim"),
        frameworks=_frameworks(document, settings, ("cpu",)),
        keras=None if keras is None else document.string(keras, ("cpu", "keras"), VERSION, 'a version in quotes such as "3.12"'),
    )


def _frameworks(document: Document, settings: dict, key_path: tuple) -> Frameworks:
    """`backend: [tensorflow, torch, jax]` (default: those whose versions are listed, else tensorflow), each with its versions.

    The matrix says `backend`, as Keras (KERAS_BACKEND) and its users do; everywhere past this reader the axis is `framework`.
    """
    listed = [framework for framework in FRAMEWORKS if framework in settings]
    chosen = settings.get("backend", listed or ["tensorflow"])
    if not isinstance(chosen, list) or not chosen or any(b not in FRAMEWORKS for b in chosen) or len(set(chosen)) != len(chosen):
        raise document.error(key_path + ("backend",), f"a list of Keras backends, each once, from {', '.join(FRAMEWORKS)}", chosen)
    for framework in listed:
        if framework not in chosen:
            raise document.error(key_path + (framework,), f"{framework} in {dotted(key_path + ('backend',))}, since its versions are listed",
                                 found=f"backend {chosen}")
    return tuple((framework, _version_list(document, settings[framework], key_path + (framework,)) if framework in settings else None)
                 for framework in chosen)


GPU_AXES = ("cuda", "cudnn")  # and one backend's version: an include that adds a cell names all three
GPU_TYPE_AXIS = "gpu_type"  # a run axis: the GPU model a cell is timed on, as Slurm names it (its gres type)


def _gpu(document: Document, value: Any) -> GpuImages:
    settings = document.mapping(value, ("gpu",), required=set(GPU_AXES),
                                optional={"keras", "include", "exclude", "devices", "gpu_type", "backend", *FRAMEWORKS})
    keras = settings.get("keras")
    keys = GPU_AXES + tuple(FRAMEWORKS) + ("keras", GPU_TYPE_AXIS)
    gpu_types = _gpu_types(document, settings["gpu_type"]) if "gpu_type" in settings else ()
    exclude = _combinations(document, settings.get("exclude", []), ("gpu", "exclude"), keys)
    for index, entry in enumerate(map(dict, exclude)):
        if GPU_TYPE_AXIS in entry and entry[GPU_TYPE_AXIS] not in gpu_types:
            listed = f"one of the types gpu.gpu_type lists ({', '.join(gpu_types)})" if gpu_types else "gpu.gpu_type to list the GPU types first"
            raise document.error(("gpu", "exclude", index, GPU_TYPE_AXIS), listed, entry[GPU_TYPE_AXIS])
    images = GpuImages(
        cuda=_version_list(document, settings["cuda"], ("gpu", "cuda")),
        cudnn=_version_list(document, settings["cudnn"], ("gpu", "cudnn")),
        frameworks=_frameworks(document, settings, ("gpu",)),
        keras=None if keras is None else document.string(keras, ("gpu", "keras"), VERSION, 'a version in quotes such as "3.12"'),
        include=_combinations(document, settings.get("include", []), ("gpu", "include"), keys),
        exclude=exclude,
        devices=devices(settings.get("devices", "all"), lambda expected, got: document.error(("gpu", "devices"), expected, got)),
        gpu_types=gpu_types,
    )
    _check_excluded_values(document, images)
    return images


def _check_excluded_values(document: Document, images: GpuImages) -> None:
    """An exclude names values the axes list: one that names another (a typo) would exclude nothing, silently."""
    listed = {"cuda": images.cuda, "cudnn": images.cudnn, **{framework: versions for framework, versions in images.frameworks if versions}}
    if images.keras:
        listed["keras"] = (images.keras,)
    chosen = {framework for framework, _ in images.frameworks}
    for index, entry in enumerate(map(dict, images.exclude)):
        for axis, value in entry.items():
            if axis in FRAMEWORKS and axis not in chosen:
                raise document.error(("gpu", "exclude", index, axis), f"a backend gpu.backend lists ({', '.join(sorted(chosen))})", found=axis)
            if axis in listed and value not in listed[axis]:
                raise document.error(("gpu", "exclude", index, axis), f"one of the values gpu.{axis} lists ({', '.join(listed[axis])})", value)


def _gpu_types(document: Document, value: Any) -> tuple[str, ...]:
    """gpu.gpu_type: the GPU models to time each GPU cell on, as the cluster's Slurm names them (its gres types)."""
    key_path = ("gpu", "gpu_type")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise document.error(key_path, 'a list of GPU types as Slurm names them, such as ["h100", "h200"]', value)
    types = tuple(document.string(item, key_path + (index,), GPU_TYPE, "a GPU type of letters, digits, _ . and - such as h100")
                  for index, item in enumerate(value))
    for index, name in enumerate(types):
        if name in types[:index]:
            raise document.error(key_path + (index,), "each GPU type once", found=f"{shown(name)} a second time")
    return types



def _combinations(document: Document, value: Any, key_path: tuple, keys: tuple[str, ...]) -> tuple:
    if not isinstance(value, list):
        raise document.error(key_path, "a list of mappings such as {cuda: \"12.5\", cudnn: \"9.3\"}", value)
    combinations = []
    for index, item in enumerate(value):
        entry = document.mapping(item, key_path + (index,), required=set(), optional=set(keys))
        if not entry:
            raise document.error(key_path + (index,), f"at least one of {', '.join(keys)}", entry)
        pairs = {key: document.string(entry[key], key_path + (index, key), VERSION, 'a version in quotes such as "9.3"') if key != GPU_TYPE_AXIS
                 else document.string(entry[key], key_path + (index, key), GPU_TYPE, "a GPU type of letters, digits, _ . and - such as h100")
                 for key in entry}
        combinations.append(tuple(sorted(pairs.items())))
    return tuple(combinations)


def devices(value: Any, error) -> str:
    """all, none, or GPU indices (a list of numbers, or "0,1"): which GPUs GPU cells get."""
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, str) and GPU_DEVICES.fullmatch(value):
        return value
    raise error('all, none, or GPU indices such as [0, 1] or "0,1"', value)


def _limits(document: Document, value: Any) -> Limits:
    """Checked against what the engine accepts, so that a bad limit fails here and not at the first container."""
    settings = document.mapping(value, ("limits",), required=set(), optional={"memory", "pids"})
    memory = settings.get("memory", "16g")
    size = MEMORY.fullmatch(memory) if isinstance(memory, str) else None
    if not size or not MIN_MEMORY_BYTES <= int(size[1]) * MEMORY_UNITS[size[2]] <= MAX_MEMORY_BYTES:
        raise document.error(("limits", "memory"), 'a size such as "16g" or "512m", from 6m (Docker\'s least) to 1024g', memory)
    return Limits(memory=memory, pids=document.integer(settings.get("pids", 4096), ("limits", "pids"), 64, MAX_PIDS))


def _build(document: Document, value: Any) -> BuildSettings:
    settings = document.mapping(value, ("build",), required=set(), optional={"offline_base", "ca_certificates", "debian_mirror"})
    mirror = settings.get("debian_mirror", "http://deb.debian.org/debian")
    if not isinstance(mirror, str) or not DEBIAN_MIRROR.fullmatch(mirror):
        raise document.error(("build", "debian_mirror"), "an http(s) or file URL of a Debian mirror", mirror)
    return BuildSettings(
        offline_base=document.boolean(settings.get("offline_base", False), ("build", "offline_base")),
        ca_certificates=_ca_certificates(document, settings.get("ca_certificates", "host"), document.path.parent),
        debian_mirror=mirror,
    )


def _ca_certificates(document: Document, value: Any, base_dir: Path) -> tuple[Path, ...]:
    """The host's locally added CAs by default: what a TLS-intercepting proxy needs trusted.

    Each file is copied into every image, so only certificates pass: not /etc/shadow, not a private key.
    """
    key_path = ("build", "ca_certificates")
    if value == "host":
        paths = certificates.host_certificates()
        for path in paths:
            if problem := certificates.certificate_problem(path):
                raise document.error(key_path, f'only PEM certificates in {certificates.DEFAULT_CA_CERTIFICATES} (what "host" trusts)',
                                     found=f"{path} ({problem})")
        return paths
    if not isinstance(value, list):
        raise document.error(key_path, '"host" or a list of PEM certificate files', value)
    paths = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not FOLDER_PATH.fullmatch(item):
            raise document.error(key_path + (index,), "a readable PEM certificate file", item)
        path, _ = document.named_path(item, key_path + (index,), base_dir, "a readable PEM certificate file")
        if problem := certificates.certificate_problem(path):
            raise document.error(key_path + (index,), "a readable PEM certificate file", found=f"{path} ({problem})")
        paths.append(path)
    return tuple(paths)

