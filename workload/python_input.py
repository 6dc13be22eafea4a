"""The framework-neutral input pipeline: the same data, order and augmentation for every Keras backend.

A keras.utils.PyDataset: PIL decodes and resizes, numpy augments (augment.py),
`parallel_calls` worker threads fill a queue of `prefetch_batches`. With
`input: cached` the decoded, augmented batches of the first (warm-up) epoch
are moved to the device once (backends.cached_batches) and served again from
there, as tf.data's cache() serves them from memory.
"""

import math
import os

import numpy as np

import augment
import models
from contract import CLASSES, MNIST_FILE

IMAGE_SIZE = (150, 150)


def class_files(split_dir, count):
    """The first count/2 JPEGs of each class, sorted, with 0/1 labels."""
    per_class = count // len(CLASSES)
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        folder = os.path.join(split_dir, name)
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg")))
        if len(names) < per_class:
            raise SystemExit(f"{folder}: {len(names)} JPEGs, {per_class} needed")
        paths += [os.path.join(folder, n) for n in names[:per_class]]
        labels += [label] * per_class
    return paths, labels


def decode(path):
    """A photo as the seed loaded it: RGB, resized to 150x150 with nearest neighbours, scaled to [0, 1]."""
    from PIL import Image  # here, so that tf.data's pipelines can share this module without Pillow

    with Image.open(path) as image:
        resized = image.convert("RGB").resize(IMAGE_SIZE[::-1], Image.Resampling.NEAREST)
    return np.asarray(resized, dtype="float32") / 255.0


def dataset_class(keras):
    class Batches(keras.utils.PyDataset):
        """Batches of (inputs, labels), reshuffled each epoch with a seeded generator."""

        def __init__(self, load, count, batch_size, shuffle, cached, settings, seed, place):
            super().__init__(workers=settings.parallel_calls, use_multiprocessing=False, max_queue_size=settings.prefetch_batches)
            self.load, self.count, self.batch_size = load, count, batch_size
            self.shuffle, self.cached, self.seed, self.place = shuffle, cached, seed, place
            self.epoch = 0
            self.order = self._order()
            self.kept = {}

        def _order(self):
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.count) if self.shuffle else np.arange(self.count)

        def __len__(self):
            return math.ceil(self.count / self.batch_size)

        def __getitem__(self, index):
            if index in self.kept:
                return self.kept[index]
            picked = self.order[index * self.batch_size:(index + 1) * self.batch_size]
            # A generator per batch and epoch: the same augmentation whichever worker thread makes the batch.
            batch = self.load(picked, np.random.default_rng([self.seed, self.epoch, index]))
            if self.cached:  # on the device from now on: the timed epochs copy nothing from the host
                batch = self.kept[index] = tuple(self.place(part) for part in batch)
            return batch

        def on_epoch_end(self):
            if not self.cached:
                self.epoch += 1
                self.order = self._order()

    return Batches


def dogs_vs_cats(keras, job, split, count, seed, place):
    augmenting = split == "train"
    paths, labels = class_files(os.path.join(job.data_dir, split), count)
    labels = np.asarray(labels, dtype="float32")

    def load(indices, rng):
        images = np.stack([decode(paths[i]) for i in indices])
        return (augment.augment(images, rng) if augmenting else images), labels[indices]

    cached = job.pipeline.input == "cached"
    return dataset_class(keras)(load, len(paths), job.batch_size, augmenting, cached, job.pipeline, seed, place), len(paths)


def mnist_arrays(data_dir, split, count):
    """The first `count` images of a split, scaled to [0, 1], one channel, one-hot labels, as Keras 1's mnist_cnn had them."""
    with np.load(os.path.join(data_dir, MNIST_FILE)) as arrays:
        images, labels = (arrays["x_train"], arrays["y_train"]) if split == "train" else (arrays["x_test"], arrays["y_test"])
    if len(images) < count:
        raise SystemExit(f"{MNIST_FILE}: {len(images)} {split} images, {count} needed")
    return images[:count].reshape(-1, 28, 28, 1).astype("float32") / 255.0, np.eye(10, dtype="float32")[labels[:count]]


def mnist(keras, job, split, count, seed, place):
    images, labels = mnist_arrays(job.data_dir, split, count)

    def load(indices, rng):
        return images[indices], labels[indices]

    return dataset_class(keras)(load, count, job.batch_size, split == "train", False, job.pipeline, seed, place), count


def synthetic_images(keras, job, split, count, seed, place):
    """Keras' applications: random images of the job's shape, each batch made once from a seeded generator and kept on
    the device (their input is always cached), with labels drawn from the job's classes."""
    labels = np.random.default_rng(seed).integers(job.classes, size=count)
    shape = models.input_shape(job)

    def load(indices, rng):
        return rng.random((len(indices), *shape), dtype=np.float32), labels[indices]

    return dataset_class(keras)(load, count, job.batch_size, False, True, job.pipeline, seed, place), count


LOADERS = {"dogs-vs-cats": dogs_vs_cats, "mnist": mnist, **{model: synthetic_images for model in models.APPLICATIONS}}
