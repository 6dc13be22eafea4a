"""The matrix's workloads: section, each entry a model to train and the settings every cell runs it with.

Read by config.load_matrix, with the same strictness: every mistake is one line naming the file, the key
and what was expected.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.yaml_reader import Document, shown
from workload.contract import DATA_FORMATS, FAULTS, INPUTS, KERAS_APPLICATIONS, LOADERS, PRECISIONS, Pipeline


@dataclass(frozen=True)
class ModelDefaults:
    batch_size: int
    train_images: int
    validation_images: int
    image_size: int
    classes: int
    input: str


# The seed's models at the seed's batch sizes and data set sizes; Keras' applications at the batch the published GPU tables
# use for them (tf_cnn_benchmarks', Lambda's: 64), 20 steps an epoch of synthetic images, cached on the device.
MODELS = {
    "dogs-vs-cats": ModelDefaults(32, 2000, 800, image_size=150, classes=2, input="jpeg"),
    "mnist": ModelDefaults(128, 60000, 10000, image_size=28, classes=10, input="jpeg"),
    **{model: ModelDefaults(64, 1280, 256, image_size=224, classes=1000, input="cached") for model in KERAS_APPLICATIONS},
}
APPLICATION_KEYS = ("image_size", "classes", "data_format")  # the seed's networks have fixed shapes
# Patterns are only ever applied with fullmatch: with match, "$" also matches before a final newline.
WORKLOAD_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
FOLDER_PATH = re.compile(r"[^\x00-\x1f\x7f]{1,4096}")  # a NUL would otherwise escape pathlib as a ValueError

# Upper bounds: a typo such as an extra three zeros is refused here, not discovered hours into a run.
MAX_EPOCHS = 1000
MAX_IMAGES = 100_000  # per split: MNIST has 60000 training images, Kaggle's Dogs vs Cats 25000
MAX_BATCH_SIZE = 4096
MAX_THREADS = 1024  # intra/inter-op threads and parallel calls
MAX_PREFETCH_BATCHES = 1024
MAX_TIMEOUT_MINUTES = 7 * 24 * 60
MIN_IMAGE_SIZE = 32  # the smallest input Keras' applications accept
MAX_IMAGE_SIZE = 1024
MAX_CLASSES = 100_000


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
    precision: str  # fp32, tf32, bf16 or fp16: set explicitly on every backend, whatever its default
    cudnn: bool  # false: convolutions without cuDNN (torch only: the seed's GPU-without-cuDNN row)
    conv_autotune: str  # default (each framework's own: TensorFlow and XLA autotune, torch does not), on or off
    kernel_time: str  # auto (profile GPU cells), on (every cell) or off: the step's time by kernel class
    loader: str  # auto, tfdata or python: the input pipeline
    image_size: int  # a side of the square input image, in pixels
    classes: int
    data_format: str  # channels_last or channels_first


def workloads_section(document: Document, value: Any, base_dir: Path) -> tuple[Workload, ...]:
    if not isinstance(value, dict) or not value:
        raise document.error(("workloads",), f"a mapping of workload names (such as {', '.join(MODELS)}) to settings", value)
    return tuple(_workload(document, name, settings, base_dir) for name, settings in value.items())


def _workload(document: Document, name: Any, value: Any, base_dir: Path) -> Workload:
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
                  "precision", "cudnn", "conv_autotune", "kernel_time", "loader", *APPLICATION_KEYS},
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
    _check_model_keys(document, key_path, model, settings)
    train_images = number("train_images", defaults.train_images, 2, MAX_IMAGES)
    workload = Workload(
        name=name,
        model=model,
        epochs=number("epochs", 3, 2, MAX_EPOCHS),
        warmup_epochs=number("warmup_epochs", 1, 1, MAX_EPOCHS - 1),
        batch_size=number("batch_size", min(defaults.batch_size, train_images), 1, MAX_BATCH_SIZE),
        train_images=train_images,
        validation_images=number("validation_images", defaults.validation_images, 2, MAX_IMAGES),
        data_dir=_data_folder(document, data, key_path + ("data",), base_dir),
        jit_compile=_switch(document, settings.get("jit_compile", "auto"), key_path + ("jit_compile",)),
        intra_op_threads=number("intra_op_threads", 0, 0, MAX_THREADS),
        inter_op_threads=number("inter_op_threads", 0, 0, MAX_THREADS),
        timeout_minutes=_positive_number(document, settings.get("timeout_minutes", 120), key_path + ("timeout_minutes",)),
        fault=document.choice(settings.get("fault", "none"), key_path + ("fault",), FAULTS),
        pipeline=Pipeline(
            input=document.choice(settings.get("input", defaults.input), key_path + ("input",), INPUTS),
            autotune=document.boolean(settings.get("autotune", False), key_path + ("autotune",)),
            parallel_calls=_parallel_calls(document, settings.get("parallel_calls", "auto"), key_path + ("parallel_calls",)),
            prefetch_batches=number("prefetch_batches", 2, 1, MAX_PREFETCH_BATCHES),
        ),
        precision=document.choice(settings.get("precision", "fp32"), key_path + ("precision",), PRECISIONS),
        cudnn=document.boolean(settings.get("cudnn", True), key_path + ("cudnn",)),
        conv_autotune=_switch(document, settings.get("conv_autotune", "default"), key_path + ("conv_autotune",), keep="default"),
        kernel_time=_switch(document, settings.get("kernel_time", "auto"), key_path + ("kernel_time",)),
        loader=document.choice(settings.get("loader", "auto"), key_path + ("loader",), ("auto",) + LOADERS),
        # The seed's 28 px MNIST is under the applications' smallest size: settable only where _check_model_keys allows it.
        image_size=number("image_size", defaults.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE) if "image_size" in settings else defaults.image_size,
        classes=number("classes", defaults.classes, 2, MAX_CLASSES),
        data_format=document.choice(settings.get("data_format", "channels_last"), key_path + ("data_format",), DATA_FORMATS),
    )
    if workload.epochs <= workload.warmup_epochs:
        raise document.error(key_path + ("epochs",), f"more epochs than warmup_epochs ({workload.warmup_epochs}), so that some are timed", workload.epochs)
    if workload.batch_size > train_images:  # a batch holds at most an epoch's images: the record would name a size never used
        raise document.error(key_path + ("batch_size",), f"at most train_images ({train_images})", workload.batch_size)
    for key in ("train_images", "validation_images") if model == "dogs-vs-cats" else ():
        if getattr(workload, key) % 2:
            raise document.error(key_path + (key,), "an even number: half cats, half dogs", getattr(workload, key))
    return workload


def _check_model_keys(document: Document, key_path: tuple, model: str, settings: dict) -> None:
    """The seed's networks have fixed shapes; Keras' applications train on synthetic images made in memory, with no folder to read."""
    if model not in KERAS_APPLICATIONS:
        for key in APPLICATION_KEYS:
            if key in settings:
                raise document.error(key_path + (key,), f"no {key}: {model}'s shapes are the seed's (set it for {', '.join(KERAS_APPLICATIONS)})",
                                     settings[key])
        return
    if "data" in settings:
        raise document.error(key_path + ("data",), f"no data folder: {model} trains on synthetic images made in memory", settings["data"])
    if settings.get("input", "cached") != "cached":
        raise document.error(key_path + ("input",), f"cached: {model}'s synthetic images are made in memory, with no JPEGs to decode",
                             settings["input"])


def _data_folder(document: Document, text: str, key_path: tuple, base_dir: Path) -> Path:
    """A workload's data folder: one there is, or none yet (synthetic data is made in it), never a file, FIFO or device."""
    expected = "a folder path (made if missing)"
    path, found = document.named_path(text, key_path, base_dir, expected)
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise document.error(key_path, expected, found=f"{shown(text)} ({_file_kind(found.st_mode)})")
    if found is not None and not os.access(path, os.R_OK | os.X_OK):
        raise document.error(key_path, expected, found=f"{shown(text)} (a folder this user cannot read)")
    return path


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a folder")


def _parallel_calls(document: Document, value: Any, key_path: tuple) -> int:
    """auto (0 in the job spec: as many as the cores the cell may use, which the workload records), or a number."""
    if value == "auto":
        return 0
    return document.integer(value, key_path, 1, MAX_THREADS) if isinstance(value, int) else document.choice(value, key_path, ("auto",))


def _positive_number(document: Document, value: Any, key_path: tuple) -> float:
    """Minutes: YAML's .inf and .nan are floats too, and a .nan compares false to everything."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_MINUTES:
        raise document.error(key_path, f"a number of minutes above 0 and at most {MAX_TIMEOUT_MINUTES} (a week)", value)
    return float(value)


def _switch(document: Document, value: Any, key_path: tuple, keep: str = "auto") -> str:
    """`keep` (auto, default: leave it to the framework), or true/false (YAML booleans, as on/off are too) forcing it: on or off in the job spec."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value != keep:
        raise document.error(key_path, f"{keep}, true or false", value)
    return value
