"""Which images an SSH run ships to a box and which it builds there, when --ship-images leaves it to the runner.

The engines are fakes that hold images by tag, id and size (tests/test_ssh.py ships a real image
to a real box's engine over SSH); the index is the loopback one, which gives each locked wheel's size.
"""

import io

import docker.errors

from runner.dispatch.shipping import Shipper
from runner.environments import EnvironmentSpec
from runner.executors import Prepared
from runner.locks import INSTALLER, Lock, Pin
from runner.progress import Progress

SPEC = EnvironmentSpec("cpu", "cpu-jax0.10", "python:3.11-slim", ("jax==0.10.*",))
TAG = "cudnn-matrix/cpu-jax0.10:1a2b"
LOCK = Lock(SPEC.name, INSTALLER, (), (Pin("numpy", "2.1.3", "a" * 64), Pin("protobuf", "5.29.1", "b" * 64)))  # 16 MiB of wheels
MiB = 2**20


class Image:
    def __init__(self, image_id, size):
        self.id, self.attrs = image_id, {"Size": size}


class Engine:
    """A Docker engine as the shipper sees it: images by tag or id, an archive out, an archive in."""

    def __init__(self, images=None):
        self.images, self.api, self.loaded = self, self, []
        self.held = dict(images or {})

    def get(self, name):
        if name not in self.held:
            raise docker.errors.ImageNotFound(name)
        return self.held[name]

    def get_image(self, tag):
        return iter([tag.encode()])

    def load_image(self, archive, quiet=None):
        self.loaded.append(b"".join(archive).decode())
        self.held[self.loaded[-1]] = SENT
        return iter([{"stream": "Loaded image"}])


SENT = Image("sha256:sent", 0)


class Executor:
    def __init__(self, engine, existing=None):
        self.client, self.found = engine, existing

    def existing(self, spec):
        return self.found

    def prepared(self, built):
        return Prepared(built.spec, built.tag, (("image_id", built.image_id),))


def shipper(image_size, base_size=0, has_image=True):
    here = Engine({TAG: Image(SENT.id, image_size), "sha256:base": Image("sha256:base", base_size)})
    facts = {"image_id": SENT.id, "base_image": "cudnn-matrix/base:bookworm", "base_image_requested": SPEC.base,
             "base_image_id": "sha256:base", "base_image_digest": "", "base_image_how": "debootstrap"}
    prepared = Prepared(SPEC, TAG, tuple(facts.items()), lock=LOCK) if has_image else None
    said = io.StringIO()
    return Shipper(Executor(here, prepared), False, Progress(said)), said


def test_an_image_smaller_than_what_a_build_downloads_is_shipped(package_index):
    chosen, said = shipper(image_size=10 * MiB)
    box = Engine({SPEC.base: Image("sha256:python", 0)})

    environment = chosen.prepare(Executor(box), "ssh://box", SPEC)

    assert box.loaded == [TAG] and environment.handle == TAG and dict(environment.provenance)["shipped_from"]
    assert "shipping the image from here: the image is 10 MiB, a build there would download about 16 MiB" in said.getvalue()


def test_an_image_larger_than_what_a_build_downloads_is_built_on_the_box(package_index):
    chosen, said = shipper(image_size=900 * MiB)
    box = Engine({SPEC.base: Image("sha256:python", 0)})

    assert chosen.prepare(Executor(box), "ssh://box", SPEC) is None
    assert box.loaded == [] and "building on host ssh://box: the image is 900 MiB, a build there would download about 16 MiB" in said.getvalue()


def test_a_base_the_box_lacks_counts_in_what_its_build_would_download(package_index):
    chosen, said = shipper(image_size=900 * MiB, base_size=1000 * MiB)

    assert chosen.prepare(Executor(Engine()), "ssh://box", SPEC).handle == TAG
    assert "a build there would download about 1016 MiB" in said.getvalue()


def test_an_image_this_machine_lacks_is_built_on_the_box_without_a_word():
    chosen, said = shipper(image_size=MiB, has_image=False)
    assert chosen.prepare(Executor(Engine()), "ssh://box", SPEC) is None and said.getvalue() == ""


def test_a_box_that_has_the_image_already_is_sent_nothing(package_index):
    chosen, said = shipper(image_size=MiB)
    box = Engine({TAG: SENT})

    assert chosen.prepare(Executor(box), "ssh://box", SPEC).handle == TAG and box.loaded == []
    assert f"cpu-jax0.10: up to date ({TAG}) on host ssh://box" in said.getvalue()


def test_a_box_that_built_the_same_tag_itself_runs_its_own_image():
    chosen, said = shipper(image_size=MiB)
    box = Engine({TAG: Image("sha256:its-own", 0)})

    environment = chosen.prepare(Executor(box), "ssh://box", SPEC)

    assert dict(environment.provenance)["image_id"] == "sha256:its-own" and box.loaded == []

