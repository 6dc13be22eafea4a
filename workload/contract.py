"""The contract between the runner and the workload: one job spec in, one measurement out.

The workload runs in images, virtual environments and bare interpreters alike,
and the runner imports this module too, so it uses the standard library only
and every name both sides share is defined here, once. The runner hands the
workload a complete job spec as JSON (the workload keeps no defaults of its
own); the workload prints one line, RECORD_PREFIX and a JSON measurement,
which the runner reads back and checks against MEASUREMENT_SCHEMA.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import MISSING, asdict, dataclass, fields

JOB_SCHEMA = 7  # 2: the Keras backend and the settings that change what the GPU computes; 3: jit_compile auto|on|off; 4: backend is framework;
# 5: conv_autotune default|on|off; 6: kernel_time auto|on|off; 7: image_size, classes and data_format (Keras' applications)
# 2: typed epochs (Keras' figures under "logs") and telemetry; 3: each epoch's validation_seconds, timed apart from training
# (the device synchronised at epoch boundaries, not after every step); 4: kernel_time. The runner reads 1 to 3 too
# (runner/older_schemas.py).
MEASUREMENT_SCHEMA = 4
RECORD_PREFIX = "CUDNN_MATRIX_RECORD "

# The seed's two CNNs, then models from Keras itself (keras.applications, weights=None: nothing is downloaded), which
# train on synthetic images made in memory: the networks cuDNN upgrades are usually judged on.
SEED_MODELS = ("dogs-vs-cats", "mnist")
KERAS_APPLICATIONS = ("resnet50", "mobilenet-v2", "efficientnet-b0")
MODELS = SEED_MODELS + KERAS_APPLICATIONS
DATA_FORMATS = ("channels_last", "channels_first")


@dataclass(frozen=True)
class Framework:
    title: str  # as people write it: TensorFlow
    short: str  # as cell and environment ids write it: tf


# The frameworks Keras runs on (Keras 3's backends; TensorFlow also runs Keras 2): the cells' `framework` axis.
# The one table of their names: the matrix, the compatibility table, the job spec and the workload read it.
FRAMEWORKS = {"tensorflow": Framework("TensorFlow", "tf"), "torch": Framework("torch", "torch"), "jax": Framework("jax", "jax")}
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # bf16, fp16: Keras' mixed precision policies
# auto: as Keras runs each backend by default (XLA on jax, a traced graph on TensorFlow, eager torch); on/off force it.
JIT_COMPILE = ("auto", "on", "off")
# default: each framework's own (TensorFlow autotunes cuDNN's convolutions, XLA at its own level, torch does not); on/off force it.
CONV_AUTOTUNE = ("default", "on", "off")
# auto: profile GPU cells' steps by kernel class (workload/kernel_time.py); on: CPU cells too; off: none.
KERNEL_TIME = ("auto", "on", "off")
LOADERS = ("tfdata", "python")  # tf.data (TensorFlow only), or the framework-neutral python_input.py
INPUTS = ("jpeg", "cached")  # cached: decoded, augmented batches from memory after the warm-up epoch
FAULTS = ("none", "crash", "hang", "memory", "garbage")  # injected on purpose, to test failure handling
CLASSES = ("cats", "dogs")
SYNTHETIC_MARKER = "SYNTHETIC.json"
MNIST_FILE = "mnist.npz"

# The stages a measurement's timeline stamps, in order: what the runner's own cost is told apart from.
TIMELINE = ("process_started", "framework_imported", "inputs_ready", "model_built", "first_step_ended", "trained")

EPOCH_LINE = re.compile(r"^epoch ([0-9]+)/([0-9]+): ")

# Telemetry (workload/telemetry_sampler.py writes it, runner/telemetry.py reads it). "off" in this variable
# runs without the sampler, for bench/telemetry_overhead.py; the host executors pass it on.
TELEMETRY_SWITCH = "CUDNN_MATRIX_TELEMETRY"
NOT_AVAILABLE = "not available"  # how a figure that could not be had begins: never a zero that looks measured
# NVML's clocks event reasons (nvmlClocksEventReason*, called ...ThrottleReason* before driver 535): bit -> name.
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x10: "sync_boost",
    0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting", 0x200: "board_limit", 0x400: "reliability",
}
# The reasons that hold a busy GPU below the clocks it would otherwise run at, in words: an epoch that saw one
# timed a slowed GPU. (gpu_idle, applications_clocks_setting and display_clock_setting are not throttling.)
THROTTLING = {
    "sw_power_cap": "power capping", "hw_slowdown": "hardware slowdown", "sync_boost": "sync boost",
    "sw_thermal_slowdown": "thermal throttling", "hw_thermal_slowdown": "thermal throttling",
    "hw_power_brake_slowdown": "power-brake slowdown", "board_limit": "board limit", "reliability": "reliability limit",
}


def epoch_line(number: int, total: int, seconds: float, train_seconds: float, images_per_second: float) -> str:
    """The progress line the workload prints after each epoch; EPOCH_LINE reads it back."""
    return f"epoch {number}/{total}: {seconds:.2f} s (training {train_seconds:.2f} s, {images_per_second:.0f} images/s)"


class ContractError(ValueError):
    """A job spec or measurement that does not keep the contract; the message names the key."""


@dataclass(frozen=True)
class Pipeline:
    """The input pipeline's tuning: explicit, recorded, and fixed by default (autotuning stalled small hosts)."""

    input: str
    autotune: bool
    parallel_calls: int  # 0: as many as the cores the process may use (the workload records the number)
    prefetch_batches: int


@dataclass(frozen=True)
class JobSpec:
    """Everything one run of the workload needs to know; nothing has a default on either side."""

    cell_id: str
    framework: str  # one of FRAMEWORKS: what Keras runs on
    model: str
    data_dir: str
    epochs: int
    warmup_epochs: int
    batch_size: int
    train_images: int
    validation_images: int
    image_size: int  # a side of the square input, in pixels
    classes: int
    data_format: str  # one of DATA_FORMATS: where the channels are in each image
    jit_compile: str  # one of JIT_COMPILE
    intra_op_threads: int
    inter_op_threads: int
    fault: str
    pipeline: Pipeline
    loader: str  # tfdata or python
    precision: str  # fp32, tf32 or bf16
    cudnn: bool  # false: convolutions without cuDNN, where the framework has a switch (torch)
    conv_autotune: str  # one of CONV_AUTOTUNE
    kernel_time: str  # one of KERNEL_TIME
    expect_gpu: bool
    expect_cudnn: str  # "major.minor" the loaded cuDNN must have, or "" for no check

    def to_json(self) -> str:
        return json.dumps({"schema": JOB_SCHEMA, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "JobSpec":
        data = _object(text, "job spec")
        schema = data.pop("schema", None)
        if schema != JOB_SCHEMA:
            raise ContractError(f"job spec: expected schema {JOB_SCHEMA}, got {schema!r}: the runner and the workload are from "
                                "different versions (rebuild the environment, or run the runner the workload came with)")
        job = _typed(cls, data, "job spec")
        _check_job(job)
        return job


def _check_job(job: JobSpec) -> None:
    for key, allowed in (("framework", tuple(FRAMEWORKS)), ("model", MODELS), ("fault", FAULTS), ("loader", LOADERS), ("precision", PRECISIONS),
                          ("jit_compile", JIT_COMPILE), ("conv_autotune", CONV_AUTOTUNE), ("kernel_time", KERNEL_TIME),
                          ("data_format", DATA_FORMATS)):
        if getattr(job, key) not in allowed:
            raise ContractError(f"job spec: {key}: expected one of {', '.join(allowed)}, got {getattr(job, key)!r}")
    if job.pipeline.input not in INPUTS:
        raise ContractError(f"job spec: pipeline.input: expected one of {', '.join(INPUTS)}, got {job.pipeline.input!r}")
    if job.loader == "tfdata" and job.framework != "tensorflow":
        raise ContractError(f"job spec: loader: tf.data needs the tensorflow framework, not {job.framework}")
    if not 1 <= job.warmup_epochs < job.epochs:
        raise ContractError(f"job spec: epochs: expected more than warmup_epochs ({job.warmup_epochs}), so that some are timed")


@dataclass(frozen=True)
class GpuEpoch:
    """One GPU over one epoch, from the sampler's reads (workload/telemetry_sampler.py's gpu_summary).

    A figure NVML could not give is a string beginning NOT_AVAILABLE that says why, never a zero.
    """

    index: int  # NVML's index of the GPU
    samples: int
    busy_samples: int  # samples whose clocks were not low for idleness: the clock figures come from these
    energy_joules: float | str
    energy_source: str  # "counter", "power samples", or NOT_AVAILABLE
    power_watts_mean: float | str
    power_watts_max: float | str
    sm_clock_mhz_min: float | str
    sm_clock_mhz_max: float | str
    memory_clock_mhz_min: float | str
    memory_clock_mhz_max: float | str
    temperature_c_max: float | str
    utilisation_percent_mean: float | str
    memory_used_bytes_max: float | str
    clock_event_reasons: list[str] | str  # names from CLOCK_EVENT_REASONS seen in any sample


@dataclass(frozen=True)
class EpochTelemetry:
    """What the machine did during one epoch: this process's memory and CPU, and its GPUs'."""

    samples: int
    rss_bytes_max: int | str  # the highest resident memory sampled
    process_peak_rss_bytes: int | str  # the kernel's high-water mark (VmHWM) since the process started
    children_peak_rss_bytes: int
    cpu_seconds: float  # CPU time the process used in the epoch, all threads
    cpu_utilisation: float | str  # cpu_seconds over the epoch's wall time and the usable cores
    gpus: list[GpuEpoch] | str  # a string says why there are none ("not available: ...")


@dataclass(frozen=True)
class Epoch:
    """One epoch as the workload's timer saw it; the first warmup_epochs of a measurement are not timed."""

    seconds: float  # wall time of the whole epoch, training and validation
    train_seconds: float  # the training steps, to the device's last one finished: what verdicts are on
    validation_seconds: float | None  # the validation pass, device finished; None: a measurement before schema 3
    images_per_second: float  # training images over train_seconds
    steps: int | None  # None: a schema-1 measurement without the figure
    step_seconds_median: float | None
    step_seconds_max: float | None
    model_gflops_per_second: float | None  # the model's rate, from the median step
    gflops_per_second: float | None  # the effective rate, waiting for input included
    input_wait_share: float | None  # the share of the mean step (train_seconds / steps) spent waiting for input
    logs: dict[str, float]  # what Keras logged for the epoch: loss, accuracy, val_loss, val_accuracy
    telemetry: EpochTelemetry | None  # None: run without the sampler


@dataclass(frozen=True)
class GpuFacts:
    """What one GPU is and how it was set, asked once per run; a figure NVML could not give says why, as text."""

    index: int
    name: str
    uuid: str
    power_limit_watts: float | str
    max_sm_clock_mhz: float | str
    max_memory_clock_mhz: float | str
    applications_sm_clock_mhz: float | str  # set apart from the default: clocks are locked
    default_applications_sm_clock_mhz: float | str
    energy_counter: bool | str  # True, or why the GPU has none
    not_sampled: dict[str, str]  # figures this GPU does not answer, each with why


@dataclass(frozen=True)
class SamplerCost:
    """What sampling cost the run: the figure that says the telemetry did not change the timings."""

    samples: int
    cpu_seconds: float
    cpu_share: float  # cpu_seconds over the run's wall time


@dataclass(frozen=True)
class RunTelemetry:
    """What the machine had for the whole run, and what the sampler cost."""

    interval_seconds: float
    cpus_usable: int
    memory_limit_bytes: int | str  # the cgroup's limit, or why there is none ("none: ...")
    gpus: list[GpuFacts] | str  # a string says why there are none
    sampler: SamplerCost


# The classes of a training step's kernels (operators, on a CPU) that KernelTime adds up (workload/kernel_time.py).
# convolution_backward: both gradients in one operator, where the framework does not compute them apart (torch's CPU).
KERNEL_CLASSES = ("convolution_forward", "convolution_backward_data", "convolution_backward_filter", "convolution_backward",
                  "matmul", "elementwise", "memory_copy", "other")
CONVOLUTION_CLASSES = KERNEL_CLASSES[:4]


@dataclass(frozen=True)
class KernelTime:
    """A training step's time by kernel class, from the framework's own profiler over a few steps after the timed epochs."""

    profiler: str  # torch.profiler, jax.profiler or tf.profiler
    device: str  # "gpu": the device's kernels and copies; "cpu": the framework's operators on the host's threads
    steps: int  # profiled
    seconds_per_step: dict[str, float]  # every one of KERNEL_CLASSES
    convolutions: dict[str, float]  # the longest convolution kernels (or operators) by name, seconds per step: what ran

    @property
    def convolution_seconds(self) -> float:
        return sum(self.seconds_per_step.get(name, 0.0) for name in CONVOLUTION_CLASSES)

    @property
    def convolution_share(self) -> float | None:
        return convolution_share(self.seconds_per_step)


def convolution_share(seconds_per_step: dict[str, float]) -> float | None:
    """The convolution classes' share of a step's profiled time (None when nothing was timed)."""
    total = sum(seconds_per_step.values())
    return sum(seconds_per_step.get(name, 0.0) for name in CONVOLUTION_CLASSES) / total if total else None


@dataclass(frozen=True)
class Measurement:
    """What the workload measured and what it really loaded; `failure` says why it must not be trusted."""

    schema: int
    cell_id: str
    workload: str  # the model trained
    data: dict
    warmup_epochs: int
    epochs: list[Epoch]
    versions: dict
    host: dict
    settings: dict
    devices: list
    gpu: dict
    model: dict | None = None  # parameters and FLOPs, once the model was built
    convolution_ops: list | str | None = None  # what the framework called for convolutions (torch's profiler)
    # The run's telemetry (workload/telemetry_sampler.py; each epoch has its own). A string says why there is none
    # ("off: ..."); None: a workload older than telemetry.
    telemetry: RunTelemetry | str | None = None
    failure: str | None = None
    # time.time() stamps of the workload's stages (TIMELINE), to set against the runner's launch time (bench/)
    timeline: dict | None = None
    # Where a step's time went, by kernel class; a string says why it was not profiled; None: a measurement before schema 4
    kernel_time: KernelTime | str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Measurement":
        return cls.from_dict(_object(text, "measurement"))

    @classmethod
    def from_dict(cls, data: dict) -> "Measurement":
        if data.get("schema") != MEASUREMENT_SCHEMA:
            raise ContractError(f"measurement: expected schema {MEASUREMENT_SCHEMA}, got {data.get('schema')!r}: "
                                "the workload in the environment and this runner are from different versions")
        measurement = _typed(cls, data, "measurement")
        for number, epoch in enumerate(measurement.epochs, 1):
            if not all(0 < getattr(epoch, key) <= most for key, most in EPOCH_BOUNDS.items()):
                raise ContractError(f"measurement: epochs[{number}]: expected seconds and train_seconds above 0 and at most a week, "
                                    "images_per_second above 0 and at most a billion")
            if epoch.validation_seconds is not None and not 0 <= epoch.validation_seconds <= epoch.seconds:
                raise ContractError(f"measurement: epochs[{number}]: validation_seconds: expected from 0 to the epoch's seconds")
        kernels = measurement.kernel_time
        if isinstance(kernels, KernelTime) and (set(kernels.seconds_per_step) != set(KERNEL_CLASSES) or kernels.steps < 1):
            raise ContractError(f"measurement: kernel_time: expected steps above 0 and seconds_per_step for {', '.join(KERNEL_CLASSES)}")
        return measurement


# A zero, negative or absurd time is not a measurement: no cell's time limit lets an epoch run past a week.
EPOCH_BOUNDS = {"seconds": 7 * 24 * 3600, "train_seconds": 7 * 24 * 3600, "images_per_second": 10**9}


_SIMPLE = {"str": str, "bool": bool, "dict": dict, "list": list, "None": type(None)}
_OBJECTS = {cls.__name__: cls for cls in (Pipeline, GpuEpoch, EpochTelemetry, Epoch, GpuFacts, SamplerCost, RunTelemetry, KernelTime)}


def _object(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ContractError(f"{what}: not JSON: {error}")
    if not isinstance(data, dict):
        raise ContractError(f"{what}: expected a JSON object")
    return data


def _typed(cls, data, where: str):
    """cls(**data), with every field present, of its declared type (objects within built too), and nothing else."""
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected an object")
    declared = {field.name: field for field in fields(cls)}
    unknown = sorted(set(data) - set(declared))
    if unknown:
        raise ContractError(f"{where}: unknown key {unknown[0]!r}")
    values = {}
    for name, field in declared.items():
        if name in data:
            values[name] = _value(field.type, data[name], f"{where}: {name}")
        elif field.default is MISSING:  # a field with a default may be left out
            raise ContractError(f"{where}: {name}: missing")
    return cls(**values)


def _value(declared: str, value, where: str):
    """`value` as the declared type ("float | str", "list[Epoch]", ...); a ContractError naming `where` if it is not one."""
    for option in declared.split(" | "):
        if option in _OBJECTS and isinstance(value, dict):
            return _typed(_OBJECTS[option], value, where)
        if option.startswith("list[") and isinstance(value, (list, tuple)):
            item = option[len("list["):-1]
            return [_value(item, element, f"{where}[{number}]") for number, element in enumerate(value, 1)]
        if option == "dict[str, float]" and isinstance(value, dict) and all(isinstance(key, str) and finite(v) for key, v in value.items()):
            return value
        if option == "dict[str, str]" and isinstance(value, dict) and all(isinstance(key, str) and isinstance(v, str) for key, v in value.items()):
            return value
        if option == "int" and isinstance(value, int) and finite(value):  # finite: not a bool, nor too large for a float
            return value
        if option == "float" and finite(value):
            return value
        if option in _SIMPLE and isinstance(value, _SIMPLE[option]):
            return value
    raise ContractError(f"{where}: expected {declared}, got {value!r}"[:300])


def finite(value) -> bool:
    """A real number: not a bool, not nan or infinity, not an integer too large for a float (JSON has those)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
