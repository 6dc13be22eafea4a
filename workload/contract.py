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

JOB_SCHEMA = 4  # 2: the Keras backend and the settings that change what the GPU computes; 3: jit_compile auto|on|off; 4: backend is framework
MEASUREMENT_SCHEMA = 1
RECORD_PREFIX = "CUDNN_MATRIX_RECORD "

MODELS = ("dogs-vs-cats", "mnist")


@dataclass(frozen=True)
class Framework:
    title: str  # as people write it: TensorFlow
    short: str  # as cell and environment ids write it: tf


# The frameworks Keras runs on (Keras 3's backends; TensorFlow also runs Keras 2): the cells' `framework` axis.
# The one table of their names: the matrix, the compatibility table, the job spec and the workload read it.
FRAMEWORKS = {"tensorflow": Framework("TensorFlow", "tf"), "torch": Framework("torch", "torch"), "jax": Framework("jax", "jax")}
PRECISIONS = ("fp32", "tf32", "bf16")
# auto: as Keras runs each backend by default (XLA on jax, a traced graph on TensorFlow, eager torch); on/off force it.
JIT_COMPILE = ("auto", "on", "off")
LOADERS = ("tfdata", "python")  # tf.data (TensorFlow only), or the framework-neutral loaders.py
INPUTS = ("jpeg", "cached")  # cached: decoded, augmented batches from memory after the warm-up epoch
FAULTS = ("none", "crash", "hang", "memory", "garbage")  # injected on purpose, to test failure handling
CLASSES = ("cats", "dogs")
SYNTHETIC_MARKER = "SYNTHETIC.json"
MNIST_FILE = "mnist.npz"

# The stages a measurement's timeline stamps, in order: what the runner's own cost is told apart from.
TIMELINE = ("process_started", "framework_imported", "inputs_ready", "model_built", "first_step_ended", "trained")

EPOCH_LINE = re.compile(r"^epoch ([0-9]+)/([0-9]+): ")

# Telemetry (workload/telemetry.py writes it, runner/telemetry.py reads it). "off" in this variable
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
    jit_compile: str  # one of JIT_COMPILE
    intra_op_threads: int
    inter_op_threads: int
    fault: str
    pipeline: Pipeline
    loader: str  # tfdata or python
    precision: str  # fp32, tf32 or bf16
    cudnn: bool  # false: convolutions without cuDNN, where the framework has a switch (torch)
    conv_autotune: bool
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
        pipeline = _typed(Pipeline, data.pop("pipeline", None), "job spec: pipeline")
        job = _typed(cls, {**data, "pipeline": pipeline}, "job spec")
        _check_job(job)
        return job


def _check_job(job: JobSpec) -> None:
    for key, allowed in (("framework", tuple(FRAMEWORKS)), ("model", MODELS), ("fault", FAULTS), ("loader", LOADERS), ("precision", PRECISIONS),
                          ("jit_compile", JIT_COMPILE)):
        if getattr(job, key) not in allowed:
            raise ContractError(f"job spec: {key}: expected one of {', '.join(allowed)}, got {getattr(job, key)!r}")
    if job.pipeline.input not in INPUTS:
        raise ContractError(f"job spec: pipeline.input: expected one of {', '.join(INPUTS)}, got {job.pipeline.input!r}")
    if job.loader == "tfdata" and job.framework != "tensorflow":
        raise ContractError(f"job spec: loader: tf.data needs the tensorflow framework, not {job.framework}")
    if not 1 <= job.warmup_epochs < job.epochs:
        raise ContractError(f"job spec: epochs: expected more than warmup_epochs ({job.warmup_epochs}), so that some are timed")


@dataclass(frozen=True)
class Measurement:
    """What the workload measured and what it really loaded; `failure` says why it must not be trusted."""

    schema: int
    cell_id: str
    workload: str  # the model trained
    data: dict
    warmup_epochs: int
    epochs: list  # one dict per epoch: seconds, train_seconds, images_per_second, steps, ... and the Keras logs
    versions: dict
    host: dict
    settings: dict
    devices: list
    gpu: dict
    model: dict | None = None  # parameters and FLOPs, once the model was built
    convolution_ops: list | str | None = None  # what the framework called for convolutions (torch's profiler)
    # What the machine had and the sampler cost (workload/telemetry.py); per-epoch figures are in each epoch's
    # "telemetry". A string says why there is none ("off: ..."); None: a workload older than telemetry.
    telemetry: dict | str | None = None
    failure: str | None = None
    # time.time() stamps of the workload's stages (TIMELINE), to set against the runner's launch time (bench/)
    timeline: dict | None = None

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
            if not isinstance(epoch, dict) or not all(finite(epoch.get(key)) and 0 < epoch[key] <= most for key, most in EPOCH_BOUNDS.items()):
                raise ContractError(f"measurement: epochs[{number}]: expected seconds and train_seconds above 0 and at most a week, "
                                    "images_per_second above 0 and at most a billion")
        return measurement


# A zero, negative or absurd time is not a measurement: no cell's time limit lets an epoch run past a week.
EPOCH_BOUNDS = {"seconds": 7 * 24 * 3600, "train_seconds": 7 * 24 * 3600, "images_per_second": 10**9}


_TYPES = {"str": str, "int": int, "bool": bool, "dict": dict, "list": list, "Pipeline": Pipeline,
          "dict | None": (dict, type(None)), "str | None": (str, type(None)), "list | str | None": (list, str, type(None)),
          "dict | str | None": (dict, str, type(None))}


def _object(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ContractError(f"{what}: not JSON: {error}")
    if not isinstance(data, dict):
        raise ContractError(f"{what}: expected a JSON object")
    return data


def _typed(cls, data, where: str):
    """cls(**data), with every field present, of its declared type, and nothing else."""
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected an object")
    declared = {field.name: field for field in fields(cls)}
    unknown = sorted(set(data) - set(declared))
    if unknown:
        raise ContractError(f"{where}: unknown key {unknown[0]!r}")
    for name, field in declared.items():
        if name not in data:
            if field.default is not MISSING:  # a field with a default may be left out
                continue
            raise ContractError(f"{where}: {name}: missing")
        value, expected = data[name], _TYPES[field.type]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
            raise ContractError(f"{where}: {name}: expected {field.type}, got {value!r}"[:300])
    return cls(**data)


def finite(value) -> bool:
    """A real number: not a bool, not nan or infinity, not an integer too large for a float (JSON has those)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
