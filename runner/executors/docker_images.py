"""Environment specs -> built images, through the Docker SDK.

An image's tag is a hash of everything it is built from: the Dockerfile, the
workload, the extra CA certificates, the environment spec (its generated
requirements files and variables) and the base image actually used. An
unchanged matrix therefore rebuilds nothing, and any change to the recipe or
its inputs builds a new image.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from runner.config import BuildSettings
from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.executors import IMAGE_NAMESPACE
from runner.executors.base_images import BaseImage, local_base, resolve_base
from runner.locks import INSTALLER, Lock, from_reports
from runner.outcome import LOG_TAIL_LINES
from runner.progress import Progress

PROJECT = Path(__file__).resolve().parents[2]
DOCKER_DIR = PROJECT / "docker"
WORKLOAD_DIR = PROJECT / "workload"
LABEL_PREFIX = "io.cudnn-matrix"
LOCK_FOLDER = "/opt/lock"  # in an image: pip's installation reports and the Debian packages (the Dockerfiles)


def repository(spec: EnvironmentSpec) -> str:
    return f"{IMAGE_NAMESPACE}/{spec.name}"


@dataclass(frozen=True)
class BuiltImage:
    spec: EnvironmentSpec
    tag: str
    image_id: str
    base: BaseImage


@dataclass(frozen=True)
class BuildFailure:
    spec: EnvironmentSpec
    reason: str
    log_tail: str


class Builder:
    """Builds images, resolving each base image once however many images start from it."""

    def __init__(self, client: docker.DockerClient, settings: BuildSettings, progress: Progress):
        self.client, self.settings, self.progress = client, settings, progress
        self.bases: dict[str, BaseImage] = {}

    def build(self, spec: EnvironmentSpec) -> BuiltImage | BuildFailure:
        if spec.base not in self.bases:
            self.bases[spec.base] = resolve_base(self.client, spec.base, self.settings, self.progress)
        return build_image(self.client, spec, self.bases[spec.base], self.settings, self.progress)

    def existing(self, spec: EnvironmentSpec) -> BuiltImage | None:
        """The image `build` would give, where this engine has it and its base already: nothing is pulled or built."""
        base = self.bases.get(spec.base) or local_base(self.client, spec.base, self.settings)
        if base is None:
            return None
        tag = image_tag(spec, base, context_files(spec, self.settings))
        try:
            return BuiltImage(spec, tag, self.client.images.get(tag).id, base)
        except docker.errors.ImageNotFound:
            return None


def build_image(client, spec: EnvironmentSpec, base: BaseImage, settings: BuildSettings, progress) -> BuiltImage | BuildFailure:
    files, build_args = context_files(spec, settings), _build_args(base)
    tag = image_tag(spec, base, files)
    try:
        image = client.images.get(tag)
        progress(f"{spec.name}: up to date ({tag})")
        return BuiltImage(spec, tag, image.id, base)
    except docker.errors.ImageNotFound:
        pass
    progress(f"{spec.name}: building {tag} on {base.reference}")
    labels = {f"{LABEL_PREFIX}.kind": spec.kind, f"{LABEL_PREFIX}.base-image": base.requested,
              f"{LABEL_PREFIX}.base-image-used": base.reference, f"{LABEL_PREFIX}.base-image-id": base.image_id,
              f"{LABEL_PREFIX}.base-image-digest": base.digest}
    labels.update({f"{LABEL_PREFIX}.environment": spec.name, f"{LABEL_PREFIX}.requirements": " ".join(spec.requirements),
                   f"{LABEL_PREFIX}.libraries": " ".join(spec.libraries)})
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    try:
        stream = client.api.build(
            fileobj=_tar(files), custom_context=True, tag=tag, buildargs=build_args, labels=labels,
            rm=True, forcerm=True, decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                return _failure(spec, chunk["error"], tail)
            for line in chunk.get("stream", "").splitlines():
                if line.strip():
                    tail.append(line)
                    progress.build_line(spec.name, line)
    except docker.errors.APIError as error:
        return _failure(spec, error.explanation or str(error), tail)
    image = client.images.get(tag)
    return BuiltImage(spec, tag, image.id, base)


def image_tag(spec: EnvironmentSpec, base: BaseImage, files: dict[str, bytes]) -> str:
    """The tag of the image of this spec on this base, from its build context: the hash of everything it is built from."""
    return f"{repository(spec)}:{content_hash(files, _build_args(base), base.image_id)}"


def _build_args(base: BaseImage) -> dict[str, str]:
    return {"BASE_IMAGE": base.reference, "INSTALLER": INSTALLER}


def read_lock(client, built: BuiltImage) -> Lock | None:
    """The image's lock, from what its build left in /opt/lock; None for an image built before images kept one (one --load brought)."""
    container = client.containers.create(built.tag, entrypoint=["true"])
    try:
        stream, _ = container.get_archive(LOCK_FOLDER)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            files = {Path(member.name).name: archive.extractfile(member).read().decode()
                     for member in archive.getmembers() if member.isfile()}
    except docker.errors.NotFound:
        return None
    finally:
        container.remove(force=True)
    base = {"image": built.base.requested, "used": built.base.reference, "image_id": built.base.image_id,
            "digest": built.base.digest, "how": built.base.how}
    libraries = json.loads(files["libraries.json"]) if "libraries.json" in files else None
    return from_reports(built.spec.name, base, json.loads(files["requirements.json"]), libraries, files.get("debian.txt", ""))


def _failure(spec: EnvironmentSpec, error: str, tail: deque[str]) -> BuildFailure:
    """A failed build is a failed cell, except a full disk, which fails every build after it."""
    reason = error.strip().splitlines()[-1] if error.strip() else "no reason given"
    if "no space left on device" in error:
        raise UserError(f"no space left on device while building {spec.name}: free space for Docker (docker system prune, or a larger disk) and run again")
    return BuildFailure(spec, f"image build failed: {reason}", "\n".join(tail))


def context_files(spec: EnvironmentSpec, settings: BuildSettings) -> dict[str, bytes]:
    """The build context: the kind's Dockerfile, the workload, the spec as files, and the CA certificates to trust."""
    files = {"Dockerfile": (DOCKER_DIR / f"Dockerfile.{spec.kind}").read_bytes()}
    for path in sorted(WORKLOAD_DIR.glob("*.py")):
        files[f"workload/{path.name}"] = path.read_bytes()
    files["requirements.txt"] = _lines(spec.requirements)
    files["libraries.txt"] = _lines(spec.libraries)
    # Set at run time, not in the image; hashed all the same, so that a tag names the whole spec.
    files["variables.json"] = json.dumps(dict(spec.variables), sort_keys=True).encode()
    files["certs/README"] = b"Extra CA certificates trusted during the build.\n"
    for index, path in enumerate(settings.ca_certificates):
        # update-ca-certificates only picks up files ending in .crt.
        files[f"certs/{index:02d}-{path.stem}.crt"] = path.read_bytes()
    return files


def _lines(items: tuple[str, ...]) -> bytes:
    return "".join(f"{item}\n" for item in items).encode()


def content_hash(files: dict[str, bytes], build_args: dict[str, str], base_image_id: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    digest.update(json.dumps(build_args, sort_keys=True).encode())
    digest.update(base_image_id.encode())
    return digest.hexdigest()[:16]


def _tar(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    buffer.seek(0)
    return buffer
