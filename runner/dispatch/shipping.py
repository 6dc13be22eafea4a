"""Images shipped from this machine's engine to a box's instead of built there: `--ship-images`, or chosen per image.

A build on a fresh cloud box downloads the base image and every wheel, and resolves the
requirements on its own day; an image built here, streamed to the box's engine over the connection
the run already has (`docker save` into `docker load`, no registry, no file between), is the same
bytes: its id, which names its content and so the lock inside it, is checked on arrival.
With --ship-images every image goes from here (built here first when missing). Without it an image
is shipped when the box lacks it, this machine has it already, and it is smaller than what a build
there would download: the lock's wheels, by the sizes the package index gives, and the base image
when the box lacks that too. Which was chosen, and why, is said for each image and box.
"""

from __future__ import annotations

import socket
import threading

import docker.errors

from runner import locks
from runner.config import Matrix
from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.executors import Prepared, PrepareFailure
from runner.executors.base_images import BaseImage
from runner.executors.docker_executor import DockerExecutor
from runner.executors.docker_images import BuiltImage
from runner.progress import Progress


class Shipper:
    """This machine's engine, as the source of the images an SSH run's boxes are sent."""

    def __init__(self, here: DockerExecutor, forced: bool, progress: Progress):
        self.here, self.forced, self.progress = here, forced, progress
        self.made: dict[EnvironmentSpec, Prepared | PrepareFailure | None] = {}
        self.making = threading.Lock()  # boxes ask from threads of their own: one build here per image

    @classmethod
    def for_run(cls, matrix: Matrix, forced: bool, progress: Progress) -> Shipper | None:
        """The shipper, where this machine has an engine; without one, --ship-images is an error and otherwise boxes build."""
        try:
            return cls(DockerExecutor(matrix.build, "none", progress), forced, progress)
        except UserError as error:
            if forced:
                raise UserError(f"--ship-images: the images are built here and shipped, and {error}")
            return None

    def prepare(self, box: DockerExecutor, url: str, spec: EnvironmentSpec) -> Prepared | PrepareFailure | None:
        """The environment on the box, shipped from here (or found there by its tag); None: build it there."""
        here = self._here(spec)
        if not isinstance(here, Prepared):
            return here
        if _has(box.client, here.handle):
            self.progress(f"{spec.name}: up to date ({here.handle}) on host {url}")
            return _found_on(box, here)
        if not self.forced and not self._worth_shipping(box, url, here):
            return None
        failed = self._send(box, url, here)
        if failed:
            return PrepareFailure(spec, f"on host {url}: shipping {here.handle} from here failed: {failed}", "")
        return Prepared(spec, here.handle, here.provenance + (("shipped_from", socket.gethostname()),), lock=here.lock)

    def _send(self, box: DockerExecutor, url: str, here: Prepared) -> str:
        """Stream the image from here into the box's engine; what went wrong, or "" when the box now has that very image."""
        self.progress(f"{here.spec.name}: shipping {here.handle} to host {url}")
        said = [chunk.get("error", "") for chunk in box.client.api.load_image(self.here.client.api.get_image(here.handle), quiet=True)]
        if any(said):
            return next(filter(None, said))
        arrived = box.client.images.get(here.handle).id
        return "" if arrived == dict(here.provenance)["image_id"] else f"it arrived as image {arrived}, not the one sent"

    def _here(self, spec: EnvironmentSpec) -> Prepared | PrepareFailure | None:
        """The image here: built when shipping is asked for; else only one this engine has already."""
        with self.making:
            if spec not in self.made:
                self.made[spec] = self.here.prepare(spec) if self.forced else self.here.existing(spec)
            return self.made[spec]

    def _worth_shipping(self, box: DockerExecutor, url: str, here: Prepared) -> bool:
        """Whether the image is smaller than what a build on the box would download; said either way."""
        facts = dict(here.provenance)
        archive = self.here.client.images.get(here.handle).attrs.get("Size", 0)
        download = locks.download_bytes(here.lock) if here.lock else None
        if download is not None and not _has(box.client, here.spec.base):
            download += self.here.client.images.get(facts["base_image_id"]).attrs.get("Size", 0)
        if download is None:
            self.progress(f"{here.spec.name}: building on host {url}: what a build would download is not known (no lock with hashes)")
            return False
        ship = archive < download
        self.progress(f"{here.spec.name}: {'shipping the image from here' if ship else 'building on host ' + url}: the image is "
                      f"{_mib(archive)}, a build there would download about {_mib(download)}")
        return ship


def _found_on(box: DockerExecutor, here: Prepared) -> Prepared:
    """The box has an image of this tag (shipped by an earlier run, or built there on the same base): the one sent, or its own,
    with the lock inside it."""
    facts = dict(here.provenance)
    found = box.client.images.get(here.handle).id
    if found == facts["image_id"]:
        return here
    base = BaseImage(facts["base_image_requested"], facts["base_image"], facts["base_image_id"], facts["base_image_digest"],
                     facts["base_image_how"])
    return box.prepared(BuiltImage(here.spec, here.handle, found, base))


def _has(client, image: str) -> bool:
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"
