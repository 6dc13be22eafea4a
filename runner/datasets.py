"""The data each workload trains on, prepared on the host before any container runs.

Containers get no network, so everything is here before they start:

- Dogs vs Cats: the seed's layout, data/train/{cats,dogs} and
  data/validation/{cats,dogs}, arranged from Kaggle's train.zip by
  `runner data dogs-vs-cats --from train.zip`.
- MNIST: data/mnist/mnist.npz (keras.datasets' file), fetched once by
  `runner data mnist` or taken from a file the user has.

Without real data a synthetic set of the same layout, counts and sizes is
generated once, and a SYNTHETIC.json marker inside it makes every record say
that it is synthetic.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from runner.config import Workload
from runner.errors import UserError
from workload.contract import CLASSES, MNIST_FILE, SYNTHETIC_MARKER

SPLITS = ("train", "validation")
SYNTHETIC_VERSION = 1
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KAGGLE_NAME = re.compile(r"(?:^|/)(cat|dog)\.(\d+)\.jpg$")


@dataclass(frozen=True)
class Dataset:
    workload: str
    path: Path  # the folder mounted read-only at /data
    kind: str  # "real" or "synthetic"


def prepare(workload: Workload, progress: Callable[[str], None]) -> Dataset:
    if workload.model == "mnist":
        return _mnist(workload, progress)
    root = workload.data_dir
    if any((root / split / name).is_dir() for split in SPLITS for name in CLASSES):
        _check_real(workload)
        return Dataset(workload.name, root, "real")
    return _synthetic(workload, progress, _write_dogs_vs_cats)


def _check_real(workload: Workload) -> None:
    wanted = {"train": workload.train_images // 2, "validation": workload.validation_images // 2}
    for split in SPLITS:
        for name in CLASSES:
            folder = workload.data_dir / split / name
            count = len(_jpegs(folder)) if folder.is_dir() else 0
            if count < wanted[split]:
                raise UserError(
                    f"{folder}: {count} JPEGs, {wanted[split]} needed for workloads.{workload.name}; "
                    f"complete the seed's layout (python -m runner data dogs-vs-cats --from train.zip) "
                    f"or remove {workload.data_dir / split} to use synthetic data"
                )


def _jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


def _mnist(workload: Workload, progress: Callable[[str], None]) -> Dataset:
    real = workload.data_dir / "mnist" / MNIST_FILE
    if not real.is_file():
        return _synthetic(workload, progress, _write_mnist)
    counts = check_mnist(real)
    if counts["train"] < workload.train_images or counts["test"] < workload.validation_images:
        raise UserError(f"{real}: {counts['train']} training and {counts['test']} test images; workloads.{workload.name} "
                        f"asks for {workload.train_images} and {workload.validation_images}")
    return Dataset(workload.name, real.parent, "real")


def _synthetic(workload: Workload, progress: Callable[[str], None], write) -> Dataset:
    spec = {
        "version": SYNTHETIC_VERSION,
        "model": workload.model,
        "train_images": workload.train_images,
        "validation_images": workload.validation_images,
    }
    folder = workload.data_dir / "synthetic" / f"{workload.model}-{workload.train_images}-{workload.validation_images}"
    marker = folder / SYNTHETIC_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return Dataset(workload.name, folder, "synthetic")
    progress(f"no real data in {workload.data_dir}: generating a synthetic {workload.model} set in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    write(folder, workload, random.Random(SYNTHETIC_VERSION))
    marker.write_text(json.dumps(spec))
    return Dataset(workload.name, folder, "synthetic")


def _write_dogs_vs_cats(folder: Path, workload: Workload, rng: random.Random) -> None:
    for split, count in (("train", workload.train_images), ("validation", workload.validation_images)):
        for label, name in enumerate(CLASSES):
            target = folder / split / name
            target.mkdir(parents=True, exist_ok=True)
            for index in range(count // 2):
                _photo_like(rng, label).save(target / f"{name[:-1]}.{index}.jpg", quality=90)


def _photo_like(rng: random.Random, label: int) -> Image.Image:
    """A smooth random picture of a Kaggle photo's size, its colour cast hinting at the class.

    Sizes follow the Dogs vs Cats photos (mostly up to 500 px a side), so that
    decoding and resizing cost what they cost with the real set.
    """
    width, height = rng.randint(300, 500), rng.randint(250, 500)
    bands = []
    for channel in range(3):
        coarse = Image.effect_noise((max(width // 24, 2), max(height // 24, 2)), 60)
        cast = 30 if channel == (0 if label == 0 else 2) else 0
        bands.append(coarse.resize((width, height), Image.Resampling.BICUBIC).point(lambda v, c=cast: min(255, v + c)))
    return Image.merge("RGB", bands)


def _write_mnist(folder: Path, workload: Workload, rng: random.Random) -> None:
    """MNIST's shapes and types: 28x28 uint8 digits, labels 0-9."""
    generator = np.random.default_rng(rng.randrange(2**32))
    arrays = {}
    for split, count in (("train", workload.train_images), ("test", workload.validation_images)):
        arrays[f"x_{split}"] = generator.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        arrays[f"y_{split}"] = generator.integers(0, 10, size=count, dtype=np.uint8)
    np.savez_compressed(folder / MNIST_FILE, **arrays)


def check_mnist(path: Path) -> dict[str, int]:
    """The image counts of a keras.datasets mnist.npz, or a UserError saying what is wrong with it."""
    try:
        with np.load(path) as arrays:
            counts = {}
            for split in ("train", "test"):
                images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
                if images.dtype != np.uint8 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
                    raise UserError(f"{path}: x_{split}/y_{split} are {images.dtype}{images.shape} and {labels.shape}, not MNIST's uint8 (N, 28, 28) and (N,)")
                counts[split] = int(images.shape[0])
            return counts
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise UserError(f"{path}: not keras.datasets' mnist.npz (x_train, y_train, x_test, y_test): {error}")


def fetch_mnist(source: Path | None, data_dir: Path, progress: Callable[[str], None]) -> Path:
    """Put mnist.npz in data/mnist/, from a file the user has or downloaded once from Keras' mirror."""
    target = data_dir / "mnist" / MNIST_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is None:
        progress(f"downloading {MNIST_URL}")
        try:
            with urllib.request.urlopen(MNIST_URL, timeout=60) as response, open(target, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as error:
            target.unlink(missing_ok=True)
            raise UserError(f"cannot download {MNIST_URL} ({error}): download it elsewhere and pass it with --from")
    else:
        check_mnist(source)
        shutil.copyfile(source, target)
    counts = check_mnist(target)
    progress(f"{target}: {counts['train']} training and {counts['test']} test images, sha256 {_sha256(target)}")
    return target


def arrange_dogs_vs_cats(archive: Path, data_dir: Path, train_per_class: int, validation_per_class: int,
                         progress: Callable[[str], None]) -> None:
    """The seed's split from Kaggle's train.zip: the first N cats and dogs to train, the next M to validate."""
    targets = [data_dir / split / name for split in SPLITS for name in CLASSES]
    if any(folder.is_dir() and any(folder.iterdir()) for folder in targets):
        raise UserError(f"{data_dir}: already holds train/ or validation/ images; move them away first")
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = {}
            for name in zipped.namelist():
                found = KAGGLE_NAME.search(name)
                if found:
                    members[(found.group(1), int(found.group(2)))] = name
            needed = train_per_class + validation_per_class
            for animal in ("cat", "dog"):
                missing = [i for i in range(needed) if (animal, i) not in members]
                if missing:
                    raise UserError(f"{archive}: not Kaggle's Dogs vs. Cats train.zip, or too small: no {animal}.{missing[0]}.jpg "
                                    f"({len(members)} files named cat.N.jpg/dog.N.jpg; {needed} of each are needed)")
            for animal, name in (("cat", "cats"), ("dog", "dogs")):
                for index in range(needed):
                    split = "train" if index < train_per_class else "validation"
                    folder = data_dir / split / name
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{animal}.{index}.jpg").write_bytes(zipped.read(members[(animal, index)]))
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(f"{archive}: cannot read it as a zip archive: {error}")
    _verify_arranged(data_dir, {"train": train_per_class, "validation": validation_per_class})
    progress(f"{data_dir}: {train_per_class} + {train_per_class} training and {validation_per_class} + {validation_per_class} validation images, all readable JPEGs")


def _verify_arranged(data_dir: Path, per_class: dict[str, int]) -> None:
    for split in SPLITS:
        for name in CLASSES:
            files = _jpegs(data_dir / split / name)
            if len(files) != per_class[split]:
                raise UserError(f"{data_dir / split / name}: {len(files)} JPEGs after arranging, {per_class[split]} expected")
            for path in files:
                try:
                    with Image.open(path) as image:
                        if image.format != "JPEG":
                            raise OSError(f"a {image.format} image")
                        image.verify()
                except OSError as error:
                    raise UserError(f"{path}: not a readable JPEG ({error}): is the archive damaged?")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
