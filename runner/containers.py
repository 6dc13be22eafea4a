"""Stage 4: one container per cell -> one Record.

The container runs the workload script with the cell's parameters, the data
mounted read-only. Its output is shown as it comes; the last line starting
with the record prefix is the measurement. Whatever goes wrong becomes a
failed Record with the reason and the log tail: a failure is data.
"""

from __future__ import annotations

import json
import signal
import threading
from collections import deque

import docker
import docker.errors
import docker.types

from runner.cells import Cell
from runner.config import Limits
from runner.datasets import Dataset
from runner.images import LABEL_PREFIX, LOG_TAIL_LINES, BuildFailure, BuiltImage
from runner.progress import Progress
from runner.records import Record, now

RECORD_PREFIX = "CUDNN_MATRIX_RECORD "
DATA_MOUNT = "/data"


def workload_command(cell: Cell) -> list[str]:
    workload = cell.workload
    command = [
        "--cell-id", cell.id,
        "--workload", workload.model,
        "--data", DATA_MOUNT,
        "--epochs", str(workload.epochs),
        "--warmup-epochs", str(workload.warmup_epochs),
        "--batch-size", str(workload.batch_size),
        "--train-images", str(workload.train_images),
        "--validation-images", str(workload.validation_images),
        "--jit-compile", "true" if workload.jit_compile else "false",
        "--intra-op-threads", str(workload.intra_op_threads),
        "--inter-op-threads", str(workload.inter_op_threads),
        "--fault", workload.fault,
        "--input", workload.pipeline.input,
        "--autotune", "true" if workload.pipeline.autotune else "false",
        "--parallel-calls", str(workload.pipeline.parallel_calls),
        "--prefetch-batches", str(workload.pipeline.prefetch_batches),
    ]
    if cell.kind == "gpu":
        command += ["--expect-gpu", "--expect-cudnn", cell.cudnn]
    return command


def device_requests(devices: str) -> list[docker.types.DeviceRequest]:
    """--gpus through the SDK: all GPUs, the listed indices, or none at all."""
    if devices == "none":
        return []
    if devices == "all":
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [docker.types.DeviceRequest(device_ids=devices.split(","), capabilities=[["gpu"]])]


def gpu_unavailable(client: docker.DockerClient, probe_image: str, devices: str) -> str | None:
    """Why GPU cells cannot get a GPU on this engine, or None.

    Asked by starting a no-op container (from any image at hand) with the same
    device request: an engine without the NVIDIA runtime refuses it with 'could
    not select device driver', and leaves the container in Created state, so it
    is removed here.
    """
    if devices == "none":
        return None
    container = client.containers.create(
        probe_image, entrypoint=["python3", "-c", "pass"], device_requests=device_requests(devices),
        labels={f"{LABEL_PREFIX}.probe": "gpu"},
    )
    try:
        container.start()
        container.wait()
        return None
    except docker.errors.APIError as error:
        reason = (error.explanation or str(error)).strip()
        return f"no GPU available to containers on this Docker engine ({reason}): install the NVIDIA Container Toolkit, or check gpu.devices / --gpus"
    finally:
        container.remove(force=True)


def remove_run(client: docker.DockerClient, run_id: str) -> None:
    """Remove every container this run started, whatever state it is in."""
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}.run-id={run_id}"}):
        container.remove(force=True)


def remove_leftovers(client: docker.DockerClient, images: bool) -> dict[str, int]:
    """Containers (and optionally images) cudnn-matrix made, found by its labels; nothing else is touched."""
    removed = {"containers": 0, "images": 0}
    for label in (f"{LABEL_PREFIX}.run-id", f"{LABEL_PREFIX}.probe"):
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
            removed["containers"] += 1
    if images:
        for image in client.images.list(filters={"label": f"{LABEL_PREFIX}.kind"}):
            client.images.remove(image.id, force=True)
            removed["images"] += 1
    return removed


def not_run(cell: Cell, status: str, reason: str) -> Record:
    """The record of a cell that was excluded or skipped: listed with its reason, never silently left out."""
    return _record(cell, None, status, reason, now())


def run_cell(
    client: docker.DockerClient,
    cell: Cell,
    image: BuiltImage | BuildFailure,
    dataset: Dataset,
    run_id: str,
    devices: str,
    limits: Limits,
    progress: Progress,
) -> Record:
    started = now()
    if isinstance(image, BuildFailure):
        return _record(cell, None, "failed", image.reason, started, log_tail=image.log_tail)
    container = client.containers.run(
        image.tag,
        workload_command(cell),
        detach=True,
        labels={f"{LABEL_PREFIX}.run-id": run_id, f"{LABEL_PREFIX}.cell": cell.id},
        device_requests=device_requests(devices) if cell.kind == "gpu" else [],
        **hardening(dataset, limits),
    )
    timed_out = threading.Event()

    def expire():
        timed_out.set()
        _kill_quietly(container)

    timeout = threading.Timer(cell.workload.timeout_minutes * 60.0, expire)
    timeout.daemon = True  # an interrupt must never leave the runner waiting for this timer at exit
    try:
        _start_deaf_to_signals(timeout)
        _show(container, cell.id, progress)
        exit_code = container.wait()["StatusCode"]
        container.reload()
        out_of_memory = container.attrs["State"].get("OOMKilled", False)
        # The whole output, read once the container has ended: the live stream is only for show,
        # and a read timeout ends it early when a cell is silent for long (a slow epoch, XLA compiling).
        tail, record_line = _sort_output(container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace"))
    finally:
        timeout.cancel()
        container.remove(force=True)
    log_tail = "\n".join(tail)
    measurement = _measurement(record_line)
    if measurement is not None and measurement.get("failure"):
        # The workload's own checks failed (no GPU, wrong cuDNN): keep what it saw as evidence.
        return _record(cell, image, "failed", measurement["failure"], started, measurement, log_tail)
    if timed_out.is_set():
        return _record(cell, image, "failed", f"exceeded its time limit of {cell.workload.timeout_minutes:g} min (workloads.{cell.workload.name}.timeout_minutes)", started, log_tail=log_tail)
    if out_of_memory:
        return _record(cell, image, "failed", f"killed for running out of memory (limit {limits.memory}, limits.memory)", started, log_tail=log_tail)
    if exit_code != 0:
        return _record(cell, image, "failed", f"the workload exited with code {exit_code}: {_last_words(tail)}", started, log_tail=log_tail)
    if measurement is None or not measurement.get("epochs"):
        return _record(cell, image, "failed", "the workload printed no readable result record", started, log_tail=log_tail)
    return _record(cell, image, "ok", "", started, measurement, log_tail)


def hardening(dataset: Dataset, limits: Limits) -> dict:
    """A benchmark container is no way into the host: no privileges, no network, read-only but for scratch."""
    return {
        "volumes": {str(dataset.path): {"bind": DATA_MOUNT, "mode": "ro"}},
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=2g", "/home/bench": "rw,nosuid,nodev,size=256m"},
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,  # no swap beyond the limit: an over-budget cell is killed, not slowed
        "pids_limit": limits.pids,
        "privileged": False,
    }


def _kill_quietly(container) -> None:
    try:
        container.kill()
    except docker.errors.APIError:
        pass  # it ended on its own meanwhile


def _record(cell: Cell, image: BuiltImage | None, status: str, reason: str, started: str, measurement=None, log_tail: str = "") -> Record:
    return Record(
        cell_id=cell.id, status=status, reason=reason, kind=cell.kind, workload=cell.workload.name,
        tensorflow_requested=cell.tensorflow, cuda_requested=cell.cuda, cudnn_requested=cell.cudnn,
        image=image.tag if image else cell.image.repository, image_id=image.image_id if image else "",
        base_image=image.base.reference if image else cell.image.base_image,
        started=started, ended=now(), measurement=measurement, log_tail=log_tail,
    )


def _start_deaf_to_signals(thread: threading.Thread) -> None:
    """Start a helper thread that never receives SIGINT/SIGTERM (threads inherit the signal mask).

    The kernel may hand a process's signal to any thread that does not block
    it; delivered to a helper, it would leave the main thread asleep in a read
    from Docker, and Ctrl-C would seem ignored.
    """
    stopping = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _show(container, cell_id: str, progress: Progress) -> None:
    """Pass the container's output on, line by line, while it runs."""
    pending = ""
    for chunk in container.logs(stream=True, follow=True):
        pending += chunk.decode("utf-8", errors="replace")
        *complete, pending = pending.split("\n")
        for line in complete:
            if not line.startswith(RECORD_PREFIX):
                progress.cell_line(cell_id, line.rstrip("\r"))


def _sort_output(output: str) -> tuple[deque[str], str | None]:
    """The last lines of the output, and the last record line in it."""
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    record_line = None
    for line in output.splitlines():
        if line.startswith(RECORD_PREFIX):
            record_line = line[len(RECORD_PREFIX):]
        else:
            tail.append(line)
    return tail, record_line


def _measurement(record_line: str | None) -> dict | None:
    if record_line is None:
        return None
    try:
        value = json.loads(record_line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _last_words(lines) -> str:
    meaningful = [line.strip() for line in lines if line.strip()]
    return meaningful[-1] if meaningful else "no output"
