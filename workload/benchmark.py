"""Train one Keras model (the seed's CNNs, or one of Keras' applications) and time every epoch.

This script runs in every environment of the matrix, CPU and GPU alike, so
that every cell times the same model on the same input pipeline. It takes one
argument, the job spec as JSON (contract.JobSpec), prints progress lines while
it trains and, last, one line starting with contract.RECORD_PREFIX that holds
the measurement the runner collects.
"""

import time

STARTED = time.time()  # before any other import: the timeline's first stamp

import dataclasses  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

import backends  # noqa: E402
import contract  # noqa: E402
import flop_count  # noqa: E402
import gpu_facts  # noqa: E402
import kernel_time  # noqa: E402
import models  # noqa: E402
import machine  # noqa: E402
import telemetry_sampler  # noqa: E402

COMPUTE_STEPS = 10  # at most: no more than an epoch has, which a tiny CPU cell of ResNet-50 would feel
MIXED_PRECISION = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def read_job(argv):
    """The job spec from `benchmark.py --job JSON`; a spec that breaks the contract ends the process with exit 2."""
    if len(argv) != 2 or argv[0] != "--job":
        raise SystemExit("usage: benchmark.py --job JOB_SPEC_JSON")
    try:
        return contract.JobSpec.from_json(argv[1])
    except contract.ContractError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)


def with_cores(job):
    """parallel_calls 0 means the cores this process may use: decided here, where they are known, and recorded."""
    if job.pipeline.parallel_calls:
        return job
    return dataclasses.replace(job, pipeline=dataclasses.replace(job.pipeline, parallel_calls=len(os.sched_getaffinity(0))))


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
        print(contract.RECORD_PREFIX + '{"epochs": [1, 2', flush=True)
        sys.exit(0)


def epoch_timer(keras, train_images, epochs_total, synchronize, timeline, sampler=None):
    """A callback that times each epoch's training apart from its validation, with the device synchronised only at their ends.

    Asynchronous backends queue work on the GPU: a clock read without `synchronize` would time work
    queued, not done, and a synchronisation after every step would stall the queue and time the host's
    round trips too. So the device is synchronised where training starts and ends and where validation
    ends, and nowhere in between. The per-step times are host-side timestamps at each step's start,
    which force no synchronisation (the timer hooks no batch's end: Keras would turn that step's logs
    into Python numbers, a synchronisation per step): on a GPU they time when the host could issue each
    step, the device's pace once the framework's queue is full. With a telemetry sampler, each epoch also
    gets what the machine did meanwhile; its window opens before the epoch's clock starts and closes after it stops.
    """

    class EpochTimer(keras.callbacks.Callback):
        _supports_tf_logs = True  # Keras 2: hand this callback the step's tensors as they are, not synced to numbers

        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            if sampler:
                sampler.begin_epoch()
            synchronize()
            self.started = time.perf_counter()
            self.step_starts = []
            self.train_ended = self.validation_started = None

        def on_train_batch_begin(self, batch, logs=None):
            now = time.perf_counter()
            if self.step_starts:  # the first step was issued (and, where traced, compiled) when the second one starts
                timeline.setdefault("first_step_ended", time.time())
            self.step_starts.append(now)

        def on_test_begin(self, logs=None):
            synchronize()
            self.train_ended = self.validation_started = time.perf_counter()

        def on_test_end(self, logs=None):
            synchronize()
            self.validation_ended = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            synchronize()
            ended = time.perf_counter()
            seconds = ended - self.started
            train_ended = ended if self.train_ended is None else self.train_ended  # no validation this epoch: training ran to its end
            train_seconds = train_ended - self.started
            steps = [b - a for a, b in zip(self.step_starts, self.step_starts[1:] + [train_ended])]
            timeline.setdefault("first_step_ended", time.time())
            entry = contract.Epoch(
                seconds=seconds, train_seconds=train_seconds,
                validation_seconds=self.validation_ended - self.validation_started if self.validation_started is not None else None,
                images_per_second=train_images / train_seconds,
                steps=len(steps), step_seconds_median=statistics.median(steps), step_seconds_max=max(steps),
                model_gflops_per_second=None, gflops_per_second=None, input_wait_share=None,  # with_rates, once the step's cost is known
                logs={k: float(v) for k, v in (logs or {}).items()},
                telemetry=sampler.end_epoch() if sampler else None,
            )
            self.epochs.append(entry)
            print(contract.epoch_line(epoch + 1, epochs_total, seconds, train_seconds, entry.images_per_second), flush=True)

    return EpochTimer()


def main(argv):
    job = with_cores(read_job(argv))
    inject(job.fault)
    # Only now modules beyond the standard library (here and in inputs and provenance):
    # a fault misbehaves in an environment without numpy too.
    import tfdata_input

    backends.before_import(job)
    framework = backends.import_framework(job.framework)
    settings = backends.configure(framework, job)
    import keras

    timeline = {"process_started": STARTED, "framework_imported": time.time()}
    if job.precision in MIXED_PRECISION:  # fp16's loss scaling: Keras' compile wraps the optimizer itself under this policy
        keras.mixed_precision.set_global_policy(MIXED_PRECISION[job.precision])
    keras.utils.set_random_seed(tfdata_input.SEED)
    name = contract.FRAMEWORKS[job.framework].title
    record = provenance(framework, keras, job, settings)
    if job.expect_gpu and not record["gpu"]["registered"]:
        # Checked before training: a GPU cell silently trained on the CPU would look like a slow GPU.
        finish(record, gpu_facts.gpu_failure(job.expect_cudnn, record["gpu"], name))

    train, validation, train_count, record["settings"]["pipeline"]["cached_batches"] = inputs(framework, keras, job)
    timeline["inputs_ready"] = time.time()
    model = models.build(keras, job, backends.jit_compile(job))
    record["settings"].update(jit_compile=bool(model.jit_compile), train_step=backends.train_step(job.framework, model),
                              data_format=keras.backend.image_data_format())
    train_step_calls = count_calls(model, "train_step")  # read when fit ends: the steps timed after it run it too
    timeline["model_built"] = time.time()
    sampler = telemetry_sampler.start(record["gpu"]["registered"])
    synchronize = functools.partial(backends.synchronize, job.framework, framework)
    timer = epoch_timer(keras, train_count, job.epochs, synchronize, timeline, sampler)
    print(f"{job.cell_id}: {name} {framework.__version__}, Keras {keras.__version__}, {model.count_params()} parameters", flush=True)
    compiles = compile_count(keras, backends.compile_counter(job.framework, framework), job.warmup_epochs)
    model.fit(train, epochs=job.epochs, validation_data=validation, callbacks=[timer, compiles], verbose=0)
    fit_train_step_calls, timed_compiles = train_step_calls[0], compiles.in_timed_epochs()
    timeline["trained"] = time.time()
    record["telemetry"] = sampler.stop() if sampler else telemetry_sampler.OFF

    flops = models.training_flops(model)
    batch = first_batch(train)  # once: every measurement after training steps on the same batch (tf.data's reshuffles)
    compute = compute_step_seconds(model, batch, synchronize, min(COMPUTE_STEPS, timer.epochs[-1].steps))
    record["kernel_time"] = kernels(job, framework, model, batch, synchronize, bool(record["gpu"]["registered"]))
    record["epochs"] = [with_rates(epoch, job.batch_size, flops, compute) for epoch in timer.epochs]
    record["timeline"] = timeline
    record["model"] = {"parameters": int(model.count_params()), "forward_flops_per_image": models.forward_flops(model),
                       "training_flops_per_image": flops, "compute_step_seconds": compute,
                       "train_step_python_calls": fit_train_step_calls, "compiles_in_timed_epochs": timed_compiles,
                       "counted_flops": flop_count.counted(job.framework, framework, model, batch)}
    record["convolution_ops"] = backends.convolution_ops(job.framework, framework, one_step(model, batch))
    record["gpu"] = gpu_facts.gpu_facts(backends.gpus(job.framework, framework), backends.built_with(job.framework, framework))
    # Again after training: cuDNN is loaded only by the first convolution.
    finish(record, gpu_facts.gpu_failure(job.expect_cudnn, record["gpu"], name) if job.expect_gpu else None)


def with_rates(epoch, batch_size, training_flops, compute_seconds):
    """The epoch with its rates: the model's, from the median step, apart from the effective one, which includes waiting for input.

    The input wait is set against the mean step (training seconds over steps), not the median: input stalls come
    at an epoch's start or in bursts, a few long steps among many short ones, which leave the median untouched.
    """
    mean_step = epoch.train_seconds / epoch.steps
    return dataclasses.replace(
        epoch,
        model_gflops_per_second=batch_size * training_flops / epoch.step_seconds_median / 1e9,
        gflops_per_second=epoch.images_per_second * training_flops / 1e9,
        input_wait_share=max(0.0, 1 - compute_seconds / mean_step),
    )


def kernels(job, framework, model, batch, synchronize, gpu):
    """The step's time by kernel class (kernel_time.py), where the job asks for it: auto profiles GPU cells only,
    where the convolutions cuDNN runs are the question; a CPU cell's profile costs seconds of its run."""
    if job.kernel_time == "off" or (job.kernel_time == "auto" and not gpu):
        return "not profiled: kernel_time off" if job.kernel_time == "off" else "not profiled: kernel_time auto profiles GPU cells only"
    return kernel_time.profile(job.framework, framework, model, batch, synchronize, gpu)


def inputs(framework, keras, job):
    """The training and validation data through the loader the job names (tf.data, or the framework-neutral one), and where cached batches live."""
    import python_input
    import tfdata_input

    if job.loader == "tfdata":
        pipeline = tfdata_input.PIPELINES[job.model]
        train, count = pipeline(framework, job, "train", job.train_images)
        validation, _ = pipeline(framework, job, "validation", job.validation_images)
        return train, validation, count, cached_batches(job, tfdata_input.CACHED_ON)
    loader = python_input.LOADERS[job.model]
    place, placed_on = backends.cached_batches(job.framework, framework)
    train, count = loader(keras, job, "train", job.train_images, tfdata_input.SEED, place)
    validation, _ = loader(keras, job, "validation", job.validation_images, tfdata_input.SEED + 1, place)
    return train, validation, count, cached_batches(job, placed_on)


def cached_batches(job, placed_on):
    """Where the cached batches live, for the record; MNIST keeps no cache: its arrays are in host memory from the start."""
    if job.pipeline.input != "cached":
        return f"{backends.NOT_APPLICABLE} (input: {job.pipeline.input})"
    return placed_on if job.model != "mnist" else f"{backends.NOT_APPLICABLE} (MNIST's arrays are in host memory; nothing is cached)"


def compile_count(keras, counter, warmup_epochs):
    """A callback counting XLA's compilations from the first timed epoch's start (jax): there, one is timed as training."""

    class CompileCount(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == warmup_epochs and counter:
                self.at_first_timed_epoch = counter()

        def in_timed_epochs(self):
            return counter() - self.at_first_timed_epoch if counter else f"{backends.NOT_APPLICABLE} (counted for jax)"

    return CompileCount()


def count_calls(model, method):
    """Count the Python runs of a model's method from now on; returns the one-item list that holds the count.

    A compiled training step (jax.jit, tf.function) runs its Python only while it is traced, an
    eager one once per batch: set against the steps trained, the count shows which one was timed.
    """
    calls = [0]
    original = getattr(model, method)

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(model, method, counted)
    return calls


def first_batch(train):
    return train[0] if hasattr(train, "__getitem__") else next(iter(train))


def compute_step_seconds(model, batch, synchronize, steps):
    """What a training step costs with no input to wait for: the median of steps on one batch already in memory.

    Measured after the timed epochs, so it changes none of them. Set against an epoch's mean
    step it gives the share of the step spent waiting for the next batch (and in the loop's own
    overhead): the input_wait_share of each epoch.
    """
    inputs, labels = batch
    model.train_on_batch(inputs, labels)  # the first call may trace or compile
    synchronize()
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(inputs, labels)
        synchronize()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def one_step(model, batch):
    """A training step on the first batch, for the profiler: after the timed epochs, so it times nothing."""

    def step():
        model.train_on_batch(*batch)

    return step


def provenance(framework, keras, job, settings):
    """The measurement's fields known before training, as keyword arguments of contract.Measurement."""
    import tfdata_input

    return {
        "schema": contract.MEASUREMENT_SCHEMA,
        "cell_id": job.cell_id,
        "workload": job.model,
        "data": tfdata_input.data_description(job.data_dir, job.train_images, job.validation_images),
        "warmup_epochs": job.warmup_epochs,
        "epochs": [],
        "versions": {
            "python": platform.python_version(),
            job.framework: framework.__version__,
            "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
        },
        "host": {
            "cpu_model": machine.cpu_model(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
        },
        "settings": {
            "batch_size": job.batch_size,
            "image_size": job.image_size,
            "classes": job.classes,
            "jit_compile_requested": job.jit_compile,  # then what Keras set, and so how the step ran
            "precision": job.precision,
            "compute_dtype": keras.mixed_precision.global_policy().compute_dtype,
            "loader": job.loader,
            **settings,
            "pipeline": {
                "input": job.pipeline.input,
                "autotune": job.pipeline.autotune,
                "parallel_calls": job.pipeline.parallel_calls,
                "prefetch_batches": job.pipeline.prefetch_batches,
            },
        },
        "devices": backends.gpus(job.framework, framework),
        "gpu": gpu_facts.gpu_facts(backends.gpus(job.framework, framework), backends.built_with(job.framework, framework)),
    }


def record_line(record, failure):
    """The line the runner reads: the measurement, built through the contract so that a field it does not know fails here."""
    return contract.RECORD_PREFIX + contract.Measurement(**record, failure=failure).to_json()


def finish(record, failure):
    """Print the record; a failed check is part of it and makes the exit status non-zero."""
    if failure:
        print(f"FAILED: {failure}", flush=True)
    print(record_line(record, failure), flush=True)
    sys.exit(3 if failure else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
