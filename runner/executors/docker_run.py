"""One container per run of the workload -> a RawRun; and the containers' lifecycle.

The container runs the workload with the job spec, the data mounted read-only.
Its output is shown as it comes; once it has ended the whole output, its exit
status, and whether it ran out of memory or time go back as a RawRun for
outcome.decide to judge.
"""

from __future__ import annotations

import dataclasses
import signal
import threading

import docker
import docker.errors
import docker.types

from runner.config import Limits
from runner.executors.docker_images import LABEL_PREFIX
from runner.outcome import RawRun
from runner.progress import Progress
from workload.contract import RECORD_PREFIX, JobSpec

DATA_MOUNT = "/data"


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


def run_container(client: docker.DockerClient, image: str, job: JobSpec, variables: dict[str, str],
                  devices: list[docker.types.DeviceRequest], limits: Limits, timeout_seconds: float, labels: dict[str, str],
                  progress: Progress) -> RawRun:
    """Run the workload in a fresh container, its host data folder mounted at DATA_MOUNT; remove the container after."""
    inside = dataclasses.replace(job, data_dir=DATA_MOUNT)
    container = client.containers.run(
        image, ["--job", inside.to_json()], detach=True, labels=labels, environment=variables,
        device_requests=devices, **hardening(job.data_dir, limits),
    )
    timed_out = threading.Event()

    def expire():
        timed_out.set()
        _kill_quietly(container)

    timeout = threading.Timer(timeout_seconds, expire)
    timeout.daemon = True  # an interrupt must never leave the runner waiting for this timer at exit
    try:
        _start_deaf_to_signals(timeout)
        _show(container, job.cell_id, progress)
        exit_code = container.wait()["StatusCode"]
        container.reload()
        out_of_memory = container.attrs["State"].get("OOMKilled", False)
        # The whole output, read once the container has ended: the live stream is only for show,
        # and a read timeout ends it early when a cell is silent for long (a slow epoch, XLA compiling).
        output = container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
    finally:
        timeout.cancel()
        container.remove(force=True)
    return RawRun(exit_code=exit_code, output=output, timed_out=timed_out.is_set(), out_of_memory=out_of_memory)


def hardening(data_dir: str, limits: Limits) -> dict:
    """A benchmark container is no way into the host: no privileges, no network, read-only but for scratch."""
    return {
        "volumes": {data_dir: {"bind": DATA_MOUNT, "mode": "ro"}},
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
