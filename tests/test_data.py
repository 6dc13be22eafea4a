"""Real data from the real archive layouts: Kaggle's train.zip and keras.datasets' mnist.npz."""

import hashlib
import io
import json
import os
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from runner import datasets
from runner.cli import main
from runner.config import load_matrix
from runner.datasets import MNIST_URL, check_mnist, prepare
from runner.errors import UserError


def jpeg(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def kaggle_zip(path, per_animal, name="train/{animal}.{index}.jpg", content=None, compression=zipfile.ZIP_STORED, tamper=None):
    """A small archive named like Kaggle's train.zip: train/cat.0.jpg ... train/dog.N.jpg.

    tamper(info) may change each member's central directory entry, which is what zipfile reads back.
    """
    with zipfile.ZipFile(path, "w", compression) as archive:
        for animal in ("cat", "dog"):
            for index in range(per_animal):
                archive.writestr(name.format(animal=animal, index=index), content or jpeg((index * 20 % 255, 90, 30)))
        for info in archive.infolist() if tamper else ():
            tamper(info)
    return path


def snapshot(folder):
    """Every path under folder, hidden ones too: what a refusal must leave as it found it."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def refused(capsys, tmp_path, *args):
    """Run `data ARGS` in-process: exit 2 and one error line, last, after any progress (a download started),
    and nothing new under tmp_path (no data/ either)."""
    before = snapshot(tmp_path)
    assert main(["data", *map(str, args)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert err.splitlines()[-1] == line and "Traceback" not in err
    assert snapshot(tmp_path) == before
    return line


def arrange(archive, data, train=2, validation=1):
    return ["dogs-vs-cats", "--from", archive, "--data", data, "--train-per-class", train, "--validation-per-class", validation]


def test_the_seed_split_is_arranged_from_the_kaggle_archive(tmp_path, capsys):
    archive = kaggle_zip(tmp_path / "train.zip", 8)
    code = main(["data", *map(str, arrange(archive, tmp_path / "data", 5, 2))])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "5 + 5 training and 2 + 2 validation images, all readable JPEGs" in err
    data = tmp_path / "data"
    assert sorted(p.name for p in (data / "train" / "cats").iterdir()) == [f"cat.{i}.jpg" for i in (0, 1, 2, 3, 4)]
    assert sorted(p.name for p in (data / "validation" / "dogs").iterdir()) == ["dog.5.jpg", "dog.6.jpg"]


def test_a_wrong_archive_is_refused_with_a_clear_line(tmp_path, capsys):
    archive = kaggle_zip(tmp_path / "test1.zip", 8, name="test1/{animal}{index}.jpg")  # not Kaggle's cat.N.jpg naming
    assert refused(capsys, tmp_path, *arrange(archive, tmp_path / "data", 5, 2)) == (
        f"error: {archive}: not Kaggle's Dogs vs. Cats train.zip, or too small: no cat.0.jpg "
        "(0 files named cat.N.jpg/dog.N.jpg; 7 of each are needed)")


def test_an_archive_with_broken_jpegs_is_refused(tmp_path, capsys):
    archive = kaggle_zip(tmp_path / "train.zip", 3, content=b"not a jpeg")
    assert "is not a readable JPEG" in refused(capsys, tmp_path, *arrange(archive, tmp_path / "data"))


def test_arranged_data_is_used_as_real_data(tmp_path):
    kaggle_zip(tmp_path / "train.zip", 6)
    assert main(["data", *map(str, arrange(tmp_path / "train.zip", tmp_path / "data", 4, 2))]) == 0
    (tmp_path / "matrix.yaml").write_text('workloads: {dogs-vs-cats: {train_images: 8, validation_images: 4}}\ncpu: {tensorflow: ["2.21"]}\n')
    dataset = prepare(load_matrix(tmp_path / "matrix.yaml").workloads[0], print)
    assert (dataset.kind, dataset.path) == ("real", (tmp_path / "data").resolve())


def mnist_npz(path, train=50, test=10, shape=(28, 28)):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 255, (train, *shape), dtype=np.uint8), y_train=rng.integers(0, 10, train, dtype=np.uint8),
             x_test=rng.integers(0, 255, (test, *shape), dtype=np.uint8), y_test=rng.integers(0, 10, test, dtype=np.uint8))
    return path


def test_mnist_from_a_file_the_user_has(tmp_path):
    assert main(["data", "mnist", "--from", str(mnist_npz(tmp_path / "mnist.npz")), "--data", str(tmp_path / "data")]) == 0
    assert (tmp_path / "data" / "mnist" / "mnist.npz").read_bytes() == (tmp_path / "mnist.npz").read_bytes()
    (tmp_path / "matrix.yaml").write_text('workloads: {mnist: {train_images: 40, validation_images: 10}}\ncpu: {tensorflow: ["2.21"]}\n')
    dataset = prepare(load_matrix(tmp_path / "matrix.yaml").workloads[0], print)
    assert (dataset.kind, dataset.path) == ("real", (tmp_path / "data" / "mnist").resolve())


def test_an_npz_that_is_not_mnist_is_refused(tmp_path, capsys):
    source = mnist_npz(tmp_path / "cifar.npz", shape=(32, 32))
    assert "not MNIST's uint8 (N, 28, 28)" in refused(capsys, tmp_path, "mnist", "--from", source, "--data", tmp_path / "data")


def test_synthetic_mnist_has_mnist_shapes_and_says_so(tmp_path):
    (tmp_path / "matrix.yaml").write_text('workloads: {mnist: {train_images: 30, validation_images: 6}}\ncpu: {tensorflow: ["2.21"]}\n')
    dataset = prepare(load_matrix(tmp_path / "matrix.yaml").workloads[0], print)
    assert dataset.kind == "synthetic"
    assert (dataset.path / "SYNTHETIC.json").is_file()
    with np.load(dataset.path / "mnist.npz") as arrays:
        assert arrays["x_train"].shape == (30, 28, 28) and arrays["x_test"].dtype == np.uint8
        assert arrays["y_test"].shape == (6,) and arrays["y_train"].max() <= 9


def test_the_mnist_defaults_are_the_seed_examples(tmp_path):
    (tmp_path / "matrix.yaml").write_text('workloads: {mnist: {}}\ncpu: {tensorflow: ["2.21"]}\n')
    workload = load_matrix(tmp_path / "matrix.yaml").workloads[0]
    assert (workload.batch_size, workload.train_images, workload.validation_images) == (128, 60000, 10000)


def test_keras_applications_train_on_images_made_in_memory_and_their_set_says_so(tmp_path):
    (tmp_path / "data" / "train" / "cats").mkdir(parents=True)  # the seed's photos beside: not read by resnet50
    (tmp_path / "matrix.yaml").write_text('workloads: {resnet50: {image_size: 64, classes: 10}, mobilenet-v2: {}}\ncpu: {tensorflow: ["2.21"]}\n')
    small, default = (prepare(workload, print) for workload in load_matrix(tmp_path / "matrix.yaml").workloads)
    assert (small.kind, small.path.name, default.path.name) == ("synthetic", "resnet50-1280-256-64px-10", "mobilenet-v2-1280-256-224px-1000")
    assert [path.name for path in small.path.iterdir()] == ["SYNTHETIC.json"]
    assert json.loads((small.path / "SYNTHETIC.json").read_text()) == {
        "version": 1, "model": "resnet50", "train_images": 1280, "validation_images": 256,
        "images": "made in memory by the workload", "image_size": 64, "classes": 10}


def test_dogs_vs_cats_needs_the_archive(tmp_path, capsys):
    assert "--from PATH/train.zip is needed" in refused(capsys, tmp_path, "dogs-vs-cats", "--data", tmp_path / "data")


# --- hostile archives and arrays: one line, exit 2, nothing new on disk ------------------------


def encrypt(info):
    info.flag_bits |= 0x1


def use_aes(info):
    info.compress_type = 99  # WinZip's AES


def declare_10_gib(info):
    info.file_size = 10 * 1024**3


@pytest.mark.parametrize("tamper, problem", [
    (encrypt, "'train/cat.0.jpg' is encrypted"),
    (use_aes, "'train/cat.0.jpg' uses compression method 99; only stored and deflated are read"),
    (declare_10_gib, "'train/cat.0.jpg' declares 10737418240 bytes uncompressed, over the 16777216 expected"),
], ids=["encrypted", "unknown-compression", "huge-declared-size"])
def test_a_member_that_cannot_be_read_safely_is_refused_before_it_is_inflated(tmp_path, capsys, tamper, problem):
    archive = kaggle_zip(tmp_path / "train.zip", 3, tamper=tamper)
    assert refused(capsys, tmp_path, *arrange(archive, tmp_path / "data")) == f"error: {archive}: {problem}"


def test_a_zip_bomb_is_refused_by_its_compression_ratio(tmp_path, capsys):
    bomb = b"\xff\xd8" + bytes(2 * 1024 * 1024)  # 2 MiB of zeros deflate to 2 KiB
    archive = kaggle_zip(tmp_path / "train.zip", 3, content=bomb, compression=zipfile.ZIP_DEFLATED)
    line = refused(capsys, tmp_path, *arrange(archive, tmp_path / "data"))
    assert line.startswith(f"error: {archive}: 'train/cat.0.jpg' inflates ") and line.endswith("to 2097154, over 100:1 (a zip bomb?)")


def test_a_damaged_deflate_stream_is_one_line(tmp_path, capsys):
    archive = kaggle_zip(tmp_path / "train.zip", 3, content=bytes(range(256)) * 40, compression=zipfile.ZIP_DEFLATED)
    damaged = bytearray(archive.read_bytes())
    damaged[60:200] = bytes(byte ^ 0x55 for byte in damaged[60:200])  # inside the first member's deflated data
    archive.write_bytes(damaged)
    assert refused(capsys, tmp_path, *arrange(archive, tmp_path / "data")).startswith(f"error: {archive}: cannot read it as a zip archive: ")


def test_a_jpeg_declaring_a_huge_picture_is_refused(tmp_path, capsys):
    photo = bytearray(jpeg((200, 90, 30)))
    frame = photo.index(b"\xff\xc0")  # start of frame: length (2 bytes), precision (1), height (2), width (2)
    photo[frame + 5:frame + 9] = (60000).to_bytes(2, "big") * 2
    archive = kaggle_zip(tmp_path / "train.zip", 3, content=bytes(photo))
    line = refused(capsys, tmp_path, *arrange(archive, tmp_path / "data"))
    assert line.startswith(f"error: {archive}: 'train/cat.0.jpg' is not a readable JPEG (Image size (3600000000 pixels) exceeds limit")


def test_a_refused_archive_leaves_nothing_half_arranged(tmp_path, capsys):
    """The photos before the broken one are not left in data/, where the next run would take them for real data."""
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for animal in ("cat", "dog"):
            for index in range(3):
                zipped.writestr(f"train/{animal}.{index}.jpg", b"not a jpeg" if (animal, index) == ("dog", 2) else jpeg((9, 9, 9)))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "README").write_text("data for the benchmark\n")

    line = refused(capsys, tmp_path, *arrange(archive, tmp_path / "data"))

    assert line.startswith(f"error: {archive}: 'train/dog.2.jpg' is not a readable JPEG (")


def test_counts_beyond_kaggles_archive_are_refused_before_it_is_opened(tmp_path, capsys):
    line = refused(capsys, tmp_path, *arrange(tmp_path / "absent.zip", tmp_path / "data", train=12000, validation=1000))
    assert line == ("error: --train-per-class 12000 and --validation-per-class 1000: at most 12500 together, "
                    "the cats (and dogs) in Kaggle's train.zip")


def test_empty_class_folders_are_filled_and_other_files_kept(tmp_path, capsys):
    (tmp_path / "data" / "train" / "cats").mkdir(parents=True)
    (tmp_path / "data" / "README").write_text("data for the benchmark\n")

    assert main(["data", *map(str, arrange(kaggle_zip(tmp_path / "train.zip", 3), tmp_path / "data"))]) == 0

    assert snapshot(tmp_path / "data") == ["README", "train", "train/cats", "train/cats/cat.0.jpg", "train/cats/cat.1.jpg",
                                           "train/dogs", "train/dogs/dog.0.jpg", "train/dogs/dog.1.jpg", "validation",
                                           "validation/cats", "validation/cats/cat.2.jpg", "validation/dogs", "validation/dogs/dog.2.jpg"]


def npz_with(path, **members):
    """mnist_npz, with some members replaced by raw .npy bytes."""
    mnist_npz(path)
    with zipfile.ZipFile(path) as zipped:
        kept = {name: zipped.read(name) for name in zipped.namelist() if name[:-4] not in members}
    with zipfile.ZipFile(path, "w") as zipped:
        for name, content in {**kept, **{f"{name}.npy": content for name, content in members.items()}}.items():
            zipped.writestr(name, content)
    return path


def npy_header(shape, descr="|u1"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def object_array():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"run": "os.system"}] * 50, dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("make, problem", [
    (lambda path: path.write_text("x_train,y_train\n1,2\n"), "not keras.datasets' mnist.npz (x_train, y_train, x_test, y_test): File is not a zip file"),
    (lambda path: zipfile.ZipFile(path, "w").close(), "not keras.datasets' mnist.npz: no x_train array in it"),
    (lambda path: npz_with(path, x_train=npy_header((10**9, 28, 28)) + bytes(784)),
     "x_train declares uint8(1000000000, 28, 28), 784000000000 bytes, but holds 784"),
    (lambda path: npz_with(path, y_test=object_array()), "y_test holds Python objects (a pickle), which are never loaded"),
    (lambda path: npz_with(path, x_test=npy_header((10, 28, 28), "<f4") + bytes(10 * 28 * 28 * 4)),
     "x_test/y_test are float32(10, 28, 28) and uint8(10,), not MNIST's uint8 (N, 28, 28) and integer (N,)"),
    (lambda path: npz_with(path, x_train=b"PK not an array"), "not keras.datasets' mnist.npz (x_train, y_train, x_test, y_test): "
                                                           "the magic string is not correct; expected b'\\x93NUMPY', got b'PK not'"),
], ids=["text", "no-arrays", "huge-declared-shape", "object-dtype", "wrong-dtype", "member-not-npy"])
def test_an_npz_that_is_not_what_its_name_says_is_refused(tmp_path, capsys, make, problem):
    source = tmp_path / "mnist.npz"
    make(source)
    assert refused(capsys, tmp_path, "mnist", "--from", source, "--data", tmp_path / "data") == f"error: {source}: {problem}"


def test_an_encrypted_npz_member_is_refused(tmp_path, capsys):
    source = mnist_npz(tmp_path / "mnist.npz")
    with zipfile.ZipFile(source) as zipped:
        members = {info: zipped.read(info) for info in zipped.infolist()}
    with zipfile.ZipFile(source, "w") as zipped:
        for info, content in members.items():
            zipped.writestr(info, content)
            encrypt(info)
    line = refused(capsys, tmp_path, "mnist", "--from", source, "--data", tmp_path / "data")
    assert line == f"error: {source}: 'x_train.npy' is encrypted"


@pytest.mark.parametrize("name, reason", [("absent.npz", "No such file or directory"), (".", "Is a directory")])
def test_mnist_from_a_file_that_cannot_be_read(tmp_path, capsys, name, reason):
    source = tmp_path / name
    assert refused(capsys, tmp_path, "mnist", "--from", source, "--data", tmp_path / "data") == f"error: {source}: cannot read it: {reason}"


def test_a_refused_mnist_keeps_the_one_in_place(tmp_path, capsys):
    assert main(["data", "mnist", "--from", str(mnist_npz(tmp_path / "good.npz")), "--data", str(tmp_path / "data")]) == 0
    kept = hashlib.sha256((tmp_path / "data" / "mnist" / "mnist.npz").read_bytes()).digest()
    capsys.readouterr()

    refused(capsys, tmp_path, "mnist", "--from", mnist_npz(tmp_path / "cifar.npz", shape=(32, 32)), "--data", tmp_path / "data")

    assert hashlib.sha256((tmp_path / "data" / "mnist" / "mnist.npz").read_bytes()).digest() == kept


def test_a_download_that_goes_on_is_cut_off(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_MNIST_BYTES", 4 * 1024 * 1024)
    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(bytes(5 * 1024 * 1024)))
    line = refused(capsys, tmp_path, "mnist", "--data", tmp_path / "data")
    assert line == f"error: {MNIST_URL}: over 4194304 bytes; keras.datasets' mnist.npz is 11 MB"


def test_a_download_is_checked_and_moved_into_place(tmp_path, capsys, monkeypatch):
    content = mnist_npz(tmp_path / "served.npz").read_bytes()
    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(content))

    assert main(["data", "mnist", "--data", str(tmp_path / "data")]) == 0

    assert snapshot(tmp_path / "data") == ["mnist", "mnist/mnist.npz"]
    assert (tmp_path / "data" / "mnist" / "mnist.npz").read_bytes() == content


# --- synthetic sets: complete, or not there at all --------------------------------------------


def small_mnist_workload(tmp_path):
    (tmp_path / "matrix.yaml").write_text('workloads: {mnist: {train_images: 30, validation_images: 6}}\ncpu: {tensorflow: ["2.21"]}\n')
    return load_matrix(tmp_path / "matrix.yaml").workloads[0]


def test_an_interrupted_synthetic_set_is_not_taken_for_a_complete_one(tmp_path, monkeypatch):
    workload = small_mnist_workload(tmp_path)

    def interrupted(folder, workload, rng):
        (folder / "mnist.npz").write_bytes(b"the first few bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "_write_mnist", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(workload, print)
    assert snapshot(tmp_path) == ["matrix.yaml"]

    monkeypatch.undo()
    dataset = prepare(workload, print)
    assert dataset.kind == "synthetic"
    assert check_mnist(dataset.path / "mnist.npz") == {"train": 30, "test": 6}


def test_a_damaged_marker_means_the_set_is_made_again(tmp_path):
    workload = small_mnist_workload(tmp_path)
    folder = prepare(workload, print).path
    (folder / "SYNTHETIC.json").write_text('{"version": 1, "mod')

    assert prepare(workload, print).path == folder
    assert check_mnist(folder / "mnist.npz") == {"train": 30, "test": 6}
    assert snapshot(tmp_path / "data") == ["synthetic", "synthetic/mnist-30-6", "synthetic/mnist-30-6/SYNTHETIC.json",
                                           "synthetic/mnist-30-6/mnist.npz"]


def test_a_synthetic_set_is_as_readable_as_any_new_folder(tmp_path):
    """The container's user (uid 10001) reads it: it must not keep the staging folder's private mode."""
    (tmp_path / "plain").mkdir()

    dataset = prepare(small_mnist_workload(tmp_path), print)

    assert stat.S_IMODE(dataset.path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def placed_by_hand(tmp_path):
    """The seed's layout, made by hand: 2 + 2 training and 1 + 1 validation photos, and a workload that reads them."""
    for split, count in (("train", 2), ("validation", 1)):
        for name in ("cats", "dogs"):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                (folder / f"{name[:-1]}.{index}.jpg").write_bytes(jpeg((index * 40, 90, 30)))
    (tmp_path / "matrix.yaml").write_text('workloads: {dogs-vs-cats: {train_images: 4, validation_images: 2}}\ncpu: {tensorflow: ["2.21"]}\n')
    return load_matrix(tmp_path / "matrix.yaml").workloads[0]


def huge_jpeg():
    photo = bytearray(jpeg((200, 90, 30)))
    frame = photo.index(b"\xff\xc0")  # start of frame: length (2 bytes), precision (1), height (2), width (2)
    photo[frame + 5:frame + 9] = (20000).to_bytes(2, "big") * 2
    return bytes(photo)


def image_as(kind):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize("replace, problem", [
    (lambda path: os.mkfifo(path), "not a regular file (a FIFO, folder or device)"),
    (lambda path: path.mkdir(), "not a regular file (a FIFO, folder or device)"),
    (lambda path: path.write_bytes(image_as("GIF")), "not a readable JPEG (a GIF image)"),
    (lambda path: path.write_bytes(image_as("PNG")), "not a readable JPEG (a PNG image)"),
    (lambda path: path.write_bytes(b"not a picture at all"), "not a readable JPEG (cannot identify image file"),
    (lambda path: path.write_bytes(huge_jpeg()), "not a readable JPEG (Image size (400000000 pixels) exceeds limit"),
], ids=["fifo", "folder", "gif", "png", "text", "20000x20000"])
def test_photos_placed_by_hand_are_checked_before_any_cell_runs(tmp_path, replace, problem):
    workload = placed_by_hand(tmp_path)
    assert prepare(workload, print).kind == "real"
    photo = tmp_path / "data" / "train" / "dogs" / "dog.1.jpg"
    photo.unlink()
    replace(photo)

    with pytest.raises(UserError) as refused:
        prepare(workload, print)

    assert str(refused.value).startswith(f"{photo.resolve()}: {problem}")
    assert str(refused.value).endswith(f"workloads.dogs-vs-cats would read it: replace it, or remove {(tmp_path / 'data' / 'train').resolve()} "
                                       "to use synthetic data")
