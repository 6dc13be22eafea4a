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


# The timer's figures in an epoch: a schema-1 epoch kept Keras' logs beside them.
EPOCH_FIGURES = tuple(field.name for field in fields(Epoch) if field.name not in ("logs", "telemetry"))


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
