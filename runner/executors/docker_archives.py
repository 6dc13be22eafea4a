"""Images that travel without a registry: `build --save DIR` writes them as archives, `build --load DIR` reads them back.

An image's tag is the hash of everything it is built from (docker_images.py), so an archive loaded
on another machine is "up to date" there for the same checkout and matrix: nothing is rebuilt.
DIR holds one `docker save` archive per image, each image's lock (environments/NAME.DIGEST.lock, as
in a run folder), and `images.json`, naming each archive's tag, image id and lock; a loaded image
whose id is not the one saved is refused, naming the archive. The id is a digest of the image's
content, so it holds the lock inside the image (/opt/lock) to the one saved beside it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import docker.errors

from runner import locks
from runner.errors import UserError
from runner.executors import Prepared
from runner.progress import Progress

INDEX = "images.json"


def archive_name(tag: str) -> str:
    """cudnn-matrix/cpu-tf2.21:1a2b -> cudnn-matrix_cpu-tf2.21_1a2b.tar: one file name a tag."""
    return tag.replace("/", "_").replace(":", "_") + ".tar"


def save(client: docker.DockerClient, images: list[Prepared], folder: Path, progress: Progress) -> list[Path]:
    """Each environment's image as an archive in `folder`, with its lock and the index; each written whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for prepared in images:
        name, tag = prepared.spec.name, prepared.handle
        image = client.images.get(tag)
        path = folder / archive_name(tag)
        partial = path.with_name(f".{path.name}.partial")
        try:
            with open(partial, "wb") as archive:
                for chunk in image.save(named=True):
                    archive.write(chunk)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        progress(f"{name}: saved {tag} to {path} ({path.stat().st_size / 2**20:.0f} MiB)")
        if prepared.lock:
            locks.keep(folder, prepared.lock)
        index.append({"environment": name, "tag": tag, "image_id": image.id, "archive": path.name,
                      "lock": prepared.lock.digest if prepared.lock else None})
    (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return [folder / entry["archive"] for entry in index]


def load(client: docker.DockerClient, folder: Path, progress: Progress) -> list[str]:
    """Load every archive `folder`'s index names and check each image's id; the tags loaded."""
    index = read_index(folder)
    for entry in index:
        path = folder / entry["archive"]
        if not path.is_file():
            raise UserError(f"--load {folder}: {INDEX} names {entry['archive']}, which is not there")
        try:
            with open(path, "rb") as archive:
                client.images.load(archive)
            loaded = client.images.get(entry["tag"]).id
        except (docker.errors.DockerException, OSError) as error:
            raise UserError(f"--load {path}: the engine could not load it ({getattr(error, 'explanation', None) or error})")
        if loaded != entry["image_id"]:
            raise UserError(f"--load {path}: it holds image {loaded}, not the {entry['image_id']} saved as {entry['tag']}")
        progress(f"{entry['environment']}: loaded {entry['tag']} from {path}")
    return [entry["tag"] for entry in index]


def read_index(folder: Path) -> list[dict]:
    """The index, each entry checked for the four keys `save` writes: one line naming the file if not."""
    path = folder / INDEX
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"--load {folder}: no readable {INDEX} ({getattr(error, 'strerror', None) or error}); expected a folder build --save wrote")
    keys = {"environment", "tag", "image_id", "archive"}
    if not isinstance(index, list) or not all(isinstance(entry, dict) and keys <= set(entry) for entry in index):
        raise UserError(f"{path}: expected a list of {{{', '.join(sorted(keys))}}} entries, as build --save writes")
    if any(Path(entry["archive"]).name != entry["archive"] for entry in index):
        raise UserError(f"{path}: an archive name with a folder in it; build --save writes plain file names")
    return index
