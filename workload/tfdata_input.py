"""tf.data input pipelines for every workload (TensorFlow's loader), with their tuning set explicitly and recorded.

They do what python_input.py does for every backend, with tf.data's own ops: the
same files, order semantics and augmentation (augment.py's, checked against it
in a test).

tf.data's autotuning made about one epoch in five stall on 2-core hosts (the
process idle for seconds, waiting for input), so by default parallelism and
prefetch are fixed and autotuning is off; `autotune` turns it back on, to
measure its effect. `cached` feeds decoded, augmented batches from memory
after the first (warm-up) epoch, to measure what JPEG decoding and
augmentation cost.
"""

import json
import os

import augment
import models
import python_input
from contract import SYNTHETIC_MARKER
from python_input import IMAGE_SIZE

SEED = 1337
# tf.data runs on the host: its cache() holds host tensors, and a dataset cannot hold tensors placed on a GPU
# (prefetch_to_device could only overlap the copy, and must end a pipeline Keras then wraps again). So with
# `input: cached` TensorFlow's batches stay in host memory and each is copied to the GPU inside its step.
CACHED_ON = "in host memory (tf.data's cache; each batch is copied to the device in its step)"


def data_description(data_dir, train_images, validation_images):
    marker = os.path.join(data_dir, SYNTHETIC_MARKER)
    description = {"kind": "synthetic" if os.path.exists(marker) else "real",
                   "train_images": train_images, "validation_images": validation_images}
    if description["kind"] == "synthetic":
        with open(marker) as spec:
            description["synthetic"] = json.load(spec)
    return description


def tuned(tf, dataset, settings):
    """The pipeline's tuning, the same for every workload: fixed unless autotune is asked for."""
    dataset = dataset.prefetch(tf.data.AUTOTUNE if settings.autotune else settings.prefetch_batches)
    options = tf.data.Options()
    options.autotune.enabled = settings.autotune
    return dataset.with_options(options)


def parallelism(tf, settings):
    return tf.data.AUTOTUNE if settings.autotune else settings.parallel_calls


# --- Dogs vs Cats: JPEGs on disk, the seed's ImageDataGenerator augmentation ---------------


def seed_transform(tf, images, shear, zoom_x, zoom_y):
    """augment.matrices and augment.transform, as tf.data ops: Keras 1's nearest-neighbour affine transform.

    Keras 1's matrix maps an output (row, column) to the input pixel it takes;
    ImageProjectiveTransformV3 maps an output (x, y) = (column, row), so the
    matrix's rows and columns trade places here (augment.py's docstring says why
    this matters for the shear's direction).
    """
    height, width = IMAGE_SIZE
    o_row, o_col = height / 2 + 0.5, width / 2 + 0.5
    row_shear = -tf.sin(shear) * zoom_y  # (row, column) matrix: [[zoom_x, row_shear, .], [0, col_scale, .]]
    col_scale = tf.cos(shear) * zoom_y
    zeros = tf.zeros_like(shear)
    transforms = tf.stack([
        col_scale, zeros, o_col * (1 - col_scale),  # source column from (x, y)
        row_shear, zoom_x, o_row * (1 - zoom_x) - row_shear * o_col,  # source row from (x, y)
        zeros, zeros,
    ], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.constant(IMAGE_SIZE),
        fill_value=0.0, interpolation="NEAREST", fill_mode="NEAREST",
    )


def seed_augmentation(tf, images):
    """The seed's ImageDataGenerator(shear_range=0.2, zoom_range=0.2, horizontal_flip=True), as Keras 1 ran it (augment.py)."""
    batch = tf.shape(images)[0]
    shear = tf.random.uniform([batch], -augment.SHEAR_RANGE, augment.SHEAR_RANGE)
    zoom_x = tf.random.uniform([batch], *augment.ZOOM_RANGE)
    zoom_y = tf.random.uniform([batch], *augment.ZOOM_RANGE)
    images = seed_transform(tf, images, shear, zoom_x, zoom_y)
    flip = tf.random.uniform([batch, 1, 1, 1]) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def dogs_vs_cats(tf, job, split, count):
    """Decode, resize, batch; then rescale (and for training, augment) in the pipeline, not in model layers."""
    augmenting, settings = split == "train", job.pipeline
    paths, labels = python_input.class_files(os.path.join(job.data_dir, split), count)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    if augmenting:
        dataset = dataset.shuffle(len(paths), seed=SEED, reshuffle_each_iteration=True)

    def load(path, label):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        resized = tf.image.resize(image, IMAGE_SIZE, method="nearest")  # PIL's default then; it keeps uint8
        return tf.cast(resized, tf.float32), tf.cast(label, tf.float32)

    def rescale(images, labels):
        return images / 255.0, labels

    def rescale_and_augment(images, labels):
        return seed_augmentation(tf, images / 255.0), labels

    dataset = dataset.map(load, num_parallel_calls=parallelism(tf, settings))
    dataset = dataset.batch(job.batch_size)
    dataset = dataset.map(rescale_and_augment if augmenting else rescale, num_parallel_calls=parallelism(tf, settings))
    if settings.input == "cached":
        dataset = dataset.cache()  # in host memory: CACHED_ON says why not on the GPU
    return tuned(tf, dataset, settings), len(paths)


# --- MNIST: arrays in one .npz, as keras.datasets.mnist stores them --------------------------


def mnist(tf, job, split, count):
    images, labels = python_input.mnist_arrays(job.data_dir, split, count)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if split == "train":
        dataset = dataset.shuffle(count, seed=SEED, reshuffle_each_iteration=True)
    return tuned(tf, dataset.batch(job.batch_size), job.pipeline), count


# --- Keras' applications: synthetic images made in the pipeline, cached ------------------------


def synthetic_images(tf, job, split, count):
    """python_input.synthetic_images with tf.data's ops: each batch random from a seed of its own, made once and cached."""
    import numpy as np

    seed = SEED if split == "train" else SEED + 1
    labels = tf.constant(np.random.default_rng(seed).integers(job.classes, size=count))
    shape = tf.constant(models.input_shape(job), tf.int32)

    def batch(first):
        size = tf.minimum(tf.constant(job.batch_size, tf.int64), count - first)
        images = tf.random.stateless_uniform(tf.concat([tf.reshape(tf.cast(size, tf.int32), [1]), shape], 0),
                                             seed=tf.stack([tf.constant(seed, tf.int64), first]))
        return images, tf.gather(labels, tf.range(first, first + size))

    dataset = tf.data.Dataset.range(0, count, job.batch_size).map(batch, num_parallel_calls=parallelism(tf, job.pipeline))
    return tuned(tf, dataset.cache(), job.pipeline), count


PIPELINES = {"dogs-vs-cats": dogs_vs_cats, "mnist": mnist, **{model: synthetic_images for model in models.APPLICATIONS}}
