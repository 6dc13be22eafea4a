"""Train one of the seed's Keras CNNs and time every epoch.

This script runs inside every image of the matrix, CPU and GPU alike, so that
every cell times the same model on the same input pipeline. It prints progress
lines while it trains and, last, one line starting with RECORD_PREFIX that
holds the machine-readable result the runner collects.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import gpu_facts
import models
import pipelines

RECORD_PREFIX = "CUDNN_MATRIX_RECORD "
RECORD_SCHEMA = 1
TRAINING_FLOPS_PER_FORWARD = 3  # forward, plus backward for inputs and for weights


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell-id", required=True)
    parser.add_argument("--workload", required=True, choices=sorted(models.MODELS))
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
    parser.add_argument("--autotune", choices=["true", "false"], default="false", help="let tf.data tune parallelism and prefetch")
    parser.add_argument("--input", choices=["jpeg", "cached"], default="jpeg",
                        help="cached: after the warm-up epoch, feed decoded and augmented batches from memory")
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


def epoch_timer(keras, train_images, epochs_total):
    """A callback that keeps wall times per epoch (training apart from validation) and per training step."""

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            self.train_ended = self.started
            self.steps = []

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.steps.append(now - self.train_ended)
            self.train_ended = now

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            train_seconds = self.train_ended - self.started
            entry = {
                "seconds": seconds,
                "train_seconds": train_seconds,
                "images_per_second": train_images / train_seconds,
                "steps": len(self.steps),
                "step_seconds_median": statistics.median(self.steps),
                "step_seconds_max": max(self.steps),
            }
            entry.update({k: float(v) for k, v in (logs or {}).items()})
            self.epochs.append(entry)
            print(
                f"epoch {epoch + 1}/{epochs_total}: {seconds:.2f} s "
                f"(training {train_seconds:.2f} s, {entry['images_per_second']:.0f} images/s)",
                flush=True,
            )

    return EpochTimer()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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

    keras.utils.set_random_seed(pipelines.SEED)
    record = provenance(tf, keras, args)
    if args.expect_gpu and not record["gpu"]["registered"]:
        # Checked before training: a GPU cell silently trained on the CPU would look like a slow GPU.
        finish(record, gpu_facts.gpu_failure(args.expect_cudnn, record["gpu"]))

    pipeline = pipelines.PIPELINES[args.workload]
    settings = record["settings"]["pipeline"]
    train, train_count = pipeline(tf, args.data, "train", args.train_images, args.batch_size, settings)
    validation, _ = pipeline(tf, args.data, "validation", args.validation_images, args.batch_size, settings)
    model = models.MODELS[args.workload](keras, args.jit_compile == "true")
    timer = epoch_timer(keras, train_count, args.epochs)
    print(f"{args.cell_id}: TensorFlow {tf.__version__}, Keras {keras.__version__}, {model.count_params()} parameters", flush=True)
    model.fit(train, epochs=args.epochs, validation_data=validation, callbacks=[timer], verbose=0)

    flops = models.forward_flops(model)
    for epoch in timer.epochs:
        epoch["gflops_per_second"] = epoch["images_per_second"] * TRAINING_FLOPS_PER_FORWARD * flops / 1e9
    record["epochs"] = timer.epochs
    record["model"] = {"parameters": int(model.count_params()), "forward_flops_per_image": flops,
                       "training_flops_per_image": TRAINING_FLOPS_PER_FORWARD * flops}
    record["gpu"] = gpu_facts.gpu_facts(tf)  # again: cuDNN is loaded only by the first convolution
    finish(record, gpu_facts.gpu_failure(args.expect_cudnn, record["gpu"]) if args.expect_gpu else None)


def provenance(tf, keras, args):
    return {
        "schema": RECORD_SCHEMA,
        "cell_id": args.cell_id,
        "workload": args.workload,
        "data": pipelines.data_description(args.data, args.train_images, args.validation_images),
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
            "pipeline": {
                "input": args.input,
                "autotune": args.autotune == "true",
                "parallel_calls": args.parallel_calls,
                "prefetch_batches": args.prefetch_batches,
            },
        },
        "devices": [device.device_type + ":" + device.name for device in tf.config.list_physical_devices()],
        "gpu": gpu_facts.gpu_facts(tf),
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
