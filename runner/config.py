"""Stage 1: matrix.yaml -> Matrix, validated strictly before anything runs.

Every mistake becomes one UserError line naming the file, the line where YAML
knows it, the key path and what was expected. Versions must be quoted strings:
YAML reads an unquoted 12.10 as the float 12.1, which would silently select
another release.
"""

from __future__ import annotations

import difflib
import glob
import math
import os
import re
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.errors import UserError
from workload.contract import FAULTS, FRAMEWORKS, INPUTS, LOADERS, PRECISIONS, Pipeline

# The seed's two models and their defaults: the seed's batch sizes and data set sizes.
MODELS = {
    "dogs-vs-cats": {"batch_size": 32, "train_images": 2000, "validation_images": 800},
    "mnist": {"batch_size": 128, "train_images": 60000, "validation_images": 10000},
}
# Patterns are only ever applied with fullmatch: with match, "$" also matches before a final newline.
WORKLOAD_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
VERSION = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}")
IMAGE_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
FOLDER_PATH = re.compile(r"[^\x00-\x1f\x7f]{1,4096}")  # a NUL would otherwise escape pathlib as a ValueError
DEBIAN_MIRROR = re.compile(r"(https?|file)://[^\s'\"]+")
GPU_DEVICES = re.compile(r"all|none|[0-9]+(,[0-9]+)*")
GPU_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # a Slurm gres type: h100, a100_80gb, nvidia_h100_80gb_hbm3
SLURM_NAMES = re.compile(r"[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64}){0,15}")  # a partition (or several, comma-separated), an account
# Slurm's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; or no limit.
SLURM_TIME = re.compile(r"[0-9]{1,6}|[0-9]{1,6}:[0-9]{2}|[0-9]{1,4}:[0-9]{2}:[0-9]{2}|[0-9]{1,4}-[0-9]{1,2}(:[0-9]{2}(:[0-9]{2})?)?|UNLIMITED|INFINITE")
SBATCH_OPTION = re.compile(r"--[a-z][a-z0-9-]{0,40}(=[^\s]{1,256})?")
# What the dispatcher sets itself, from the matrix and the cell: given in slurm.options they would contradict it.
SBATCH_OWN_OPTIONS = ("account", "chdir", "error", "exclusive", "export", "gpus", "gres", "input", "job-name", "no-requeue",
                      "nodes", "ntasks", "output", "parsable", "partition", "requeue", "signal", "time", "wrap")
MEMORY = re.compile(r"([1-9][0-9]{0,12})([kmg])")
DEFAULT_CA_CERTIFICATES = "/usr/local/share/ca-certificates/**/*.crt"
DEFAULT_CPU_BASE = "python:3.11-slim"

# Upper bounds: a typo such as an extra three zeros is refused here, not discovered hours into a run.
MAX_MATRIX_BYTES = 1024 * 1024
MAX_NESTING = 20  # a matrix nests 4 deep; PyYAML recurses once per level and would overflow Python's stack
MAX_EPOCHS = 1000
MAX_IMAGES = 100_000  # per split: MNIST has 60000 training images, Kaggle's Dogs vs Cats 25000
MAX_BATCH_SIZE = 4096
MAX_THREADS = 1024  # intra/inter-op threads and parallel calls
MAX_PREFETCH_BATCHES = 1024
MAX_TIMEOUT_MINUTES = 7 * 24 * 60
MAX_REPEATS = 100  # run --repeats
DEFAULT_REPEATS = 5  # the fewest with which a Mann-Whitney U test can show a difference at p < 0.05 with room to spare
MIN_MEMORY_BYTES = 6 * 1024**2  # Docker refuses to start a container with less
MAX_MEMORY_BYTES = 1024**4
MEMORY_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
MAX_PIDS = 65536  # the kernel refuses more than 4194304; a benchmark needs a few hundred
MAX_CERTIFICATE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Workload:
    """One model to train, with the parameters every cell runs it with."""

    name: str
    model: str
    epochs: int
    warmup_epochs: int
    batch_size: int
    train_images: int
    validation_images: int
    data_dir: Path
    jit_compile: str  # auto (each backend as Keras runs it by default), on or off
    intra_op_threads: int
    inter_op_threads: int
    timeout_minutes: float
    fault: str
    pipeline: Pipeline
    precision: str  # fp32, tf32 or bf16: set explicitly on every backend, whatever its default
    cudnn: bool  # false: convolutions without cuDNN (torch only: the seed's GPU-without-cuDNN row)
    conv_autotune: bool  # let cuDNN (TensorFlow, torch) or XLA (jax) time convolution algorithms and pick
    loader: str  # auto, tfdata or python: the input pipeline


# Which Keras backends to run, in the matrix's order, each with its versions (None: the compatibility table's newest).
Backends = tuple[tuple[str, tuple[str, ...] | None], ...]


@dataclass(frozen=True)
class CpuImages:
    base_image: str
    backends: Backends
    keras: str | None


@dataclass(frozen=True)
class GpuImages:
    """The GPU axes. include/exclude follow GitHub Actions matrix semantics (see cells.py)."""

    cuda: tuple[str, ...]
    cudnn: tuple[str, ...]
    backends: Backends
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
class SlurmSettings:
    """How `run --dispatch slurm` asks Slurm for nodes: one job per cell and repeat."""

    partition: str | None  # None: the cluster's default partition
    gpu_partition: str | None  # for GPU cells; None: partition
    account: str | None
    time: str | None  # sbatch --time; None: the partition's default limit
    exclusive: bool  # GPU cells get whole nodes too (CPU cells always do)
    options: tuple[str, ...]  # further sbatch options, passed as they are: ("--qos=high",)
    poll_seconds: float  # how often squeue is asked about the jobs


SLURM_DEFAULTS = SlurmSettings(partition=None, gpu_partition=None, account=None, time=None, exclusive=True, options=(), poll_seconds=5.0)


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


_MISSING = object()


class _Document:
    """The parsed file plus where each key stands in it, for error lines."""

    def __init__(self, path: Path, lines: dict[tuple, int]):
        self.path = path
        self.lines = lines

    def error(self, key_path: tuple, expected: str, got: Any = _MISSING, found: str | None = None) -> UserError:
        """One line: file:line: key.path: expected X, got Y (found overrides the description of got)."""
        line = self.lines.get(key_path)
        where = f"{self.path}:{line}" if line else str(self.path)
        message = f"{where}: {_dotted(key_path) or '(top level)'}: expected {expected}"
        if found is not None:
            message += f", got {found}"
        elif got is not _MISSING:
            message += f", got {describe(got)}"
        return UserError(message)

    def mapping(self, value: Any, key_path: tuple, required: set[str], optional: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.error(key_path, "a mapping", value)
        allowed = required | optional
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1) if isinstance(key, str) else []
                listed = ", ".join(sorted(allowed))
                expected = f"one of {listed}" if len(listed) <= 120 or not close else "a known key"
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(key_path + (key,), expected + hint, found=f"unknown key {shown(key)}")
        for key in sorted(required - set(value)):
            raise self.error(key_path + (key,), "this key to be present")
        return value

    def integer(self, value: Any, key_path: tuple, minimum: int, maximum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.error(key_path, f"a whole number from {minimum} to {maximum}", value)
        return value

    def boolean(self, value: Any, key_path: tuple) -> bool:
        if not isinstance(value, bool):
            raise self.error(key_path, "true or false", value)
        return value

    def string(self, value: Any, key_path: tuple, pattern: re.Pattern, what: str) -> str:
        if isinstance(value, float):
            raise self.error(key_path, f"{what} (YAML reads an unquoted 12.10 as 12.1)", value)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.error(key_path, what, value)
        return value

    def version_list(self, value: Any, key_path: tuple) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(key_path, 'a non-empty list of quoted versions such as ["2.21"]', value)
        versions = tuple(
            self.string(item, key_path + (index,), VERSION, 'a version in quotes such as "2.21"')
            for index, item in enumerate(value)
        )
        for index, version in enumerate(versions):
            if version in versions[:index]:
                raise self.error(key_path + (index,), "each version once", found=f"{shown(version)} a second time")
        return versions


def load_matrix(path: Path) -> Matrix:
    path = Path(path)
    data, lines = _parse_yaml(path, _read_matrix(path))
    document = _Document(path, lines)
    top = document.mapping(data, (), {"workloads"}, {"cpu", "gpu", "build", "limits", "repeats", "slurm", "hosts"})
    workloads = _workloads(document, top["workloads"], path.parent)
    if "cpu" not in top and "gpu" not in top:
        raise document.error(("cpu",), "at least one kind of image (cpu or gpu) to run the workloads on")
    cpu = _cpu(document, top["cpu"]) if "cpu" in top else None
    gpu = _gpu(document, top["gpu"]) if "gpu" in top else None
    build = _build(document, top.get("build", {}))
    return Matrix(path=path, workloads=workloads, cpu=cpu, gpu=gpu, build=build, limits=_limits(document, top.get("limits", {})),
                  repeats=document.integer(top.get("repeats", DEFAULT_REPEATS), ("repeats",), 1, MAX_REPEATS),
                  slurm=_slurm(document, top["slurm"]) if "slurm" in top else SLURM_DEFAULTS,
                  hosts=_hosts(document, top.get("hosts", [])))


# A user and a host begin with a letter or digit, so that ssh never reads one as an option.
HOST = re.compile(r"ssh://(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63}@)?[A-Za-z0-9][A-Za-z0-9._-]{0,252}(?::(?P<ssh_port>[0-9]{1,5}))?"
                  r"|tcp://[A-Za-z0-9][A-Za-z0-9._-]{0,252}:(?P<tcp_port>[0-9]{1,5})|[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HOST_EXPECTED = "ssh://user@host[:port], tcp://host:port (a port from 1 to 65535) or a Docker context name"
MAX_HOSTS = 64


def host_urls(values: list, error) -> tuple[str, ...]:
    """Remote Docker hosts as `hosts:` and `--host` name them, each once; error(index, expected, found) makes the UserError."""
    if len(values) > MAX_HOSTS:
        raise error(None, f"at most {MAX_HOSTS} hosts", str(len(values)))
    for index, value in enumerate(values):
        match = HOST.fullmatch(value) if isinstance(value, str) else None
        port = match and (match.group("ssh_port") or match.group("tcp_port"))
        if not match or (port and not 1 <= int(port) <= 65535):
            raise error(index, HOST_EXPECTED, describe(value))
        if value in values[:index]:
            raise error(index, "each host once", f"{shown(value)} a second time")
    return tuple(values)


def _hosts(document: _Document, value: Any) -> tuple[str, ...]:
    """`hosts:`, the remote Docker engines `run --dispatch ssh` spreads the cells over."""
    if not isinstance(value, list):
        raise document.error(("hosts",), f"a list of at most {MAX_HOSTS} hosts such as [ssh://me@box1, tcp://box2:2376]", value)
    return host_urls(value, lambda index, expected, found: document.error(("hosts",) if index is None else ("hosts", index), expected, found=found))


def _read_matrix(path: Path) -> str:
    """The file's text, reading at most one byte past the limit: a huge file (or a pipe that never ends) is refused unread."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_MATRIX_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the matrix file: {getattr(error, 'strerror', None) or error}")
    if len(raw) > MAX_MATRIX_BYTES:
        raise UserError(f"{path}: over {MAX_MATRIX_BYTES} bytes; a matrix file is expected to be under {MAX_MATRIX_BYTES} bytes")
    return text


def _parse_yaml(path: Path, text: str) -> tuple[Any, dict[tuple, int]]:
    try:
        # First, so that the recursive parser below never sees deep nesting.
        _refuse_tags_aliases_and_deep_nesting(path, text)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            lines: dict[tuple, int] = {}
            if node is not None:
                _record_lines(path, node, (), lines)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as error:  # a character YAML does not take, such as NUL: it has no mark
        line = text.count("\n", 0, error.position) + 1
        raise UserError(f"{path}:{line}: not valid YAML: the character U+{error.character:04X} is not allowed (YAML takes printable characters only)")
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML: {error.problem or error.context}")
    except (yaml.YAMLError, ValueError, TypeError) as error:
        raise UserError(f"{path}: not valid YAML: {str(error).splitlines()[0]}")
    return data, lines


_OPENING = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSING = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _refuse_tags_aliases_and_deep_nesting(path: Path, text: str) -> None:
    """A matrix is plain data: tags (!!python/..., !!int), anchors/aliases (alias bombs) and deep nesting are refused.

    The scanner is iterative, so nesting is counted here on its tokens before the recursive parser runs.
    """
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.TagToken):
            raise UserError(f"{path}:{token.start_mark.line + 1}: YAML tags such as {''.join(token.value)} are not allowed: write the plain value")
        if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
            raise UserError(f"{path}:{token.start_mark.line + 1}: YAML anchors and aliases (&{token.value}, *{token.value}) are not allowed: write the value out")
        depth += isinstance(token, _OPENING) - isinstance(token, _CLOSING)
        if depth > MAX_NESTING:
            raise UserError(f"{path}:{token.start_mark.line + 1}: nested more than {MAX_NESTING} levels deep; a matrix nests 4")


def _record_lines(path: Path, node: yaml.Node, key_path: tuple, lines: dict[tuple, int]) -> None:
    """Map each key path to its 1-based line, and refuse keys given twice (YAML keeps the last silently)."""
    lines[key_path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                got = shown(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"a {key_node.id}"
                raise UserError(f"{path}:{key_node.start_mark.line + 1}: {_dotted(key_path) or '(top level)'}: expected keys that are plain names, got {got}")
            if key in seen:
                raise UserError(f"{path}:{key_node.start_mark.line + 1}: {_dotted(key_path + (key,))}: given twice")
            seen.add(key)
            _record_lines(path, value_node, key_path + (key,), lines)
            lines[key_path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(path, item, key_path + (index,), lines)


def _workloads(document: _Document, value: Any, base_dir: Path) -> tuple[Workload, ...]:
    if not isinstance(value, dict) or not value:
        raise document.error(("workloads",), f"a mapping of workload names (such as {', '.join(MODELS)}) to settings", value)
    return tuple(_workload(document, name, settings, base_dir) for name, settings in value.items())


def _workload(document: _Document, name: Any, value: Any, base_dir: Path) -> Workload:
    key_path = ("workloads", name)
    if not isinstance(name, str) or not WORKLOAD_NAME.fullmatch(name):
        raise document.error(key_path, "a workload name of lowercase letters, digits and dashes", found=shown(name))
    settings = document.mapping(
        value if value is not None else {},
        key_path,
        required=set(),
        optional={"model", "epochs", "warmup_epochs", "batch_size", "train_images", "validation_images", "data",
                  "jit_compile", "intra_op_threads", "inter_op_threads", "timeout_minutes", "fault",
                  "input", "autotune", "parallel_calls", "prefetch_batches",
                  "precision", "cudnn", "conv_autotune", "loader"},
    )

    def number(key: str, default: int, minimum: int, maximum: int) -> int:
        return document.integer(settings.get(key, default), key_path + (key,), minimum, maximum)

    data = settings.get("data", "data")
    if not isinstance(data, str) or not FOLDER_PATH.fullmatch(data):
        raise document.error(key_path + ("data",), "a folder path without control characters", data)
    model = settings.get("model", name)
    if model not in MODELS:
        if "model" in settings:
            raise document.error(key_path + ("model",), f"a known model ({', '.join(MODELS)})", model)
        raise document.error(key_path, f"a known model ({', '.join(MODELS)}) as the name, or a model: key", found=shown(name))
    defaults = MODELS[model]
    train_images = number("train_images", defaults["train_images"], 2, MAX_IMAGES)
    workload = Workload(
        name=name,
        model=model,
        epochs=number("epochs", 3, 2, MAX_EPOCHS),
        warmup_epochs=number("warmup_epochs", 1, 1, MAX_EPOCHS - 1),
        batch_size=number("batch_size", min(defaults["batch_size"], train_images), 1, MAX_BATCH_SIZE),
        train_images=train_images,
        validation_images=number("validation_images", defaults["validation_images"], 2, MAX_IMAGES),
        data_dir=_data_folder(document, data, key_path + ("data",), base_dir),
        jit_compile=_switch(document, settings.get("jit_compile", "auto"), key_path + ("jit_compile",)),
        intra_op_threads=number("intra_op_threads", 0, 0, MAX_THREADS),
        inter_op_threads=number("inter_op_threads", 0, 0, MAX_THREADS),
        timeout_minutes=_positive_number(document, settings.get("timeout_minutes", 120), key_path + ("timeout_minutes",)),
        fault=_choice(document, settings.get("fault", "none"), key_path + ("fault",), FAULTS),
        pipeline=Pipeline(
            input=_choice(document, settings.get("input", "jpeg"), key_path + ("input",), INPUTS),
            autotune=document.boolean(settings.get("autotune", False), key_path + ("autotune",)),
            parallel_calls=_parallel_calls(document, settings.get("parallel_calls", "auto"), key_path + ("parallel_calls",)),
            prefetch_batches=number("prefetch_batches", 2, 1, MAX_PREFETCH_BATCHES),
        ),
        precision=_choice(document, settings.get("precision", "fp32"), key_path + ("precision",), PRECISIONS),
        cudnn=document.boolean(settings.get("cudnn", True), key_path + ("cudnn",)),
        conv_autotune=document.boolean(settings.get("conv_autotune", False), key_path + ("conv_autotune",)),
        loader=_choice(document, settings.get("loader", "auto"), key_path + ("loader",), ("auto",) + LOADERS),
    )
    if workload.epochs <= workload.warmup_epochs:
        raise document.error(key_path + ("epochs",), f"more epochs than warmup_epochs ({workload.warmup_epochs}), so that some are timed", workload.epochs)
    if workload.batch_size > train_images:  # a batch holds at most an epoch's images: the record would name a size never used
        raise document.error(key_path + ("batch_size",), f"at most train_images ({train_images})", workload.batch_size)
    for key in ("train_images", "validation_images") if model == "dogs-vs-cats" else ():
        if getattr(workload, key) % 2:
            raise document.error(key_path + (key,), "an even number: half cats, half dogs", getattr(workload, key))
    return workload


def _matrix_path(document: _Document, text: str, key_path: tuple, base_dir: Path, expected: str) -> tuple[Path, os.stat_result | None]:
    """A path the matrix names: ~ as a shell expands it, else relative to the matrix's folder; and what is there now (None: nothing yet)."""
    try:
        path = (base_dir / Path(text).expanduser()).resolve()
        return path, path.stat()
    except FileNotFoundError:
        return path, None
    except (OSError, RuntimeError) as error:  # a symlink loop (RuntimeError before Python 3.13), a name too long, a file on the way
        reason = "a symlink loop" if isinstance(error, RuntimeError) else error.strerror or str(error)
        raise document.error(key_path, expected, found=f"{shown(text)} ({reason})")


def _data_folder(document: _Document, text: str, key_path: tuple, base_dir: Path) -> Path:
    """A workload's data folder: one there is, or none yet (synthetic data is made in it), never a file, FIFO or device."""
    expected = "a folder path (made if missing)"
    path, found = _matrix_path(document, text, key_path, base_dir, expected)
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise document.error(key_path, expected, found=f"{shown(text)} ({_file_kind(found.st_mode)})")
    if found is not None and not os.access(path, os.R_OK | os.X_OK):
        raise document.error(key_path, expected, found=f"{shown(text)} (a folder this user cannot read)")
    return path


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a folder")


def _parallel_calls(document: _Document, value: Any, key_path: tuple) -> int:
    """auto (0 in the job spec: as many as the cores the cell may use, which the workload records), or a number."""
    if value == "auto":
        return 0
    return document.integer(value, key_path, 1, MAX_THREADS) if isinstance(value, int) else _choice(document, value, key_path, ("auto",))


def _positive_number(document: _Document, value: Any, key_path: tuple) -> float:
    """Minutes: YAML's .inf and .nan are floats too, and a .nan compares false to everything."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_MINUTES:
        raise document.error(key_path, f"a number of minutes above 0 and at most {MAX_TIMEOUT_MINUTES} (a week)", value)
    return float(value)


def _switch(document: _Document, value: Any, key_path: tuple) -> str:
    """auto, or true/false (YAML booleans, as on/off are too) forcing it: on or off in the job spec."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value != "auto":
        raise document.error(key_path, "auto, true or false", value)
    return value


def _choice(document: _Document, value: Any, key_path: tuple, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise document.error(key_path, f"one of {', '.join(choices)}", value)
    return value


def _cpu(document: _Document, value: Any) -> CpuImages:
    settings = document.mapping(value, ("cpu",), required=set(), optional={"base_image", "keras", "backend", *FRAMEWORKS})
    keras = settings.get("keras")
    return CpuImages(
        base_image=document.string(settings.get("base_image", DEFAULT_CPU_BASE), ("cpu", "base_image"), IMAGE_REFERENCE, "an image reference such as python:3.11-slim"),
        backends=_backends(document, settings, ("cpu",)),
        keras=None if keras is None else document.string(keras, ("cpu", "keras"), VERSION, 'a version in quotes such as "3.12"'),
    )


def _backends(document: _Document, settings: dict, key_path: tuple) -> Backends:
    """`backend: [tensorflow, torch, jax]` (default: the backends whose versions are listed, else tensorflow), each with its versions."""
    listed = [backend for backend in FRAMEWORKS if backend in settings]
    chosen = settings.get("backend", listed or ["tensorflow"])
    if not isinstance(chosen, list) or not chosen or any(b not in FRAMEWORKS for b in chosen) or len(set(chosen)) != len(chosen):
        raise document.error(key_path + ("backend",), f"a list of Keras backends, each once, from {', '.join(FRAMEWORKS)}", chosen)
    for backend in listed:
        if backend not in chosen:
            raise document.error(key_path + (backend,), f"{backend} in {_dotted(key_path + ('backend',))}, since its versions are listed",
                                 found=f"backend {chosen}")
    return tuple((backend, document.version_list(settings[backend], key_path + (backend,)) if backend in settings else None)
                 for backend in chosen)


GPU_AXES = ("cuda", "cudnn")  # and one backend's version: an include that adds a cell names all three
GPU_TYPE_AXIS = "gpu_type"  # a run axis: the GPU model a cell is timed on, as Slurm names it (its gres type)


def _gpu(document: _Document, value: Any) -> GpuImages:
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
        cuda=document.version_list(settings["cuda"], ("gpu", "cuda")),
        cudnn=document.version_list(settings["cudnn"], ("gpu", "cudnn")),
        backends=_backends(document, settings, ("gpu",)),
        keras=None if keras is None else document.string(keras, ("gpu", "keras"), VERSION, 'a version in quotes such as "3.12"'),
        include=_combinations(document, settings.get("include", []), ("gpu", "include"), keys),
        exclude=exclude,
        devices=devices(settings.get("devices", "all"), lambda expected, got: document.error(("gpu", "devices"), expected, got)),
        gpu_types=gpu_types,
    )
    _check_excluded_values(document, images)
    return images


def _check_excluded_values(document: _Document, images: GpuImages) -> None:
    """An exclude names values the axes list: one that names another (a typo) would exclude nothing, silently."""
    listed = {"cuda": images.cuda, "cudnn": images.cudnn, **{backend: versions for backend, versions in images.backends if versions}}
    if images.keras:
        listed["keras"] = (images.keras,)
    chosen = {backend for backend, _ in images.backends}
    for index, entry in enumerate(map(dict, images.exclude)):
        for axis, value in entry.items():
            if axis in FRAMEWORKS and axis not in chosen:
                raise document.error(("gpu", "exclude", index, axis), f"a backend gpu.backend lists ({', '.join(sorted(chosen))})", found=axis)
            if axis in listed and value not in listed[axis]:
                raise document.error(("gpu", "exclude", index, axis), f"one of the values gpu.{axis} lists ({', '.join(listed[axis])})", value)


def _gpu_types(document: _Document, value: Any) -> tuple[str, ...]:
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


def _slurm(document: _Document, value: Any) -> SlurmSettings:
    """The `slurm:` settings. Every value reaches sbatch as one argument of its own, never through a shell."""
    settings = document.mapping(value if value is not None else {}, ("slurm",), required=set(),
                                optional={"partition", "gpu_partition", "account", "time", "exclusive", "options", "poll_seconds"})

    def name(key: str) -> str | None:
        if key not in settings:
            return None
        return document.string(settings[key], ("slurm", key), SLURM_NAMES, "a Slurm name of letters, digits, _ . and - (partitions: several, comma-separated)")

    time = settings.get("time")
    if time is not None and (not isinstance(time, str) or not SLURM_TIME.fullmatch(time)):
        # YAML reads an unquoted 2:00:00 as the number 7200 (base 60): a time limit is a quoted string.
        raise document.error(("slurm", "time"), 'a Slurm time limit in quotes, such as "02:00:00", "90" (minutes) or "1-00:00:00"', time)
    options = settings.get("options", [])
    if not isinstance(options, list) or len(options) > 32:
        raise document.error(("slurm", "options"), 'a list of at most 32 sbatch options such as ["--qos=high", "--constraint=ib"]', options)
    for index, option in enumerate(options):
        key_path = ("slurm", "options", index)
        document.string(option, key_path, SBATCH_OPTION, "a long sbatch option without spaces, such as --qos=high")
        own = option[2:].partition("=")[0]
        if own in SBATCH_OWN_OPTIONS:
            hint = {"partition": "slurm.partition", "account": "slurm.account", "time": "slurm.time", "exclusive": "slurm.exclusive",
                    "gres": "gpu.gpu_type", "gpus": "gpu.gpu_type"}.get(own, "nothing: the dispatcher sets it for every job")
            raise document.error(key_path, f"an option the dispatcher does not set itself (for --{own} use {hint})", option)
    poll = settings.get("poll_seconds", SLURM_DEFAULTS.poll_seconds)
    if isinstance(poll, bool) or not isinstance(poll, (int, float)) or not math.isfinite(poll) or not 0.1 <= poll <= 600:
        raise document.error(("slurm", "poll_seconds"), "a number of seconds from 0.1 to 600", poll)
    return SlurmSettings(
        partition=name("partition"), gpu_partition=name("gpu_partition"), account=name("account"), time=time,
        exclusive=document.boolean(settings.get("exclusive", True), ("slurm", "exclusive")),
        options=tuple(options), poll_seconds=float(poll),
    )


def _combinations(document: _Document, value: Any, key_path: tuple, keys: tuple[str, ...]) -> tuple:
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


def _limits(document: _Document, value: Any) -> Limits:
    """Checked against what the engine accepts, so that a bad limit fails here and not at the first container."""
    settings = document.mapping(value, ("limits",), required=set(), optional={"memory", "pids"})
    memory = settings.get("memory", "16g")
    size = MEMORY.fullmatch(memory) if isinstance(memory, str) else None
    if not size or not MIN_MEMORY_BYTES <= int(size[1]) * MEMORY_UNITS[size[2]] <= MAX_MEMORY_BYTES:
        raise document.error(("limits", "memory"), 'a size such as "16g" or "512m", from 6m (Docker\'s least) to 1024g', memory)
    return Limits(memory=memory, pids=document.integer(settings.get("pids", 4096), ("limits", "pids"), 64, MAX_PIDS))


def _build(document: _Document, value: Any) -> BuildSettings:
    settings = document.mapping(value, ("build",), required=set(), optional={"offline_base", "ca_certificates", "debian_mirror"})
    mirror = settings.get("debian_mirror", "http://deb.debian.org/debian")
    if not isinstance(mirror, str) or not DEBIAN_MIRROR.fullmatch(mirror):
        raise document.error(("build", "debian_mirror"), "an http(s) or file URL of a Debian mirror", mirror)
    return BuildSettings(
        offline_base=document.boolean(settings.get("offline_base", False), ("build", "offline_base")),
        ca_certificates=_ca_certificates(document, settings.get("ca_certificates", "host"), document.path.parent),
        debian_mirror=mirror,
    )


def _ca_certificates(document: _Document, value: Any, base_dir: Path) -> tuple[Path, ...]:
    """The host's locally added CAs by default: what a TLS-intercepting proxy needs trusted.

    Each file is copied into every image, so only certificates pass: not /etc/shadow, not a private key.
    """
    key_path = ("build", "ca_certificates")
    if value == "host":
        paths = tuple(Path(p) for p in sorted(glob.glob(DEFAULT_CA_CERTIFICATES, recursive=True)))
        for path in paths:
            if problem := _certificate_problem(path):
                raise document.error(key_path, f'only PEM certificates in {DEFAULT_CA_CERTIFICATES} (what "host" trusts)',
                                     found=f"{path} ({problem})")
        return paths
    if not isinstance(value, list):
        raise document.error(key_path, '"host" or a list of PEM certificate files', value)
    paths = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not FOLDER_PATH.fullmatch(item):
            raise document.error(key_path + (index,), "a readable PEM certificate file", item)
        path, _ = _matrix_path(document, item, key_path + (index,), base_dir, "a readable PEM certificate file")
        if problem := _certificate_problem(path):
            raise document.error(key_path + (index,), "a readable PEM certificate file", found=f"{path} ({problem})")
        paths.append(path)
    return tuple(paths)


_PEM_BEGIN = re.compile(r"-----BEGIN ([^-\r\n]*)-----")
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)


def _certificate_problem(path: Path) -> str | None:
    """Why path is not a file of PEM certificates, or None when it is."""
    try:
        text = _read_small_file(path, MAX_CERTIFICATE_BYTES).decode("latin-1")  # PEM is ASCII; text around it may be anything
    except OSError as error:
        return f"cannot read it: {error.strerror}"
    labels = _PEM_BEGIN.findall(text)
    if not labels:
        return "no -----BEGIN CERTIFICATE----- block"
    if set(labels) != {"CERTIFICATE"}:
        return f"holds a {next(label for label in labels if label != 'CERTIFICATE')} block, and only certificates may go into images"
    blocks = _PEM_CERTIFICATE.findall(text)
    if len(blocks) != len(labels):
        return "a -----BEGIN CERTIFICATE----- block without its END line"
    return next(filter(None, map(_certificate_block_problem, blocks)), None)


def _certificate_block_problem(block: str) -> str | None:
    try:
        der = ssl.PEM_cert_to_DER_cert(block)
    except ValueError:
        return "a CERTIFICATE block whose body is not base64"
    try:
        # OpenSSL parses it: base64 that decodes is not enough, it must be an X.509 certificate.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=der)
    except ssl.SSLError:
        return "a CERTIFICATE block that is not an X.509 certificate"
    return None


def _read_small_file(path: Path, limit: int) -> bytes:
    """At most limit bytes of a regular file, or OSError: never a pipe that blocks, never a huge file read whole."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError(0, "not a regular file")
    with open(path, "rb") as file:
        content = file.read(limit + 1)
    if len(content) > limit:
        raise OSError(0, f"over {limit} bytes")
    return content


def _dotted(key_path: tuple) -> str:
    text = ""
    for part in key_path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part if part.bit_length() <= 64 else shown(part)}]"
        else:
            plain = isinstance(part, str) and part.isprintable() and len(part) <= SHOWN_CHARACTERS
            name = part if plain else shown(part)  # a key with a newline must not break the line, nor a long one fill it
            text += f".{name}" if text else name
    return text


SHOWN_CHARACTERS = 60  # of a value an error line quotes: the line stays readable whatever was given


def shown(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """A value as an error line quotes it: its repr, cut to limit characters; a number too long to print, by its size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"  # str() refuses past 4300 digits
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int) and value.bit_length() > 200:
        return shown(value)
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {shown(value)}"
    return f"a {'list' if isinstance(value, list) else 'mapping' if isinstance(value, dict) else type(value).__name__}"
