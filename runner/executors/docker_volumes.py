"""The data of a run on an engine that cannot mount this machine's folders: a named volume, filled once, reused by checksum.

A tar of the folder goes in through a container that only mounts the volume, block by block;
a marker written last tells a whole copy from one cut short.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from runner.executors.docker_images import LABEL_PREFIX

VOLUME_PREFIX = "cudnn-matrix-data-"
FILL_MOUNT = "/fill"
COMPLETE_MARKER = ".cudnn-matrix-complete"  # written after the data: a volume without it holds a copy cut short


def checksum(folder: Path) -> str:
    """The data folder by content: every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def data_volume(client: docker.DockerClient, folder: Path, image: str, say: Callable[[str], None], stop: threading.Event | None = None) -> str:
    """The volume on the engine holding a copy of folder: reused when its checksum matches, else made and filled.

    A copy that fails, or that `stop` ends half-way, takes its volume with it.
    """
    name = VOLUME_PREFIX + checksum(folder)[:16]
    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        volume = None
    if volume is not None and not _complete(client, name, image):
        say(f"volume {name} holds a copy cut short (a runner killed during it): copying again")
        volume.remove(force=True)
        volume = None
    if volume is None:
        say(f"copying data {folder} into volume {name}")
        volume = client.volumes.create(name, labels={f"{LABEL_PREFIX}.kind": "data", f"{LABEL_PREFIX}.source": str(folder)})
        try:
            _fill(client, name, folder, image, stop or threading.Event())
        except BaseException:
            volume.remove(force=True)  # never a half-filled volume under a checksum's name
            raise
    else:
        say(f"data {folder} already there (volume {name})")
    return name


def _complete(client: docker.DockerClient, volume: str, image: str) -> bool:
    """Whether the volume's copy was finished: its marker, written last, is there (a kill -9 mid-copy leaves none)."""
    container = client.containers.create(image, entrypoint=["true"], volumes={volume: {"bind": FILL_MOUNT, "mode": "ro"}},
                                         network_mode="none", labels={f"{LABEL_PREFIX}.probe": "data"})
    try:
        container.get_archive(f"{FILL_MOUNT}/{COMPLETE_MARKER}")
        return True
    except docker.errors.NotFound:
        return False
    finally:
        container.remove(force=True)


class Stopped(Exception):
    """The run was interrupted: this host's thread ends without starting anything more."""


def _fill(client: docker.DockerClient, volume: str, folder: Path, image: str, stop: threading.Event) -> None:
    """Copy folder into the volume through a container that only mounts it: a tar in a temporary file, sent in blocks.

    The data can be hundreds of MB, so it is never held in memory whole.
    """
    with tempfile.TemporaryFile(prefix="cudnn-matrix-data-", suffix=".tar") as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for path in sorted(folder.rglob("*")):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
                info.uid = info.gid = 0
                info.mode |= 0o755 if path.is_dir() else 0o644
                if path.is_file():
                    with open(path, "rb") as stream:
                        tar.addfile(info, stream)
                elif path.is_dir():
                    tar.addfile(info)
        size = archive.tell()
        archive.seek(0)
        container = client.containers.create(image, entrypoint=["true"], volumes={volume: {"bind": FILL_MOUNT, "mode": "rw"}},
                                             network_mode="none", labels={f"{LABEL_PREFIX}.probe": "data"})
        try:
            if not container.put_archive(FILL_MOUNT, _Upload(archive, size, stop)):
                raise docker.errors.APIError(f"the engine refused the data for volume {volume}")
            if not container.put_archive(FILL_MOUNT, _marker()):
                raise docker.errors.APIError(f"the engine refused the completion marker for volume {volume}")
        finally:
            container.remove(force=True)


def _marker() -> bytes:
    """A tar of the empty file that says a volume's copy is whole."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(COMPLETE_MARKER)
        info.mode = 0o644
        tar.addfile(info)
    return archive.getvalue()


class _Upload:
    """A file sent as a request's body, block by block, with its length; `stop` ends the sending between two blocks."""

    def __init__(self, file, size: int, stop: threading.Event):
        self.file, self.size, self.stop = file, size, stop

    def __len__(self) -> int:
        return self.size

    def __iter__(self):  # what tells requests that this body is a stream
        return iter(lambda: self.read(1 << 20), b"")

    def read(self, size: int = -1) -> bytes:
        if self.stop.is_set():
            raise Stopped("the run was interrupted during the data copy")
        return self.file.read(size)
