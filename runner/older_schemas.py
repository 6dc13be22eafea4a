"""Records and measurements of older schemas in the next one's terms: converted as they are read, never rewritten.

Each step names both its versions, so that a later schema adds a step rather than changing one.
"""

from __future__ import annotations

from dataclasses import fields

from workload.contract import Epoch


def record_2_to_3(data: dict) -> dict:
    """A schema-2 record (every cell a TensorFlow cell in a Docker image) in schema 3's terms."""
    data = dict(data)
    axes = {"kind": data.pop("kind"), "framework": "tensorflow", "framework_version": data.pop("tensorflow_requested")}
    for axis in ("cuda", "cudnn"):
        requested = data.pop(f"{axis}_requested")
        if requested:
            axes[axis] = requested
    environment = {key: data.pop(key) for key in ("image", "image_id", "base_image")}
    return {**data, "axes": axes, "executor": "docker", "environment": environment, "schema": 3}


# The timer's figures in a schema-2 epoch: a schema-1 epoch kept Keras' logs beside them.
EPOCH_FIGURES = tuple(field.name for field in fields(Epoch) if field.name not in ("logs", "telemetry", "validation_seconds"))


def measurement_1_to_2(data: dict) -> dict:
    """A schema-1 measurement in schema 2's terms: each epoch's Keras figures under "logs", figures an older workload
    did not record None, and each GPU's not_sampled (written only when a GPU left figures out) present."""
    epochs = data.get("epochs")
    if isinstance(epochs, list):
        epochs = [{**{name: epoch.get(name) for name in EPOCH_FIGURES}, "telemetry": epoch.get("telemetry"),
                   "logs": {key: value for key, value in epoch.items() if key not in (*EPOCH_FIGURES, "telemetry")}}
                  if isinstance(epoch, dict) else epoch for epoch in epochs]
    telemetry = data.get("telemetry")
    if isinstance(telemetry, dict) and isinstance(telemetry.get("gpus"), list):
        telemetry = {**telemetry, "gpus": [{"not_sampled": {}, **gpu} if isinstance(gpu, dict) else gpu for gpu in telemetry["gpus"]]}
    return {**data, "schema": 2, "epochs": epochs, "telemetry": telemetry}


def measurement_2_to_3(data: dict) -> dict:
    """A schema-2 measurement in schema 3's terms: its epochs did not time validation apart (validation_seconds None).

    Their train_seconds stand: the timer synchronised after every training step then, so they timed finished work.
    """
    epochs = data.get("epochs")
    if isinstance(epochs, list):
        epochs = [{**epoch, "validation_seconds": None} if isinstance(epoch, dict) else epoch for epoch in epochs]
    return {**data, "schema": 3, "epochs": epochs}


def measurement_3_to_4(data: dict) -> dict:
    """A schema-3 measurement in schema 4's terms: it profiled no kernels (kernel_time None)."""
    return {**data, "schema": 4, "kernel_time": None}


# Each older measurement schema's step towards the next: a measurement is converted step by step up to the current one.
MEASUREMENT_STEPS = {1: measurement_1_to_2, 2: measurement_2_to_3, 3: measurement_3_to_4}


def measurement_to_current(data: dict) -> dict:
    while data.get("schema") in MEASUREMENT_STEPS:
        data = MEASUREMENT_STEPS[data["schema"]](data)
    return data
