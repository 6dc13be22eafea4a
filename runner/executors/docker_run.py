"""One container per run of the workload -> a RawRun; and the containers' lifecycle.

The container runs the workload with the job spec, the data mounted read-only.
Its output is shown as it comes; once it has ended the whole output, its exit
status, and whether it ran out of memory or time go back as a RawRun for
outcome.decide to judge.
"""

from __future__ import annotations

import dataclasses
import shlex
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import docker
import docker.errors
import docker.types
import requests

from runner import records
from runner.config import Limits
from runner.host import NVIDIA_SMI_QUERY, parse_gpus
from runner.executors.docker_images import LABEL_PREFIX
from runner.outcome import RawRun
from runner.progress import Progress
from workload.contract import RECORD_PREFIX, JobSpec
from workload.threads import start_deaf_to_signals

DATA_MOUNT = "/data"
BENCH_UID = 10001  # the unprivileged user the Dockerfiles create


def device_requests(devices: str) -> list[docker.types.DeviceRequest]:
    """--gpus through the SDK: all GPUs, the listed indices, or none at all."""
    if devices == "none":
        return []
    if devices == "all":
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [docker.types.DeviceRequest(device_ids=devices.split(","), capabilities=[["gpu"]])]


def gpu_unavailable(client: docker.DockerClient, probe_image: str, devices: str) -> str | None:
    """Why GPU cells cannot get a GPU on this engine, or None."""
    return gpu_probe(client, probe_image, devices)[0]


def gpu_probe(client: docker.DockerClient, probe_image: str, devices: str) -> tuple[str | None, list[dict]]:
    """Why GPU cells cannot get a GPU on this engine (None when they can), and the GPUs a container is given.

    Asked by starting a container (from any image at hand) with the same device
    request, running nvidia-smi, which the NVIDIA Container Toolkit mounts when the
    utility capability is asked for. An engine without the NVIDIA runtime refuses
    it with 'could not select device driver', and leaves the container in Created
    state, so it is removed here. A GPU whose container lacks nvidia-smi is still a
    GPU: it is available, with no names.
    """
    if devices == "none":
        return None, []
    container = client.containers.create(
        probe_image, entrypoint=["sh", "-c", shlex.join(NVIDIA_SMI_QUERY) + " || true"], device_requests=device_requests(devices),
        environment={"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}, labels={f"{LABEL_PREFIX}.probe": "gpu"},
    )
    try:
        container.start()
        container.wait()
        return None, parse_gpus(container.logs(stdout=True, stderr=False).decode(errors="replace"))
    except docker.errors.APIError as error:
        reason = (error.explanation or str(error)).strip()
        return (f"no GPU available to containers on this Docker engine ({reason}): install the NVIDIA Container Toolkit, "
                "or check gpu.devices / --gpus"), []
    finally:
        _remove_quietly(container)  # `clean --force` may have taken it already


def remove_run(client: docker.DockerClient, run_folder: Path) -> int:
    """Remove every container this run started, whatever state it is in; how many there were.

    Found by the run's folder, not its id: two runs into different results folders that start
    in the same second share an id, and one's Ctrl-C must not remove the other's containers.
    """
    found = _labelled(client, f"{LABEL_PREFIX}.run-folder={run_folder.resolve()}")
    for container in found:
        _remove_quietly(container)
    return len(found)


def _labelled(client: docker.DockerClient, label: str) -> list:
    """Containers with this label. One removed between the listing and its inspection is left out, not an error:
    after an interrupt the cell's own clean-up may be removing its container at this very moment."""
    return client.containers.list(all=True, filters={"label": label}, ignore_removed=True)


PROBE_LIFETIME = timedelta(minutes=10)  # a probe container lives for seconds; an older one was left behind


def remove_leftovers(client: docker.DockerClient, force: bool, results_dir: Path, environments: frozenset[str] = frozenset()) -> dict:
    """Containers (and the images of these environments) cudnn-matrix left, found by its labels; nothing else is touched.

    Only the containers of runs under results_dir: on a shared engine, another user's runs go into
    another folder, and their leftovers are theirs to remove. A container of a run that is still
    going is spared unless forced: its label names the run's folder, and a live runner holds that
    folder's lock (records.in_progress). Probe containers are spared while they are young enough
    to belong to a runner asking about GPUs right now.
    """
    removed = {"containers": 0, "images": 0, "spared_runs": set(), "elsewhere": 0}
    scope = results_dir.resolve()
    for container in _labelled(client, f"{LABEL_PREFIX}.run-id"):
        folder = container.labels.get(f"{LABEL_PREFIX}.run-folder")
        if not folder or not Path(folder).is_relative_to(scope):  # another results folder's, or a runner too old to say
            removed["elsewhere"] += 1
            continue
        if not force and records.in_progress(Path(folder)):
            removed["spared_runs"].add(container.labels[f"{LABEL_PREFIX}.run-id"])
            continue
        _remove_quietly(container)
        removed["containers"] += 1
    for container in _labelled(client, f"{LABEL_PREFIX}.probe"):
        if force or _age(container) > PROBE_LIFETIME:
            _remove_quietly(container)
            removed["containers"] += 1
    for image in client.images.list(filters={"label": f"{LABEL_PREFIX}.environment"}) if environments else ():
        if image.labels.get(f"{LABEL_PREFIX}.environment") in environments:  # not another matrix's, nor the shared bases
            client.images.remove(image.id, force=True)
            removed["images"] += 1
    return removed


def _age(container) -> timedelta:
    created = datetime.fromisoformat(container.attrs["Created"][:19]).replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - created


def run_labels(run_folder: Path, cell_id: str) -> dict[str, str]:
    """What `clean` and an interrupted run find a cell's container by."""
    return {f"{LABEL_PREFIX}.run-id": run_folder.name, f"{LABEL_PREFIX}.run-folder": str(run_folder.resolve()),
            f"{LABEL_PREFIX}.cell": cell_id}


def run_container(client: docker.DockerClient, image: str, job: JobSpec, variables: dict[str, str],
                  devices: list[docker.types.DeviceRequest], limits: Limits, timeout_seconds: float, labels: dict[str, str],
                  progress: Progress) -> RawRun:
    """Run the workload in a fresh container, its host data folder mounted at DATA_MOUNT; remove the container after.

    The engine refusing the container, the container vanishing, or the engine going away are
    reported in the RawRun, with whatever output was seen: a failure of this cell, not of the run.
    """
    inside = dataclasses.replace(job, data_dir=DATA_MOUNT)
    try:
        container = client.containers.run(
            image, ["--job", inside.to_json()], detach=True, labels=labels, environment=variables,
            device_requests=devices, **hardening(job.data_dir, limits),
        )
    except docker.errors.APIError as error:
        return RawRun(exit_code=None, output="", error=f"the Docker engine refused to start its container: {_explanation(error)}")
    timed_out = threading.Event()

    def expire():
        timed_out.set()
        _kill_quietly(container)

    timeout = threading.Timer(timeout_seconds, expire)
    timeout.daemon = True  # an interrupt must never leave the runner waiting for this timer at exit
    seen: list[str] = []
    try:
        start_deaf_to_signals(timeout)
        _show(container, job.cell_id, progress, seen)
        exit_code = container.wait()["StatusCode"]
        container.reload()
        out_of_memory = container.attrs["State"].get("OOMKilled", False)
        # The whole output, read once the container has ended: the live stream is only for show,
        # and a read timeout ends it early when a cell is silent for long (a slow epoch, XLA compiling).
        output = container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
    except (docker.errors.APIError, requests.exceptions.RequestException) as error:
        return RawRun(None, "\n".join(seen), error=_lost(error))
    finally:
        timeout.cancel()
        _remove_quietly(container)
    return RawRun(exit_code=exit_code, output=output, timed_out=timed_out.is_set(), out_of_memory=out_of_memory)


def _lost(error: Exception) -> str:
    """Why a container's run ended without its result: removed from under the runner, or the engine failed."""
    # A removal caught half-way answers 409 ("dead or marked for removal") rather than 404.
    if isinstance(error, docker.errors.NotFound) or "marked for removal" in _explanation(error):
        return "its container was removed while it ran (by docker rm or `clean --force`)"
    return f"the Docker engine failed while it ran: {_explanation(error)}"


def _explanation(error: Exception) -> str:
    text = getattr(error, "explanation", None) or str(error)
    return " ".join(str(text).split())[:300]


def _remove_quietly(container) -> None:
    try:
        container.remove(force=True)
    except (docker.errors.APIError, requests.exceptions.RequestException):
        pass  # already gone, or the engine with it: nothing left to remove here


def hardening(data_dir: str, limits: Limits) -> dict:
    """A benchmark container is no way into the host: no privileges, no network, read-only but for scratch."""
    return {
        "volumes": {data_dir: {"bind": DATA_MOUNT, "mode": "ro"}},
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        # The benchmark user owns its home (caches such as ~/.keras go there), not root.
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=2g", "/home/bench": f"rw,nosuid,nodev,size=256m,uid={BENCH_UID},gid={BENCH_UID}"},
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


def _show(container, cell_id: str, progress: Progress, seen: list[str]) -> None:
    """Pass the container's output on, line by line, while it runs; keep it in `seen`."""
    pending = ""
    for chunk in container.logs(stream=True, follow=True):
        pending += chunk.decode("utf-8", errors="replace")
        *complete, pending = pending.split("\n")
        seen.extend(complete)
        for line in complete:
            if not line.startswith(RECORD_PREFIX):
                progress.cell_line(cell_id, line.rstrip("\r"))
