"""The data each workload trains on, prepared on the host before any container runs.

Containers get no network, so everything is here before they start:

- Dogs vs Cats: the seed's layout, data/train/{cats,dogs} and
  data/validation/{cats,dogs}, arranged from Kaggle's train.zip by
  `runner data dogs-vs-cats --from train.zip`.
- MNIST: data/mnist/mnist.npz (keras.datasets' file), fetched once by
  `runner data mnist` or taken from a file the user has.

Without real data a synthetic set of the same layout, counts and sizes is
generated once, and a SYNTHETIC.json marker inside it makes every record say
that it is synthetic. Keras' applications (ResNet-50 and friends) always train
on synthetic images, which the workload makes in memory: their set is the
marker alone, which says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import math
import os
import random
import re
import shutil
import stat
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

if TYPE_CHECKING:  # numpy and PIL take a fifth of a second to import: only the functions that use them do
    import numpy as np
    from PIL import Image

from runner.workloads import MAX_IMAGES, Workload
from runner.errors import UserError
from runner.invocation import command
from workload.contract import CLASSES, KERAS_APPLICATIONS, MNIST_FILE, SYNTHETIC_MARKER

SPLITS = ("train", "validation")
SYNTHETIC_VERSION = 1
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
KAGGLE_NAME = re.compile(r"(?:^|/)(cat|dog)\.([0-9]{1,9})\.jpg\Z")
STAGING_PREFIX = ".incomplete-"  # a folder left by an interrupted run: never read as data, safe to delete

# Sizes checked before anything is inflated or allocated.
KAGGLE_PER_CLASS = 12500  # cats, and dogs, in Kaggle's train.zip
MAX_PHOTO_BYTES = 16 * 1024**2  # Kaggle's photos are under 1 MiB
MAX_ARRANGED_BYTES = 2 * 1024**3  # all 25000 photos come to 570 MB
MAX_MNIST_BYTES = 256 * 1024**2  # keras.datasets' file is 11 MB; MAX_IMAGES per split uncompressed, 157 MB
MAX_COMPRESSION_RATIO = 100  # JPEGs and MNIST's arrays deflate less than 10:1; a zip bomb's zeros, 1000:1
# What Kaggle's train.zip and numpy's .npz files use; anything else (AES encryption is method 99) is refused unread.
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# What reading a damaged archive raises: a bad directory or CRC, a broken deflate stream, a truncated member, the file itself.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError)


@dataclass(frozen=True)
class Dataset:
    workload: str
    path: Path  # the folder mounted read-only at /data
    kind: str  # "real" or "synthetic"


def prepare(workload: Workload, progress: Callable[[str], None]) -> Dataset:
    if workload.model in KERAS_APPLICATIONS:
        return _synthetic(workload, progress, _made_in_memory)
    if workload.model == "mnist":
        return _mnist(workload, progress)
    if real_data(workload):
        _check_real(workload)
        return Dataset(workload.name, workload.data_dir, "real")
    return _synthetic(workload, progress, _write_dogs_vs_cats)


def real_data(workload: Workload) -> Path | None:
    """Where the workload's real data is, if it has any there (checked in full only by prepare): else it gets synthetic data."""
    if workload.model in KERAS_APPLICATIONS:
        return None
    if workload.model == "mnist":
        real = workload.data_dir / "mnist" / MNIST_FILE
        return real if real.is_file() else None
    root = workload.data_dir
    return root if any((root / split / name).is_dir() for split in SPLITS for name in CLASSES) else None


def _check_real(workload: Workload) -> None:
    """Enough JPEGs in each class folder, and each one the workload will read a JPEG by its content, of a sane size.

    Files placed by hand are checked before any cell runs: a FIFO named .jpg would block a cell until its
    time limit, and a GIF, or a picture too large to decode, would be timed as if it were a photo.
    """
    wanted = {"train": workload.train_images // 2, "validation": workload.validation_images // 2}
    for split in SPLITS:
        for name in CLASSES:
            folder = workload.data_dir / split / name
            photos = _jpegs(folder) if folder.is_dir() else []
            if len(photos) < wanted[split]:
                raise UserError(
                    f"{folder}: {len(photos)} JPEGs, {wanted[split]} needed for workloads.{workload.name}; "
                    f"complete the seed's layout ({command('data', 'dogs-vs-cats', '--from', 'train.zip')}) "
                    f"or remove {workload.data_dir / split} to use synthetic data"
                )
            for photo in photos[:wanted[split]]:  # the workload reads the first ones, sorted by name
                if problem := _placed_photo_problem(photo):
                    raise UserError(f"{photo}: {problem}; workloads.{workload.name} would read it: replace it, "
                                    f"or remove {workload.data_dir / split} to use synthetic data")


def _placed_photo_problem(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return f"cannot read it ({error.strerror or error})"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, folder or device)"
    problem = _jpeg_problem(path)
    return f"not a readable JPEG ({problem})" if problem else None


def _jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


def _mnist(workload: Workload, progress: Callable[[str], None]) -> Dataset:
    real = real_data(workload)
    if real is None:
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
    name = f"{workload.model}-{workload.train_images}-{workload.validation_images}"
    if write is _made_in_memory:  # one set per shape: the marker is what the record says about the images
        spec.update(images="made in memory by the workload", image_size=workload.image_size, classes=workload.classes)
        name += f"-{workload.image_size}px-{workload.classes}"
    folder = workload.data_dir / "synthetic" / name
    if _marker(folder) == spec:
        return Dataset(workload.name, folder, "synthetic")
    if write is _made_in_memory:
        progress(f"{workload.model} trains on synthetic images made in memory; their description goes in {folder}")
    else:
        progress(f"no real data in {workload.data_dir}: generating a synthetic {workload.model} set in {folder}")
    with _staging(folder.parent) as staging:
        complete = staging / folder.name
        complete.mkdir()  # not the staging folder itself, which mkdtemp makes private (0700) to this user
        write(complete, workload, random.Random(SYNTHETIC_VERSION))
        (complete / SYNTHETIC_MARKER).write_text(json.dumps(spec))
        shutil.rmtree(folder, ignore_errors=True)  # a set of an older SYNTHETIC_VERSION, or one left half-made before staging
        os.replace(complete, folder)
    return Dataset(workload.name, folder, "synthetic")


def _marker(folder: Path) -> dict | None:
    """What the synthetic set in folder was generated for, or None if it is not a complete set."""
    try:
        return json.loads((folder / SYNTHETIC_MARKER).read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A temporary folder inside folder, for work that is moved into place only once every check has passed.

    It is removed however the work ends, and so are the folders made for it that stayed empty:
    a refused archive or an interrupted generation leaves nothing new behind, not even an empty data/.
    """
    made = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # a failure to clean up must not hide why the work ended
        for parent in made:  # deepest first; rmdir removes only what stayed empty
            with contextlib.suppress(OSError):
                parent.rmdir()


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
    from PIL import Image

    width, height = rng.randint(300, 500), rng.randint(250, 500)
    bands = []
    for channel in range(3):
        coarse = Image.effect_noise((max(width // 24, 2), max(height // 24, 2)), 60)
        cast = 30 if channel == (0 if label == 0 else 2) else 0
        bands.append(coarse.resize((width, height), Image.Resampling.BICUBIC).point(lambda v, c=cast: min(255, v + c)))
    return Image.merge("RGB", bands)


def _made_in_memory(folder: Path, workload: Workload, rng: random.Random) -> None:
    """Keras' applications train on images the workload makes from a seeded generator: their set is its marker alone."""


def _write_mnist(folder: Path, workload: Workload, rng: random.Random) -> None:
    """MNIST's shapes and types: 28x28 uint8 digits, labels 0-9."""
    import numpy as np

    generator = np.random.default_rng(rng.randrange(2**32))
    arrays = {}
    for split, count in (("train", workload.train_images), ("test", workload.validation_images)):
        arrays[f"x_{split}"] = generator.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        arrays[f"y_{split}"] = generator.integers(0, 10, size=count, dtype=np.uint8)
    np.savez_compressed(folder / MNIST_FILE, **arrays)


def check_mnist(path: Path, name: str | Path | None = None) -> dict[str, int]:
    """The image counts of a keras.datasets mnist.npz, or a UserError naming it (as name, if given).

    Only the arrays' .npy headers are read, never their data: a hostile file cannot make this
    allocate the shape it declares, and object arrays (pickles) are refused, not loaded.
    """
    import numpy as np

    name = name or path
    try:
        if path.stat().st_size > MAX_MNIST_BYTES:
            raise UserError(f"{name}: over {MAX_MNIST_BYTES} bytes; keras.datasets' mnist.npz is 11 MB")
        with zipfile.ZipFile(path) as zipped:
            arrays = {array: _npy_header(name, zipped, array) for array in MNIST_ARRAYS}
    except (*ZIP_ERRORS, ValueError) as error:
        raise UserError(f"{name}: not keras.datasets' mnist.npz (x_train, y_train, x_test, y_test): {error}")
    counts = {}
    for split in ("train", "test"):
        (images, images_type), (labels, labels_type) = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images_type != np.uint8 or images[1:] != (28, 28) or labels != images[:1] or labels_type.kind not in "iu":
            raise UserError(f"{name}: x_{split}/y_{split} are {images_type}{images} and {labels_type}{labels}, "
                            "not MNIST's uint8 (N, 28, 28) and integer (N,)")
        if images[0] > MAX_IMAGES:
            raise UserError(f"{name}: x_{split} holds {images[0]} images; at most {MAX_IMAGES} are expected")
        counts[split] = images[0]
    return counts


def _npy_header(name: str | Path, zipped: zipfile.ZipFile, array: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype that an .npz member declares, checked against the member's size."""
    import numpy as np

    try:
        info = zipped.getinfo(f"{array}.npy")
    except KeyError:
        raise UserError(f"{name}: not keras.datasets' mnist.npz: no {array} array in it")
    _check_member(name, info, MAX_MNIST_BYTES)
    with zipped.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise UserError(f"{name}: {array} is a .npy file of version {version}, not 1.0 or 2.0")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(member)
        header_bytes = member.tell()
    if dtype.hasobject:
        raise UserError(f"{name}: {array} holds Python objects (a pickle), which are never loaded")
    data_bytes = math.prod(shape) * dtype.itemsize
    if info.file_size != header_bytes + data_bytes:
        raise UserError(f"{name}: {array} declares {dtype}{shape}, {data_bytes} bytes, but holds {info.file_size - header_bytes}")
    return shape, dtype


def _check_member(archive: str | Path, info: zipfile.ZipInfo, limit: int) -> None:
    """Refuse an archive member before inflating it.

    zipfile stops inflating at the size a member declares (a lie fails its CRC check),
    so bounding the declared size bounds what reading it takes.
    """
    if info.flag_bits & 0x1:
        problem = "is encrypted"
    elif info.compress_type not in ZIP_METHODS:
        problem = f"uses compression method {info.compress_type}; only {' and '.join(ZIP_METHODS.values())} are read"
    elif info.file_size > limit:
        problem = f"declares {info.file_size} bytes uncompressed, over the {limit} expected"
    elif info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        problem = f"inflates {info.compress_size} bytes to {info.file_size}, over {MAX_COMPRESSION_RATIO}:1 (a zip bomb?)"
    else:
        return
    raise UserError(f"{archive}: {info.filename!r} {problem}")


def fetch_mnist(source: Path | None, data_dir: Path, progress: Callable[[str], None]) -> Path:
    """Put mnist.npz in data/mnist/, from a file the user has or downloaded once from Keras' mirror."""
    target = data_dir / "mnist" / MNIST_FILE
    with _staging(target.parent) as staging:
        staged = staging / MNIST_FILE
        if source is None:
            _download_mnist(staged, progress)
        else:
            try:
                with open(source, "rb") as file:
                    _copy_at_most(file, staged, MAX_MNIST_BYTES, source)
            except OSError as error:
                raise UserError(f"{source}: cannot read it: {error.strerror or error}")
        counts = check_mnist(staged, source or MNIST_URL)
        os.replace(staged, target)
    progress(f"{target}: {counts['train']} training and {counts['test']} test images, sha256 {_sha256(target)}")
    return target


def _download_mnist(target: Path, progress: Callable[[str], None]) -> None:
    progress(f"downloading {MNIST_URL}")
    try:
        with urllib.request.urlopen(MNIST_URL, timeout=60) as response:
            _copy_at_most(response, target, MAX_MNIST_BYTES, MNIST_URL)
    except (OSError, http.client.HTTPException) as error:
        raise UserError(f"cannot download {MNIST_URL} ({error}): download it elsewhere and pass it with --from")


def _copy_at_most(source: BinaryIO, target: Path, limit: int, name: str | Path) -> None:
    """Copy a stream into target, refusing it once it passes limit bytes rather than filling the disk."""
    copied = 0
    with open(target, "wb") as out:
        while chunk := source.read(1024 * 1024):
            copied += len(chunk)
            if copied > limit:
                raise UserError(f"{name}: over {limit} bytes; keras.datasets' mnist.npz is 11 MB")
            out.write(chunk)


def arrange_dogs_vs_cats(archive: Path, data_dir: Path, train_per_class: int, validation_per_class: int,
                         progress: Callable[[str], None]) -> None:
    """The seed's split from Kaggle's train.zip: the first N cats and dogs to train, the next M to validate.

    Every photo is checked before the first is moved into data/: a refused archive leaves nothing there.
    """
    if train_per_class + validation_per_class > KAGGLE_PER_CLASS:
        raise UserError(f"--train-per-class {train_per_class} and --validation-per-class {validation_per_class}: "
                        f"at most {KAGGLE_PER_CLASS} together, the cats (and dogs) in Kaggle's train.zip")
    targets = [data_dir / split / name for split in SPLITS for name in CLASSES]
    if any(folder.exists() and (not folder.is_dir() or any(folder.iterdir())) for folder in targets):
        raise UserError(f"{data_dir}: already holds train/ or validation/ images; move them away first")
    with _staging(data_dir) as staging:
        _extract_kaggle(archive, staging, train_per_class, validation_per_class)
        try:
            for split in SPLITS:
                (data_dir / split).mkdir(exist_ok=True)
                for name in CLASSES:
                    os.replace(staging / split / name, data_dir / split / name)
        except OSError as error:
            raise UserError(f"{data_dir}: cannot move the arranged images into place: {error}")
    progress(f"{data_dir}: {train_per_class} + {train_per_class} training and {validation_per_class} + {validation_per_class} validation images, all readable JPEGs")


def _extract_kaggle(archive: Path, staging: Path, train_per_class: int, validation_per_class: int) -> None:
    """staging/{train,validation}/{cats,dogs}, each photo checked as a JPEG before it is written."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = _kaggle_members(archive, zipped, train_per_class + validation_per_class)
            for (animal, index), info in sorted(members.items()):
                content = zipped.read(info)
                _check_jpeg(archive, info.filename, content)
                folder = staging / ("train" if index < train_per_class else "validation") / f"{animal}s"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{animal}.{index}.jpg").write_bytes(content)
    except ZIP_ERRORS as error:
        raise UserError(f"{archive}: cannot read it as a zip archive: {error}")


def _kaggle_members(archive: Path, zipped: zipfile.ZipFile, needed: int) -> dict[tuple[str, int], zipfile.ZipInfo]:
    """cat.0.jpg ... and dog.0.jpg ..., needed of each, every one checked before any is inflated."""
    found = {}
    for info in zipped.infolist():
        name = KAGGLE_NAME.search(info.filename)
        if name and int(name.group(2)) < needed:
            found[(name.group(1), int(name.group(2)))] = info
    for animal in ("cat", "dog"):
        missing = [i for i in range(needed) if (animal, i) not in found]
        if missing:
            named = sum(1 for info in zipped.infolist() if KAGGLE_NAME.search(info.filename))
            raise UserError(f"{archive}: not Kaggle's Dogs vs. Cats train.zip, or too small: no {animal}.{missing[0]}.jpg "
                            f"({named} files named cat.N.jpg/dog.N.jpg; {needed} of each are needed)")
    for info in found.values():
        _check_member(archive, info, MAX_PHOTO_BYTES)
    total = sum(info.file_size for info in found.values())
    if total > MAX_ARRANGED_BYTES:
        raise UserError(f"{archive}: the {len(found)} photos needed declare {total} bytes, over {MAX_ARRANGED_BYTES}; "
                        "Kaggle's 25000 come to 570 MB")
    return found


def _check_jpeg(archive: Path, member: str, content: bytes) -> None:
    if problem := _jpeg_problem(io.BytesIO(content), verify=True):
        raise UserError(f"{archive}: {member!r} is not a readable JPEG ({problem}): is the archive damaged?")


def _jpeg_problem(source, verify: bool = False) -> str | None:
    """Why source (a path or a file) is not a JPEG, by its content, whose size PIL does not take for a decompression
    bomb (a warning is an error here); None if it is one. verify: its data too, not only its header."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                if image.format != "JPEG":
                    return f"a {image.format} image"
                if verify:
                    image.verify()
    except (OSError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        return str(error)
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
