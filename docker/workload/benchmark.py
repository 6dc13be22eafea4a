"""Train the seed's "cats vs dogs with little data" CNN and time every epoch.

This script runs inside every image of the matrix, CPU and GPU alike, so that
every cell times the same model on the same input pipeline. It prints progress
lines while it trains and, last, one line starting with RECORD_PREFIX that
holds the machine-readable result the runner collects.

The network is the one from the Keras blog post "Building powerful image
classification models using very little data" (Keras 1, Theano). Its
Convolution2D(32, 3, 3) meant 32 filters of 3x3; in Keras 3 the third
positional argument is the stride, so the layers are spelled out here.
"""

import argparse
import ctypes
import json
import math
import os
import platform
import sys
import time

RECORD_PREFIX = "CUDNN_MATRIX_RECORD "
RECORD_SCHEMA = 1
IMAGE_SIZE = (150, 150)
CLASSES = ("cats", "dogs")
SYNTHETIC_MARKER = "SYNTHETIC.json"
SEED = 1337


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell-id", required=True)
    parser.add_argument("--workload", required=True, choices=["dogs-vs-cats"])
    parser.add_argument("--data", default="/data")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--validation-images", type=int, default=800)
    parser.add_argument("--jit-compile", choices=["true", "false"], default="false")
    parser.add_argument("--intra-op-threads", type=int, default=0)
    parser.add_argument("--inter-op-threads", type=int, default=0)
    parser.add_argument("--parallel-calls", type=int, default=2)
    parser.add_argument("--prefetch-batches", type=int, default=2)
    parser.add_argument("--expect-gpu", action="store_true", help="fail unless TensorFlow registers a GPU")
    parser.add_argument("--expect-cudnn", metavar="MAJOR.MINOR", help="fail unless this cuDNN is the one loaded")
    parser.add_argument("--fault", choices=["none", "crash", "hang", "memory", "garbage"], default="none",
                        help="misbehave on purpose, to prove the runner turns each failure into data")
    return parser.parse_args(argv)


def inject(fault):
    """Fail the way real cells fail: crash, hang, outgrow the memory limit, or print an unreadable record."""
    if fault == "crash":
        raise SystemExit("injected fault: crash")
    if fault == "hang":
        while True:
            time.sleep(60)
    if fault == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024 * 1024))
            hoard[-1][::4096] = b"x" * len(hoard[-1][::4096])  # touch every page so it is really used
    if fault == "garbage":
        print(RECORD_PREFIX + '{"epochs": [1, 2', flush=True)
        sys.exit(0)


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


def load_image(tf, path, label):
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    image = tf.image.resize(image, IMAGE_SIZE)
    return image, tf.cast(label, tf.float32)


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


def input_pipeline(tf, args, split, count, augment):
    """A tf.data pipeline with fixed parallelism: autotuning made epochs stall on small hosts."""
    paths, labels = class_files(os.path.join(args.data, split), count)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    if augment:
        dataset = dataset.shuffle(len(paths), seed=SEED, reshuffle_each_iteration=True)

    def load(path, label):
        return load_image(tf, path, label)

    def rescale(images, labels):
        return images / 255.0, labels

    def rescale_and_augment(images, labels):
        return seed_augmentation(tf, images / 255.0), labels

    dataset = dataset.map(load, num_parallel_calls=args.parallel_calls)
    dataset = dataset.batch(args.batch_size)
    dataset = dataset.map(rescale_and_augment if augment else rescale, num_parallel_calls=args.parallel_calls)
    dataset = dataset.prefetch(args.prefetch_batches)
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options), len(paths)


def seed_cnn(keras):
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=IMAGE_SIZE + (3,)),
            layers.Conv2D(32, (3, 3)),
            layers.Activation("relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(32, (3, 3)),
            layers.Activation("relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, (3, 3)),
            layers.Activation("relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dense(64),
            layers.Activation("relu"),
            layers.Dropout(0.5),
            layers.Dense(1),
            layers.Activation("sigmoid"),
        ]
    )
    return model


def epoch_timer(keras, train_images, epochs_total):
    """A callback that keeps wall times per epoch, with the training part apart from validation."""

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            self.train_ended = self.started

        def on_train_batch_end(self, batch, logs=None):
            self.train_ended = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            train_seconds = self.train_ended - self.started
            entry = {
                "seconds": seconds,
                "train_seconds": train_seconds,
                "images_per_second": train_images / train_seconds,
            }
            entry.update({k: float(v) for k, v in (logs or {}).items()})
            self.epochs.append(entry)
            print(
                f"epoch {epoch + 1}/{epochs_total}: {seconds:.2f} s "
                f"(training {train_seconds:.2f} s, {entry['images_per_second']:.0f} images/s)",
                flush=True,
            )

    return EpochTimer()


def loaded_library(name):
    """The path of a shared library this process has mapped, e.g. libcudnn.so.9: what was loaded, not what was asked for."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if os.path.basename(path).startswith(name + ".so"):
                    return path
    except OSError:
        pass
    return None


def library_version(path, function):
    """An int from a C function of the library at path that writes or returns its version."""
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    if function == "cudnnGetVersion":
        library.cudnnGetVersion.restype = ctypes.c_size_t
        return int(library.cudnnGetVersion())
    value = ctypes.c_int()
    return value.value if getattr(library, function)(ctypes.byref(value)) == 0 else None


def cudnn_text(version):
    # cuDNN 9 encodes major*10000 + minor*100 + patch; cuDNN 8 and older major*1000 + minor*100 + patch.
    major, rest = (version // 10000, version % 10000) if version >= 90000 else (version // 1000, version % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def cuda_text(version):
    return f"{version // 1000}.{version % 1000 // 10}"


def nvidia_driver():
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if nvml.nvmlInit_v2() != 0:
            return None
        buffer = ctypes.create_string_buffer(96)
        return buffer.value.decode() if nvml.nvmlSystemGetDriverVersion(buffer, 96) == 0 else None
    except (OSError, AttributeError):
        return None


def gpu_facts(tf):
    """What this process really has: registered GPUs, TensorFlow's build, and the CUDA/cuDNN libraries loaded."""
    gpus = tf.config.list_physical_devices("GPU")
    build = tf.sysconfig.get_build_info()
    facts = {
        "registered": [gpu.name for gpu in gpus],
        "details": [{k: str(v) for k, v in tf.config.experimental.get_device_details(gpu).items()} for gpu in gpus],
        "tensorflow_built_with": {k: str(build.get(k, "")) for k in ("is_cuda_build", "cuda_version", "cudnn_version")},
        "driver": nvidia_driver(),
    }
    cudart = loaded_library("libcudart")
    facts["cuda_runtime"] = {"path": cudart, "version": cuda_text(v) if cudart and (v := library_version(cudart, "cudaRuntimeGetVersion")) else None}
    driver_cuda = library_version("libcuda.so.1", "cuDriverGetVersion") if loaded_library("libcuda") else None
    facts["driver_cuda"] = cuda_text(driver_cuda) if driver_cuda else None
    cudnn = loaded_library("libcudnn")
    facts["cudnn"] = {"path": cudnn, "version": cudnn_text(v) if cudnn and (v := library_version(cudnn, "cudnnGetVersion")) else None}
    return facts


def gpu_failure(args, facts):
    """The reason a GPU cell's numbers must not be trusted, or None."""
    if not facts["registered"]:
        return "expected a GPU, TensorFlow registered none"
    if args.expect_cudnn:
        loaded = facts["cudnn"]["version"]
        if loaded is None:
            return f"expected cuDNN {args.expect_cudnn}, but no cuDNN library was loaded"
        if ".".join(loaded.split(".")[:2]) != args.expect_cudnn:
            return f"expected cuDNN {args.expect_cudnn}, loaded {loaded} from {facts['cudnn']['path']}"
    return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def data_description(args):
    marker = os.path.join(args.data, SYNTHETIC_MARKER)
    kind = "synthetic" if os.path.exists(marker) else "real"
    description = {"kind": kind, "train_images": args.train_images, "validation_images": args.validation_images}
    if kind == "synthetic":
        with open(marker) as spec:
            description["synthetic"] = json.load(spec)
    return description


def main(argv):
    args = parse_args(argv)
    inject(args.fault)
    if args.epochs <= args.warmup_epochs:
        raise SystemExit("--epochs must be larger than --warmup-epochs: nothing would be timed")

    import tensorflow as tf

    # Thread pools must be sized before TensorFlow runs its first operation.
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    import keras

    keras.utils.set_random_seed(SEED)
    record = provenance(tf, keras, args)
    if args.expect_gpu and not record["gpu"]["registered"]:
        # Checked before training: a GPU cell silently trained on the CPU would look like a slow GPU.
        finish(record, gpu_failure(args, record["gpu"]))

    train, train_count = input_pipeline(tf, args, "train", args.train_images, augment=True)
    validation, _ = input_pipeline(tf, args, "validation", args.validation_images, augment=False)
    model = seed_cnn(keras)
    model.compile(
        loss="binary_crossentropy",
        optimizer="rmsprop",
        metrics=["accuracy"],
        jit_compile=args.jit_compile == "true",
    )
    timer = epoch_timer(keras, train_count, args.epochs)
    print(f"{args.cell_id}: TensorFlow {tf.__version__}, Keras {keras.__version__}, {model.count_params()} parameters", flush=True)
    model.fit(train, epochs=args.epochs, validation_data=validation, callbacks=[timer], verbose=0)

    record["epochs"] = timer.epochs
    record["model"] = {"parameters": int(model.count_params())}
    record["gpu"] = gpu_facts(tf)  # again: cuDNN is loaded only by the first convolution
    finish(record, gpu_failure(args, record["gpu"]) if args.expect_gpu else None)


def provenance(tf, keras, args):
    return {
        "schema": RECORD_SCHEMA,
        "cell_id": args.cell_id,
        "workload": args.workload,
        "data": data_description(args),
        "warmup_epochs": args.warmup_epochs,
        "epochs": [],
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "host": {
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
        },
        "settings": {
            "batch_size": args.batch_size,
            "jit_compile": args.jit_compile == "true",
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "parallel_calls": args.parallel_calls,
            "prefetch_batches": args.prefetch_batches,
            "tf_data_autotune": False,
        },
        "devices": [device.device_type + ":" + device.name for device in tf.config.list_physical_devices()],
        "gpu": gpu_facts(tf),
    }


def finish(record, failure):
    """Print the record; a failed check is part of it and makes the exit status non-zero."""
    if failure:
        record["failure"] = failure
        print(f"FAILED: {failure}", flush=True)
    print(RECORD_PREFIX + json.dumps(record), flush=True)
    sys.exit(3 if failure else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
