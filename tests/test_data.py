"""Real data from the real archive layouts: Kaggle's train.zip and keras.datasets' mnist.npz."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import runner
from runner.config import load_matrix
from runner.datasets import prepare


def jpeg(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def kaggle_zip(path, per_animal, name="train/{animal}.{index}.jpg", content=None):
    """A small archive named like Kaggle's train.zip: train/cat.0.jpg ... train/dog.N.jpg."""
    with zipfile.ZipFile(path, "w") as archive:
        for animal in ("cat", "dog"):
            for index in range(per_animal):
                archive.writestr(name.format(animal=animal, index=index), content or jpeg((index * 20 % 255, 90, 30)))
    return path


def test_the_seed_split_is_arranged_from_the_kaggle_archive(tmp_path):
    archive = kaggle_zip(tmp_path / "train.zip", 8)
    result = runner("data", "dogs-vs-cats", "--from", archive, "--data", tmp_path / "data",
                    "--train-per-class", 5, "--validation-per-class", 2)
    assert result.returncode == 0, result.stderr
    assert "5 + 5 training and 2 + 2 validation images, all readable JPEGs" in result.stderr
    data = tmp_path / "data"
    assert sorted(p.name for p in (data / "train" / "cats").iterdir()) == [f"cat.{i}.jpg" for i in (0, 1, 2, 3, 4)]
    assert sorted(p.name for p in (data / "validation" / "dogs").iterdir()) == ["dog.5.jpg", "dog.6.jpg"]


def test_a_wrong_archive_is_refused_with_a_clear_line(tmp_path):
    archive = kaggle_zip(tmp_path / "test1.zip", 8, name="test1/{animal}{index}.jpg")  # not Kaggle's cat.N.jpg naming
    result = runner("data", "dogs-vs-cats", "--from", archive, "--data", tmp_path / "data", "--train-per-class", 5, "--validation-per-class", 2)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {archive}: not Kaggle's Dogs vs. Cats train.zip, or too small: no cat.0.jpg "
                                          "(0 files named cat.N.jpg/dog.N.jpg; 7 of each are needed)"]


def test_an_archive_with_broken_jpegs_is_refused(tmp_path):
    archive = kaggle_zip(tmp_path / "train.zip", 3, content=b"not a jpeg")
    result = runner("data", "dogs-vs-cats", "--from", archive, "--data", tmp_path / "data", "--train-per-class", 2, "--validation-per-class", 1)
    assert result.returncode == 2 and "not a readable JPEG" in result.stderr and "Traceback" not in result.stderr


def test_arranged_data_is_used_as_real_data(tmp_path):
    kaggle_zip(tmp_path / "train.zip", 6)
    assert runner("data", "dogs-vs-cats", "--from", tmp_path / "train.zip", "--data", tmp_path / "data",
                  "--train-per-class", 4, "--validation-per-class", 2).returncode == 0
    (tmp_path / "matrix.yaml").write_text('workloads: {dogs-vs-cats: {train_images: 8, validation_images: 4}}\ncpu: {tensorflow: ["2.21"]}\n')
    dataset = prepare(load_matrix(tmp_path / "matrix.yaml").workloads[0], print)
    assert (dataset.kind, dataset.path) == ("real", (tmp_path / "data").resolve())


def mnist_npz(path, train=50, test=10, shape=(28, 28)):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 255, (train, *shape), dtype=np.uint8), y_train=rng.integers(0, 10, train, dtype=np.uint8),
             x_test=rng.integers(0, 255, (test, *shape), dtype=np.uint8), y_test=rng.integers(0, 10, test, dtype=np.uint8))
    return path


def test_mnist_from_a_file_the_user_has(tmp_path):
    result = runner("data", "mnist", "--from", mnist_npz(tmp_path / "mnist.npz"), "--data", tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "50 training and 10 test images, sha256 " in result.stderr
    (tmp_path / "matrix.yaml").write_text('workloads: {mnist: {train_images: 40, validation_images: 10}}\ncpu: {tensorflow: ["2.21"]}\n')
    dataset = prepare(load_matrix(tmp_path / "matrix.yaml").workloads[0], print)
    assert (dataset.kind, dataset.path) == ("real", (tmp_path / "data" / "mnist").resolve())


def test_an_npz_that_is_not_mnist_is_refused(tmp_path):
    result = runner("data", "mnist", "--from", mnist_npz(tmp_path / "cifar.npz", shape=(32, 32)), "--data", tmp_path / "data")
    assert result.returncode == 2
    assert "not MNIST's uint8 (N, 28, 28)" in result.stderr and len(result.stderr.splitlines()) == 1


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


def test_dogs_vs_cats_needs_the_archive():
    result = runner("data", "dogs-vs-cats")
    assert result.returncode == 2 and "--from PATH/train.zip is needed" in result.stderr
