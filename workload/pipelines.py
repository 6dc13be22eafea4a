"""Input pipelines for the two seed workloads, with their tuning set explicitly and recorded.

tf.data's autotuning made about one epoch in five stall on 2-core hosts (the
process idle for seconds, waiting for input), so by default parallelism and
prefetch are fixed and autotuning is off; `autotune` turns it back on, to
measure its effect. `cached` feeds decoded, augmented batches from memory
after the first (warm-up) epoch, to measure what JPEG decoding and
augmentation cost.
"""

import json
import math
import os

from contract import CLASSES, MNIST_FILE, SYNTHETIC_MARKER

IMAGE_SIZE = (150, 150)
SEED = 1337


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


def seed_augmentation(tf, images):
    """The seed's ImageDataGenerator(shear_range=0.2, zoom_range=0.2, horizontal_flip=True).

    As in Keras 2's apply_affine_transform: the shear is an angle in degrees,
    zoom draws x and y factors independently from [0.8, 1.2], the transform is
    centred on the image, bilinear, and fills with the nearest pixel.
    """
    batch = tf.shape(images)[0]
    height, width = IMAGE_SIZE
    shear = tf.random.uniform([batch], -0.2, 0.2) * (math.pi / 180.0)
    zoom_x = tf.random.uniform([batch], 0.8, 1.2)
    zoom_y = tf.random.uniform([batch], 0.8, 1.2)
    a0, a1 = zoom_x, -tf.sin(shear) * zoom_y
    b0, b1 = tf.zeros_like(zoom_x), tf.cos(shear) * zoom_y
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    transforms = tf.stack(
        [a0, a1, cx - a0 * cx - a1 * cy, b0, b1, cy - b1 * cy, tf.zeros_like(a0), tf.zeros_like(a0)],
        axis=1,
    )
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant(IMAGE_SIZE),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    flip = tf.random.uniform([batch, 1, 1, 1]) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def dogs_vs_cats(tf, data_dir, split, count, batch_size, settings):
    """Decode, resize, batch; then rescale (and for training, augment) in the pipeline, not in model layers."""
    augment = split == "train"
    paths, labels = class_files(os.path.join(data_dir, split), count)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    if augment:
        dataset = dataset.shuffle(len(paths), seed=SEED, reshuffle_each_iteration=True)

    def load(path, label):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(image, IMAGE_SIZE), tf.cast(label, tf.float32)

    def rescale(images, labels):
        return images / 255.0, labels

    def rescale_and_augment(images, labels):
        return seed_augmentation(tf, images / 255.0), labels

    dataset = dataset.map(load, num_parallel_calls=parallelism(tf, settings))
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(rescale_and_augment if augment else rescale, num_parallel_calls=parallelism(tf, settings))
    if settings.input == "cached":
        dataset = dataset.cache()
    return tuned(tf, dataset, settings), len(paths)


# --- MNIST: arrays in one .npz, as keras.datasets.mnist stores them --------------------------


def mnist(tf, data_dir, split, count, batch_size, settings):
    """Scaled to [0, 1], one channel, one-hot labels, as the Keras 1 mnist_cnn example did."""
    import numpy as np

    with np.load(os.path.join(data_dir, MNIST_FILE)) as arrays:
        images, labels = (arrays["x_train"], arrays["y_train"]) if split == "train" else (arrays["x_test"], arrays["y_test"])
    if len(images) < count:
        raise SystemExit(f"{MNIST_FILE}: {len(images)} {split} images, {count} needed")
    images = images[:count].reshape(-1, 28, 28, 1).astype("float32") / 255.0
    labels = np.eye(10, dtype="float32")[labels[:count]]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if split == "train":
        dataset = dataset.shuffle(count, seed=SEED, reshuffle_each_iteration=True)
    return tuned(tf, dataset.batch(batch_size), settings), count


PIPELINES = {"dogs-vs-cats": dogs_vs_cats, "mnist": mnist}
