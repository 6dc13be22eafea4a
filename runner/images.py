"""Stage 3: image specs -> built images, through the Docker SDK.

An image's tag is a hash of everything it is built from: the Dockerfile, the
workload script, the extra CA certificates, the build ARGs and the base image
actually used. An unchanged matrix therefore rebuilds nothing, and any change
to the recipe or its inputs builds a new image.
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

from runner.base import BaseImage, resolve_base
from runner.cells import ImageSpec
from runner.config import BuildSettings
from runner.errors import UserError
from runner.progress import Progress

DOCKER_DIR = Path(__file__).resolve().parent.parent / "docker"
LABEL_PREFIX = "io.cudnn-matrix"
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class BuiltImage:
    spec: ImageSpec
    tag: str
    image_id: str
    base: BaseImage


@dataclass(frozen=True)
class BuildFailure:
    spec: ImageSpec
    reason: str
    log_tail: str


def build_images(
    client: docker.DockerClient,
    specs: list[ImageSpec],
    settings: BuildSettings,
    progress: Progress,
) -> dict[ImageSpec, BuiltImage | BuildFailure]:
    bases: dict[str, BaseImage] = {}
    outcome = {}
    for spec in specs:
        if spec.base_image not in bases:
            bases[spec.base_image] = resolve_base(client, spec.base_image, settings, progress)
        outcome[spec] = build_image(client, spec, bases[spec.base_image], settings, progress)
    return outcome


def build_image(client, spec: ImageSpec, base: BaseImage, settings: BuildSettings, progress) -> BuiltImage | BuildFailure:
    files = context_files(spec, settings)
    build_args = dict(spec.with_base(base.reference).build_args)
    tag = f"{spec.repository}:{content_hash(files, build_args, base.image_id)}"
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
    labels.update({f"{LABEL_PREFIX}.arg.{key.lower()}": value for key, value in build_args.items()})
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


def _failure(spec: ImageSpec, error: str, tail: deque[str]) -> BuildFailure:
    """A failed build is a failed cell, except a full disk, which fails every build after it."""
    reason = error.strip().splitlines()[-1] if error.strip() else "no reason given"
    if "no space left on device" in error:
        raise UserError(f"no space left on device while building {spec.name}: free space for Docker (docker system prune, or a larger disk) and run again")
    return BuildFailure(spec, f"image build failed: {reason}", "\n".join(tail))


def context_files(spec: ImageSpec, settings: BuildSettings) -> dict[str, bytes]:
    """The build context: the kind's Dockerfile, the workload, and the CA certificates to trust."""
    files = {"Dockerfile": (DOCKER_DIR / spec.dockerfile).read_bytes()}
    for path in sorted((DOCKER_DIR / "workload").glob("*.py")):
        files[f"workload/{path.name}"] = path.read_bytes()
    files["certs/README"] = b"Extra CA certificates trusted during the build.\n"
    for index, path in enumerate(settings.ca_certificates):
        # update-ca-certificates only picks up files ending in .crt.
        files[f"certs/{index:02d}-{path.stem}.crt"] = path.read_bytes()
    return files


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
