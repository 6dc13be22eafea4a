"""Base images without a registry.

Air-gapped GPU sites, and every machine this project is developed on, cannot
pull from a registry. When the configured base cannot be had locally or by
pull, an equivalent base is made from Debian's own packages: debootstrap a
minimal root filesystem with python3, pip and venv, and import it as an image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from runner.config import BuildSettings
from runner.errors import UserError

OFFLINE_SUITE = "bookworm"  # Python 3.11, as in the default python:3.11-slim
OFFLINE_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates")
OFFLINE_REPOSITORY = "cudnn-matrix/base"
IMAGE_CHANGES = ['ENV LANG=C.UTF-8', 'CMD ["python3"]', "LABEL io.cudnn-matrix.kind=base"]


@dataclass(frozen=True)
class BaseImage:
    """The base an image is built FROM, as it was actually obtained."""

    requested: str
    reference: str
    image_id: str
    digest: str
    how: str  # "local", "pulled" or "debootstrap"


def resolve_base(client: docker.DockerClient, requested: str, settings: BuildSettings, progress: Callable[[str], None]) -> BaseImage:
    if settings.offline_base:
        return offline_base(client, requested, settings, progress)
    try:
        image = client.images.get(requested)
        return BaseImage(requested, requested, image.id, _digest(image), "local")
    except docker.errors.ImageNotFound:
        pass
    progress(f"pulling base image {requested}")
    try:
        image = client.images.pull(requested)
        return BaseImage(requested, requested, image.id, _digest(image), "pulled")
    except docker.errors.APIError as error:
        reason = (error.explanation or str(error)).splitlines()[0]
        progress(f"cannot pull {requested} ({reason}); using an equivalent base made from Debian packages instead")
        return offline_base(client, requested, settings, progress)


def local_base(client: docker.DockerClient, requested: str, settings: BuildSettings) -> BaseImage | None:
    """The base resolve_base would start from, where this engine has it already; None rather than a pull or a debootstrap."""
    candidates = [(requested, "local")] * (not settings.offline_base) + [(offline_reference(), "debootstrap")]
    for reference, how in candidates:
        try:
            image = client.images.get(reference)
        except docker.errors.ImageNotFound:
            continue
        return BaseImage(requested, reference, image.id, _digest(image) if how == "local" else "", how)
    return None


def offline_base(client: docker.DockerClient, requested: str, settings: BuildSettings, progress: Callable[[str], None]) -> BaseImage:
    reference = offline_reference()
    try:
        image = client.images.get(reference)
        progress(f"using the registry-free base {reference} in place of {requested}")
    except docker.errors.ImageNotFound:
        progress(f"building the registry-free base {reference} (Debian {OFFLINE_SUITE} with python3, pip, venv) in place of {requested}; about a minute")
        image = _debootstrap_and_import(client, reference, settings.debian_mirror)
    return BaseImage(requested, reference, image.id, "", "debootstrap")


def _debootstrap_and_import(client: docker.DockerClient, reference: str, mirror: str):
    if shutil.which("debootstrap") is None:
        raise UserError("debootstrap is not installed, and it is needed to build a base image without a registry: install it (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise UserError("debootstrap needs root to build the registry-free base image: run the build as root once, or make the base image available locally")
    with tempfile.TemporaryDirectory(prefix="cudnn-matrix-rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(OFFLINE_PACKAGES)}", OFFLINE_SUITE, str(rootfs), mirror]
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            tail = " | ".join((finished.stdout + finished.stderr).strip().splitlines()[-3:])
            raise UserError(f"debootstrap of Debian {OFFLINE_SUITE} from {mirror} failed (exit {finished.returncode}): {tail}")
        archive = Path(workdir) / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        repository, tag = reference.split(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag, changes=IMAGE_CHANGES)
    return client.images.get(reference)


def offline_reference() -> str:
    """The registry-free base's name: its suite and a hash of its recipe."""
    return f"{OFFLINE_REPOSITORY}:{OFFLINE_SUITE}-python3-{_recipe_hash()}"


def _recipe_hash() -> str:
    """Names the base by what is in it; the mirror it came from does not change that."""
    recipe = "\n".join([OFFLINE_SUITE, *OFFLINE_PACKAGES, *IMAGE_CHANGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _digest(image) -> str:
    digests = image.attrs.get("RepoDigests") or []
    return digests[0] if digests else ""
