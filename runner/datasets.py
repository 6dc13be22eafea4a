"""The data each workload trains on, prepared on the host before any container runs.

Real data is the seed's layout: data/train/{cats,dogs} and
data/validation/{cats,dogs}. Without it, a synthetic JPEG set of the same
layout, counts and photo-like sizes is generated once, and a SYNTHETIC.json
marker inside it makes every record say that it is synthetic.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from runner.config import Workload
from runner.errors import UserError

CLASSES = ("cats", "dogs")
SPLITS = ("train", "validation")
SYNTHETIC_MARKER = "SYNTHETIC.json"
SYNTHETIC_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    workload: str
    path: Path
    kind: str  # "real" or "synthetic"


def prepare(workload: Workload, progress: Callable[[str], None]) -> Dataset:
    root = workload.data_dir
    present = [root / split / name for split in SPLITS for name in CLASSES if (root / split / name).is_dir()]
    if present:
        _check_real(workload)
        return Dataset(workload.name, root, "real")
    return _synthetic(workload, progress)


def _check_real(workload: Workload) -> None:
    wanted = {"train": workload.train_images // 2, "validation": workload.validation_images // 2}
    for split in SPLITS:
        for name in CLASSES:
            folder = workload.data_dir / split / name
            count = len(_jpegs(folder)) if folder.is_dir() else 0
            if count < wanted[split]:
                raise UserError(
                    f"{folder}: {count} JPEGs, {wanted[split]} needed for workloads.{workload.name}; "
                    f"complete the seed's layout (see README, 'Real data') or remove {workload.data_dir / split} to use synthetic data"
                )


def _jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


def _synthetic(workload: Workload, progress: Callable[[str], None]) -> Dataset:
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
    rng = random.Random(SYNTHETIC_VERSION)
    for split, count in (("train", workload.train_images), ("validation", workload.validation_images)):
        for label, name in enumerate(CLASSES):
            target = folder / split / name
            target.mkdir(parents=True, exist_ok=True)
            for index in range(count // 2):
                _photo_like(rng, label).save(target / f"{name[:-1]}.{index}.jpg", quality=90)
    marker.write_text(json.dumps(spec))
    return Dataset(workload.name, folder, "synthetic")


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
