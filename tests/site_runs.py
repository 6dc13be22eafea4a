"""Constructed runs for the site's tests and the README's screenshots (docs/screenshots.py): schema-3 run folders
as a runner writes them, on hosts with GPUs, with the cuDNN each cell loaded. Numbers are made up, not measured."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

from runner import records
from runner.records import Record
from measurements import epoch, epoch_telemetry, gpu_epoch, gpu_run_facts, run_telemetry
from workload.contract import MEASUREMENT_SCHEMA, Measurement

WORKSTATION = {"cpu_model": "AMD Ryzen 9 7950X 16-Core Processor", "cpu_cores": 32, "memory_gib": 125.4,
               "gpus": [{"index": "0", "name": "NVIDIA GeForce RTX 4090", "driver": "550.54.15", "memory": "24564 MiB"}]}
CLUSTER = {"cpu_model": "AMD EPYC 7763 64-Core Processor", "cpu_cores": 128, "memory_gib": 1007.7,
           "gpus": [{"index": str(i), "name": "NVIDIA A100-SXM4-80GB", "driver": "535.183.01", "memory": "81920 MiB"} for i in range(4)]}
CPU_ID = "cpu-tf2.21-dogs-vs-cats"
GPU_IDS = {cudnn: f"gpu-cuda12.6-cudnn{cudnn}-tf2.21-dogs-vs-cats" for cudnn in ("9.3", "9.5", "9.8")}
CUDNN_PATH = "/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib/libcudnn.so.9"
CUDART_PATH = "/usr/local/cuda-12.6/targets/x86_64-linux/lib/libcudart.so.12.6.77"


def host(machine: dict, driver: str | None = None, executor: str = "docker") -> dict:
    gpus = [{**gpu, "driver": driver or gpu["driver"]} for gpu in machine["gpus"]]
    return {"cpu_model": machine["cpu_model"], "cpu_cores": machine["cpu_cores"], "memory_gib": machine["memory_gib"],
            "os": "Linux-6.8.0-49-generic-x86_64-with-glibc2.39", "executor": executor,
            "isolation": "container" if executor == "docker" else "none", "docker_engine": "27.3.1", "docker_api": "1.47",
            "gpus": gpus, "project_commit": "4f2c9e1d7b3a5c8e0f6a2b4d9c1e3f5a7b9d0c2e", "project_dirty": False}


def measured(cell_id: str, kind: str, seconds: float, repeat: int, rng: random.Random, driver: str = "", cudnn: str = "",
             framework_version: str = "2.21.0", epochs: int = 4, cuda: str = "12.6", timed_extra: dict | None = None,
             telemetry: dict | None = None) -> Record:
    """An ok record: a warm-up epoch, then `epochs - 1` timed epochs of about `seconds`, a percent or two apart.

    timed_extra: more figures for each timed epoch (an input_wait_share, a "telemetry" with a GPU's throttle reasons);
    telemetry: the measurement's own, which a record needs before its epochs' telemetry is read."""
    factor = 1 + rng.uniform(-0.015, 0.015)
    timed = [seconds * factor * (1 + rng.uniform(-0.004, 0.004)) for _ in range(epochs - 1)]
    all_epochs = [seconds * 2.6, *timed]
    data = {
        "schema": MEASUREMENT_SCHEMA, "cell_id": cell_id, "workload": "dogs-vs-cats",
        "data": {"kind": "real", "train_images": 2000, "validation_images": 800}, "warmup_epochs": 1,
        "epochs": [epoch(s, s * 0.82, logs={"loss": 0.69 - 0.03 * n, "accuracy": 0.52 + 0.04 * n, "val_loss": 0.68 - 0.02 * n,
                                           "val_accuracy": 0.55 + 0.03 * n}, **((timed_extra or {}) if n else {}))
                   for n, s in enumerate(all_epochs)],
        "versions": {"python": "3.11.10", "tensorflow": framework_version, "keras": "3.12.0", "keras_backend": "tensorflow"},
        "host": {"cpu_model": "x", "cpu_count": 32, "cpus_usable": 32},
        "settings": {"batch_size": 32, "jit_compile": False, "precision": "fp32", "compute_dtype": "float32", "loader": "tfdata",
                     "pipeline": {"input": "jpeg", "autotune": False, "parallel_calls": 2, "prefetch_batches": 2}},
        "devices": ["/physical_device:GPU:0"] if kind == "gpu" else [],
        "gpu": {"registered": ["/physical_device:GPU:0"], "built_with": {"is_cuda_build": "True", "cuda_version": "12.5.1", "cudnn_version": "9"},
                "driver": driver, "driver_cuda": "12.6", "cuda_runtime": {"path": CUDART_PATH, "version": "12.6"},
                "cudnn": {"path": CUDNN_PATH, "version": cudnn}} if kind == "gpu" else
               {"registered": [], "built_with": {}, "driver": None, "driver_cuda": None,
                "cuda_runtime": {"path": None, "version": None}, "cudnn": {"path": None, "version": None}},
        "model": {"parameters": 1212513, "forward_flops": 358146624},
        "telemetry": telemetry,
    }
    return record(cell_id, kind, measurement=Measurement.from_dict(data), repeat=repeat, cudnn=cudnn[:3] if cudnn else "", cuda=cuda,
                  framework_version=".".join(framework_version.split(".")[:2]))


def record(cell_id: str, kind: str, status: str = "ok", reason: str = "", measurement: Measurement | None = None, repeat: int = 0,
           cudnn: str = "", log_tail: str = "", cuda: str = "12.6", framework_version: str = "2.21") -> Record:
    axes = {"kind": kind, "framework": "tensorflow", "framework_version": framework_version}
    if kind == "gpu":
        axes.update(cuda=cuda, cudnn=cudnn or cell_id.split("cudnn")[1].split("-")[0])
    return Record(cell_id=cell_id, status=status, reason=reason, axes=axes, workload="dogs-vs-cats", executor="docker",
                  environment={"name": cell_id.rsplit("-dogs", 1)[0], "image": f"cudnn-matrix/{cell_id.rsplit('-dogs', 1)[0]}:5d41402abc4b2a76",
                               "image_id": "sha256:9f86d081884c7d65", "base_image": "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04"},
                  started="2026-11-20T09:00:00+00:00", ended="2026-11-20T09:03:00+00:00", measurement=measurement, log_tail=log_tail, repeat=repeat)


def write_run(results: Path, run_id: str, host_facts: dict, cells: list[Record], state: str = "finished") -> Path:
    """A run folder: its manifest, then its records appended as a runner appends them."""
    folder = results / run_id
    folder.mkdir(parents=True)
    begun = datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S")
    manifest = {"schema": records.RESULTS_SCHEMA, "runner_version": "0.3.0", "run_id": run_id, "matrix_file": "/home/lab/cudnn-matrix/matrix.yaml",
                "matrix_sha256": "3b5d5c3712955042212316173ccf37be800b7f4e4f1d4c4b8e58b3fa7d2ac3f9", "host": host_facts,
                "started": begun.isoformat() + "+00:00", "state": state}
    if state != "running":
        manifest["ended"] = (begun + timedelta(minutes=42)).isoformat() + "+00:00"
    (folder / records.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / records.RESULTS_FILE).touch()
    for cell in cells:
        records.append(folder, cell)
    return folder


def matrix_run(results: Path, run_id: str, machine: dict, driver: str, gpu_seconds: dict[str, float], seed: int, repeats: int = 5,
               state: str = "finished") -> Path:
    """The default matrix's cells on one host: the CPU cell and a GPU cell per cuDNN, `repeats` repeats each, interleaved."""
    rng = random.Random(seed)
    cells = []
    for repeat in range(repeats):
        cells.append(measured(CPU_ID, "cpu", 9.8, repeat, rng))
        for cudnn, seconds in gpu_seconds.items():
            cells.append(measured(GPU_IDS[cudnn[:3]], "gpu", seconds, repeat, rng, driver=driver, cudnn=cudnn))
    return write_run(results, run_id, host(machine, driver), cells, state)


def demo(results: Path) -> list[Path]:
    """Five runs on a workstation and a cluster node over a week: a driver update that made the workstation's GPU cells
    slower stands out, and a cuDNN 9.8 upgrade on the cluster that made its cell faster."""
    return [
        matrix_run(results, "20261120-090000", WORKSTATION, "550.54.15", {"9.3.0": 0.80, "9.5.1": 0.79, "9.8.0": 0.64}, seed=1),
        matrix_run(results, "20261121-140000", CLUSTER, "535.183.01", {"9.3.0": 0.62, "9.5.1": 0.61, "9.8.0": 0.61}, seed=2),
        matrix_run(results, "20261124-090000", WORKSTATION, "560.35.03", {"9.3.0": 0.88, "9.5.1": 0.87, "9.8.0": 0.71}, seed=3),
        matrix_run(results, "20261125-140000", CLUSTER, "535.183.01", {"9.3.0": 0.62, "9.5.1": 0.61, "9.8.2": 0.50}, seed=4),
        matrix_run(results, "20261127-090000", WORKSTATION, "560.35.03", {"9.3.0": 0.88, "9.5.1": 0.87, "9.8.0": 0.70}, seed=5),
    ]


WIDE_RUN = "20261128-090000"
THROTTLED = {"telemetry": epoch_telemetry([gpu_epoch(clock_event_reasons=["hw_thermal_slowdown"])])}
DRIVER_TOO_OLD = "the host's driver 550.54.15 runs CUDA 12.4 at most; CUDA 12.8 needs driver 570 or newer"


def gpu_id(cuda: str, cudnn: str, tf: str) -> str:
    return f"gpu-cuda{cuda}-cudnn{cudnn}-tf{tf}-dogs-vs-cats"


def wide_run(results: Path) -> Path:
    """A run the size of a real matrix, most of it not measured, as a user's first run on an old driver is:
    two TensorFlow versions across CUDA x cuDNN, eight cells skipped for one reason, one excluded, one GPU cell
    throttled and one waiting on its input. Five repeats each, so that verdicts can be reached."""
    rng = random.Random(28)
    seconds = {("2.21", "12.5", "9.3"): 0.80, ("2.21", "12.5", "9.5"): 0.79, ("2.21", "12.6", "9.3"): 0.78,
               ("2.21", "12.6", "9.5"): 0.77, ("2.21", "12.6", "9.8"): 0.64, ("2.20", "12.6", "9.3"): 0.83, ("2.20", "12.6", "9.5"): 0.82}
    cells = []
    for repeat in range(5):
        cells.append(measured(CPU_ID, "cpu", 9.8, repeat, rng))
        cells.append(measured("cpu-tf2.20-dogs-vs-cats", "cpu", 10.1, repeat, rng, framework_version="2.20.0"))
        for (tf, cuda, cudnn), time in seconds.items():
            extra = THROTTLED if (tf, cuda, cudnn) == ("2.21", "12.6", "9.3") else {"input_wait_share": 0.3} if tf == "2.20" and cudnn == "9.5" else None
            cells.append(measured(gpu_id(cuda, cudnn, tf), "gpu", time, repeat, rng, driver="550.54.15", cudnn=f"{cudnn}.0", cuda=cuda,
                                  framework_version=f"{tf}.0", timed_extra=extra, telemetry=run_telemetry([gpu_run_facts()]) if extra else None))
    cells.append(record(gpu_id("12.5", "9.8", "2.21"), "gpu", status="excluded", cuda="12.5",
                        reason="cuDNN 9.8 needs CUDA 12.6 or newer in its pip wheels"))
    for cudnn in ("9.3", "9.5", "9.8", "9.10"):
        for tf in ("2.20", "2.21"):
            cells.append(record(gpu_id("12.8", cudnn, tf), "gpu", status="skipped", reason=DRIVER_TOO_OLD, cuda="12.8", framework_version=tf))
    return write_run(results, WIDE_RUN, host(WORKSTATION), cells)
