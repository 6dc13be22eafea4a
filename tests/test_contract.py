"""The one contract between runner and workload, checked from both sides, and the workload's pure helpers."""

import dataclasses
import json
import os
import sys
import time
import types
from pathlib import Path

import pytest

from runner.cells import expand
from runner.compatibility import load_table
from runner.config import load_matrix
from runner.datasets import Dataset
from runner.outcome import RawRun, decide, split_output
from runner.session import job_spec
from runner.workloads import MODELS
from workload import contract
from measurements import epoch, epoch_telemetry, gpu_epoch, gpu_run_facts, run_telemetry
from workload.contract import ContractError, JobSpec, Measurement

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workload"))  # as the workload runs: its modules side by side

import backends  # noqa: E402
import benchmark  # noqa: E402
import gpu_facts  # noqa: E402
import models  # noqa: E402
import python_input  # noqa: E402
import tfdata_input  # noqa: E402


def default_jobs():
    matrix = load_matrix(REPO / "matrix.yaml")
    return [job_spec(cell, Dataset(cell.workload.name, Path("/data"), "synthetic")) for cell in expand(matrix, load_table())]


def test_every_cell_of_the_default_matrix_makes_a_job_spec_the_workload_accepts():
    jobs = default_jobs()
    assert len(jobs) == 24
    for job in jobs:
        accepted = benchmark.read_job(["--job", job.to_json()])
        assert dataclasses.asdict(accepted) == dataclasses.asdict(job)
    gpu = [job for job in jobs if job.cell_id.startswith("gpu-")]
    assert all(job.expect_gpu and job.expect_cudnn for job in gpu)


def test_input_stalls_in_bursts_count_in_the_input_wait_share():
    # 90 steps of 10 ms and a burst of 10 stalled ones of 100 ms: the median step is 10 ms, as the compute is, yet
    # 47% of the training time waits for input (1 - 0.01 / (1.9 s / 100 steps)).
    steps = [0.01] * 90 + [0.1] * 10
    stalled = contract.Epoch(**epoch(2.0, sum(steps), steps=len(steps), step_seconds_median=0.01, step_seconds_max=0.1))
    timed = benchmark.with_rates(stalled, batch_size=32, training_flops=1e9, compute_seconds=0.01)
    assert timed.input_wait_share == pytest.approx(1 - 0.01 / 0.019)
    steady = contract.Epoch(**epoch(1.2, 1.0, steps=100, step_seconds_median=0.01, step_seconds_max=0.01))
    assert benchmark.with_rates(steady, 32, 1e9, 0.01).input_wait_share == pytest.approx(0.0, abs=1e-9)

@pytest.mark.parametrize("framework, asked, variables", [
    ("tensorflow", "default", {"XLA_FLAGS": "--xla_dump_to=/tmp"}),  # nothing set: TensorFlow's own default (it autotunes)
    ("tensorflow", "off", {"TF_CUDNN_USE_AUTOTUNE": "0", "XLA_FLAGS": "--xla_dump_to=/tmp"}),
    ("jax", "default", {"XLA_FLAGS": "--xla_dump_to=/tmp"}),  # XLA's own level
    ("jax", "on", {"XLA_FLAGS": "--xla_dump_to=/tmp --xla_gpu_autotune_level=4"}),
    ("jax", "off", {"XLA_FLAGS": "--xla_dump_to=/tmp --xla_gpu_autotune_level=0"}),
    ("torch", "on", {"XLA_FLAGS": "--xla_dump_to=/tmp"}),  # torch's switch is set after import (backends.configure)
])
def test_conv_autotune_default_takes_away_inherited_overrides_and_on_off_force_it(monkeypatch, framework, asked, variables):
    monkeypatch.setenv("TF_CUDNN_USE_AUTOTUNE", "1")
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_autotune_level=2 --xla_dump_to=/tmp")
    monkeypatch.setenv("KERAS_BACKEND", "")
    job = dataclasses.replace(default_jobs()[0], framework=framework, conv_autotune=asked)
    backends.before_import(job)
    assert {name: os.environ[name] for name in ("TF_CUDNN_USE_AUTOTUNE", "XLA_FLAGS") if name in os.environ} == variables


def test_the_record_says_which_conv_autotune_was_in_effect_and_whether_it_was_the_frameworks_default():
    job = default_jobs()[0]
    assert backends.conv_autotune(job, gpu=True, in_effect=True) == {"conv_autotune": "on", "conv_autotune_source": "the framework's default"}
    forced = dataclasses.replace(job, conv_autotune="off")
    assert backends.conv_autotune(forced, gpu=True, in_effect=False) == {"conv_autotune": "off", "conv_autotune_source": "forced by the matrix"}
    assert backends.conv_autotune(job, gpu=False, in_effect=True)["conv_autotune"] == "not applicable (no GPU)"


def test_the_timer_synchronises_the_device_at_epoch_boundaries_and_times_validation_apart():
    """Four synchronisations an epoch (its start, training's end, validation's end, its end) whatever its steps; none per step."""
    keras = types.SimpleNamespace(callbacks=types.SimpleNamespace(Callback=object))
    synchronised = []
    timeline = {}
    timer = benchmark.epoch_timer(keras, 64, 1, lambda: synchronised.append(time.perf_counter()), timeline)
    timer.on_epoch_begin(0)
    for step in range(4):
        timer.on_train_batch_begin(step)
        time.sleep(0.002)
    assert len(synchronised) == 1
    timer.on_test_begin()
    time.sleep(0.003)
    timer.on_test_end()
    timer.on_epoch_end(0, {"loss": 0.5})
    (epoch,) = timer.epochs
    assert len(synchronised) == 4 and "first_step_ended" in timeline
    assert epoch.steps == 4 and 0.002 <= epoch.step_seconds_median and epoch.step_seconds_max < epoch.train_seconds
    assert 0.008 <= epoch.train_seconds and 0.003 <= epoch.validation_seconds
    assert epoch.train_seconds + epoch.validation_seconds <= epoch.seconds and epoch.images_per_second == 64 / epoch.train_seconds


def test_the_runner_knows_defaults_for_every_model_the_workload_trains():
    assert tuple(MODELS) == contract.MODELS == tuple(models.SEED_MODELS) + tuple(models.APPLICATIONS)
    assert tuple(models.APPLICATIONS) == contract.KERAS_APPLICATIONS == tuple(python_input.LOADERS)[2:] == tuple(tfdata_input.PIPELINES)[2:]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("epochs"), "job spec: epochs: missing"),
    (lambda d: d.update(batch_size="32"), "job spec: batch_size: expected int"),
    (lambda d: d.update(jit_compile=True), "job spec: jit_compile: expected str"),
    (lambda d: d.update(jit_compile="xla"), "job spec: jit_compile: expected one of auto, on, off"),
    (lambda d: d.update(epochs=True), "job spec: epochs: expected int"),
    (lambda d: d.update(surprise=1), "job spec: unknown key 'surprise'"),
    (lambda d: d.update(schema=99), "job spec: expected schema 7, got 99: the runner and the workload are from different versions"),
    (lambda d: d.update(schema=3, backend=d.pop("framework")), "job spec: expected schema 7, got 3"),  # before "backend" was "framework"
    (lambda d: d.update(schema=4, conv_autotune=False), "job spec: expected schema 7, got 4"),  # before conv_autotune was default|on|off
    (lambda d: d.update(schema=6, image_size=None), "job spec: expected schema 7, got 6"),  # before image_size, classes and data_format
    (lambda d: d.update(data_format="nhwc"), "job spec: data_format: expected one of channels_last, channels_first, got 'nhwc'"),
    (lambda d: d.update(conv_autotune=True), "job spec: conv_autotune: expected str"),
    (lambda d: d.update(conv_autotune="heuristic"), "job spec: conv_autotune: expected one of default, on, off"),
    (lambda d: d.update(kernel_time="always"), "job spec: kernel_time: expected one of auto, on, off"),
    (lambda d: d.update(framework="mxnet"), "job spec: framework: expected one of tensorflow, torch, jax"),
    (lambda d: d.update(loader="tfdata", framework="torch"), "job spec: loader: tf.data needs the tensorflow framework, not torch"),
    (lambda d: d.update(precision="fp8"), "job spec: precision: expected one of fp32, tf32, bf16, fp16"),
    (lambda d: d.update(model="resnet"), "job spec: model: expected one of dogs-vs-cats, mnist"),
    (lambda d: d.update(fault="explode"), "job spec: fault: expected one of none, crash"),
    (lambda d: d["pipeline"].pop("autotune"), "job spec: pipeline: autotune: missing"),
    (lambda d: d["pipeline"].update(input="png"), "job spec: pipeline.input: expected one of jpeg, cached"),
    (lambda d: d.update(epochs=1), "job spec: epochs: expected more than warmup_epochs"),
])
def test_a_job_spec_that_breaks_the_contract_is_refused_naming_the_key(change, message):
    data = json.loads(default_jobs()[0].to_json())
    change(data)
    with pytest.raises(ContractError) as caught:
        JobSpec.from_json(json.dumps(data))
    assert str(caught.value).startswith(message)


def test_the_workload_exits_2_on_a_bad_job_spec(capsys):
    with pytest.raises(SystemExit) as caught:
        benchmark.read_job(["--job", "{}"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.startswith("error: job spec: expected schema 7, got None")
    with pytest.raises(SystemExit, match="usage: benchmark.py --job"):
        benchmark.read_job(["--epochs", "3"])


MEASURED = {"schema": contract.MEASUREMENT_SCHEMA, "cell_id": "c", "workload": "mnist", "data": {}, "warmup_epochs": 1,
            "epochs": [epoch(2.0, 1.5, 40.0)] * 2, "versions": {}, "host": {},
            "settings": {}, "devices": [], "gpu": {}}


def test_a_measurement_is_typed_and_its_schema_checked():
    measurement = Measurement.from_dict(dict(MEASURED))
    assert measurement.epochs[0].seconds == 2.0 and measurement.failure is None
    with pytest.raises(ContractError, match="measurement: expected schema 4, got 7"):
        Measurement.from_dict(dict(MEASURED, schema=7))
    timed_apart = Measurement.from_dict(dict(MEASURED, epochs=[epoch(2.0, 1.5, validation_seconds=0.4)]))
    assert (timed_apart.epochs[0].train_seconds, timed_apart.epochs[0].validation_seconds) == (1.5, 0.4)
    with pytest.raises(ContractError, match=r"measurement: epochs\[1\]: validation_seconds: expected from 0 to the epoch's seconds"):
        Measurement.from_dict(dict(MEASURED, epochs=[epoch(2.0, 1.5, validation_seconds=3.0)]))
    with pytest.raises(ContractError, match=r"measurement: epochs\[1\]: seconds: expected float, got nan"):
        Measurement.from_dict(dict(MEASURED, epochs=[epoch(float("nan"), 1, 1)]))
    with pytest.raises(ContractError, match="measurement: versions: missing"):
        Measurement.from_dict({k: v for k, v in MEASURED.items() if k != "versions"})


def test_a_measurement_may_carry_a_timeline_of_its_stages():
    stamps = {stage: 1000.0 + number for number, stage in enumerate(contract.TIMELINE)}
    assert Measurement.from_dict(dict(MEASURED, timeline=stamps)).timeline == stamps
    assert Measurement.from_dict(dict(MEASURED)).timeline is None  # older workloads wrote none
    with pytest.raises(ContractError, match="measurement: timeline: expected dict"):
        Measurement.from_dict(dict(MEASURED, timeline=[1.0]))


# --- the outcome ladder, pure ---------------------------------------------------------------


def outcome(**raw):
    return decide(RawRun(**{"exit_code": 0, "output": "", **raw}), "0.1 min (workloads.x.timeout_minutes)", "limit 1g, limits.memory")


def line(data):
    return contract.RECORD_PREFIX + json.dumps(data)


@pytest.mark.parametrize("raw, status, reason", [
    ({"output": line(MEASURED)}, "ok", ""),
    ({"output": line(dict(MEASURED, failure="expected cuDNN 9.3, loaded 9.5.1")), "exit_code": 3}, "failed", "expected cuDNN 9.3, loaded 9.5.1"),
    ({"output": "epoch 1/3\n", "timed_out": True, "exit_code": 137}, "failed", "exceeded its time limit of 0.1 min (workloads.x.timeout_minutes)"),
    ({"out_of_memory": True, "exit_code": 137}, "failed", "killed for running out of memory (limit 1g, limits.memory)"),
    ({"output": "loading\nValueError: bad\n\n", "exit_code": 1}, "failed", "the workload exited with code 1: ValueError: bad"),
    ({"exit_code": 139}, "failed", "the workload exited with code 139: no output"),
    ({"output": contract.RECORD_PREFIX + '{"epochs": [1, 2'}, "failed", "the workload printed no readable result record"),
    ({"output": "no record at all"}, "failed", "the workload printed no readable result record"),
    ({"output": line(dict(MEASURED, epochs=[]))}, "failed", "the workload printed no readable result record"),
    ({"output": line(dict(MEASURED, epochs=MEASURED["epochs"][:1]))}, "failed",
     "the workload's result has no timed epoch (1 epoch(s), 1 of them warm-up)"),
    ({"output": line(dict(MEASURED, epochs=[dict(MEASURED["epochs"][0], seconds=0.0)] * 2))}, "failed",
     "the workload printed no readable result record (measurement: epochs[1]: expected seconds and train_seconds above 0 and at most a week, "
     "images_per_second above 0 and at most a billion)"),
    ({"output": line(dict(MEASURED, epochs=[dict(MEASURED["epochs"][0], seconds=-3.0)] * 2))}, "failed",
     "the workload printed no readable result record (measurement: epochs[1]: expected seconds and train_seconds above 0 and at most a week, "
     "images_per_second above 0 and at most a billion)"),
    ({"output": line(dict(MEASURED, epochs=[dict(MEASURED["epochs"][0], seconds=1e12)] * 2))}, "failed",
     "the workload printed no readable result record (measurement: epochs[1]: expected seconds and train_seconds above 0 and at most a week, "
     "images_per_second above 0 and at most a billion)"),
    ({"output": line(dict(MEASURED, schema=9))}, "failed",
     "the workload printed no readable result record (measurement: expected schema 4, got 9: the workload in the environment and this runner are from different versions)"),
    ({"exit_code": None, "error": "the engine refused the container: bad memory"}, "failed", "the engine refused the container: bad memory"),
])
def test_the_outcome_ladder(raw, status, reason):
    decided = outcome(**raw)
    assert (decided.status, decided.reason) == (status, reason)
    assert (decided.measurement is not None) == (status == "ok" or "expected cuDNN" in reason)


def test_the_log_tail_keeps_the_last_lines_without_the_record():
    output = "\n".join(f"line {n}" for n in range(30)) + "\n" + line(MEASURED) + "\n"
    tail, record_line = split_output(output)
    assert list(tail) == [f"line {n}" for n in range(10, 30)]
    assert json.loads(record_line)["cell_id"] == "c"


# --- the workload's pure helpers ------------------------------------------------------------


@pytest.mark.parametrize("encoded, text", [(90300, "9.3.0"), (91001, "9.10.1"), (8906, "8.9.6"), (7605, "7.6.5")])
def test_cudnn_versions_decode_both_encodings(encoded, text):
    assert gpu_facts.cudnn_text(encoded) == text


def test_cuda_versions_decode():
    assert (gpu_facts.cuda_text(12060), gpu_facts.cuda_text(11080)) == ("12.6", "11.8")


@pytest.mark.parametrize("facts, expect, failure", [
    ({"registered": []}, "9.3", "expected a GPU, TensorFlow registered none"),
    ({"registered": ["/gpu:0"], "cudnn": {"version": None, "path": None}}, "9.3", "expected cuDNN 9.3, but no cuDNN library was loaded"),
    ({"registered": ["/gpu:0"], "cudnn": {"version": "9.5.1", "path": "/x/libcudnn.so.9"}}, "9.3", "expected cuDNN 9.3, loaded 9.5.1 from /x/libcudnn.so.9"),
    ({"registered": ["/gpu:0"], "cudnn": {"version": "9.3.0", "path": "/x/libcudnn.so.9"}}, "9.3", None),
    ({"registered": ["/gpu:0"], "cudnn": {"version": "9.10.2", "path": "/x/libcudnn.so.9"}}, "9.1", "expected cuDNN 9.1, loaded 9.10.2 from /x/libcudnn.so.9"),
    ({"registered": ["/gpu:0"]}, "", None),
])
def test_gpu_failure_names_what_was_expected_and_what_was_loaded(facts, expect, failure):
    assert gpu_facts.gpu_failure(expect, facts, "TensorFlow") == failure


def test_the_flop_counter_gives_the_seed_networks_hand_counts():
    # Dogs vs Cats: three convolutions and two dense layers; the same hand count as in the Docker test.
    dogs = [("Conv2D", (3, 3, 3, 32), (148, 148)), ("Conv2D", (3, 3, 32, 32), (72, 72)),
            ("Conv2D", (3, 3, 32, 64), (34, 34)), ("Dense", (18496, 64), ()), ("Dense", (64, 1), ())]
    mnist = [("Conv2D", (3, 3, 1, 32), (26, 26)), ("Conv2D", (3, 3, 32, 32), (24, 24)),
             ("Dense", (4608, 128), ()), ("Dense", (128, 10), ())]
    assert sum(models.layer_flops(*layer) for layer in dogs) == 178_384_000
    assert sum(models.layer_flops(*layer) for layer in mnist) == 12_188_416
    assert models.layer_flops(*dogs[0]) == 2 * 148 * 148 * 3 * 3 * 3 * 32  # the first layer's input needs no gradient


def test_a_depthwise_convolution_convolves_each_channel_on_its_own():
    # MobileNetV2's first depthwise layer at 224 px: 32 channels, 3x3, 112x112 out; a full convolution would cost 32 times more.
    assert models.layer_flops("DepthwiseConv2D", (3, 3, 32, 1), (112, 112)) == 2 * 112 * 112 * 3 * 3 * 32
    assert models.layer_flops("Conv2D", (3, 3, 32, 32), (112, 112)) == 32 * models.layer_flops("DepthwiseConv2D", (3, 3, 32, 1), (112, 112))


@pytest.mark.parametrize("data_format, shape", [("channels_last", (None, 26, 24, 32)), ("channels_first", (None, 32, 26, 24))])
def test_a_layers_output_size_is_read_where_its_data_format_puts_it(data_format, shape):
    class Layer:
        output = types.SimpleNamespace(shape=shape)

    Layer.data_format = data_format
    assert models.output_size(Layer()) == (26, 24)


def test_training_flops_leave_out_the_first_layers_input_gradient(monkeypatch):
    layers = [("Conv2D", (3, 3, 1, 32), (26, 26)), ("Dense", (4608, 128), ())]
    monkeypatch.setattr(models, "_layers", lambda model: layers)
    first, dense = (models.layer_flops(*layer) for layer in layers)
    assert models.forward_flops(None) == first + dense
    assert models.training_flops(None) == 3 * (first + dense) - first


def test_telemetry_is_an_optional_field_so_that_measurements_stored_before_it_still_load():
    assert Measurement.from_dict(dict(MEASURED)).telemetry is None
    assert Measurement.from_dict(dict(MEASURED, telemetry="off: CUDNN_MATRIX_TELEMETRY=off")).telemetry.startswith("off")
    assert Measurement.from_dict(dict(MEASURED, telemetry=run_telemetry("not available: x"))).telemetry.gpus == "not available: x"
    with pytest.raises(ContractError, match=r"measurement: telemetry: expected RunTelemetry \| str \| None, got 3"):
        Measurement.from_dict(dict(MEASURED, telemetry=3))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["epochs"][1].pop("logs"), "measurement: epochs[2]: logs: missing"),
    (lambda d: d["epochs"][1].update(loss=0.5), "measurement: epochs[2]: unknown key 'loss'"),
    (lambda d: d["epochs"][0]["logs"].update(loss="low"), "measurement: epochs[1]: logs: expected dict[str, float]"),
    (lambda d: d["epochs"][0].update(telemetry=epoch_telemetry([gpu_epoch(index="0")])),
     "measurement: epochs[1]: telemetry: gpus[1]: index: expected int, got '0'"),
    (lambda d: d["epochs"][0].update(telemetry=epoch_telemetry([gpu_epoch(clock_event_reasons=[4])])),
     "measurement: epochs[1]: telemetry: gpus[1]: clock_event_reasons[1]: expected str, got 4"),
    (lambda d: d.update(telemetry=dict(run_telemetry(), sampler={"samples": 1})), "measurement: telemetry: sampler: cpu_seconds: missing"),
    (lambda d: d.update(telemetry=run_telemetry([gpu_run_facts(energy_counter=1)])),
     "measurement: telemetry: gpus[1]: energy_counter: expected bool | str, got 1"),
])
def test_the_epochs_and_telemetry_are_typed_naming_the_key(change, message):
    data = json.loads(json.dumps(MEASURED))
    change(data)
    with pytest.raises(ContractError) as caught:
        Measurement.from_dict(data)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("backend, requested, compiled, step", [
    ("jax", "auto", True, "XLA (jax.jit)"),  # Keras compiles the jax step only when told: auto tells it, as users run jax
    ("tensorflow", "auto", False, "graph (tf.function)"),  # the seed's TensorFlow cells, as before
    ("torch", "auto", False, "eager"),
    ("jax", "off", False, "eager (jax op by op)"),
    ("tensorflow", "on", True, "XLA (tf.function, jit_compile)"),
    ("torch", "on", True, "torch.compile"),
])
def test_jit_compile_auto_is_each_backend_as_keras_users_run_it(backend, requested, compiled, step):
    job = dataclasses.replace(default_jobs()[0], framework=backend, jit_compile=requested)
    assert backends.jit_compile(job) is compiled

    class Compiled:  # what Keras' compile leaves on a model: the setting its train function is made by
        jit_compile, run_eagerly = compiled, False
    assert backends.train_step(backend, Compiled()) == step


def test_the_default_matrix_asks_for_jit_compile_auto():
    assert {job.jit_compile for job in default_jobs()} == {"auto"}


def test_a_counted_method_still_answers_and_counts_each_call():
    class Model:
        def train_step(self, data):
            return data * 2
    model = Model()
    calls = benchmark.count_calls(model, "train_step")
    assert [model.train_step(1), model.train_step(2)] == [2, 4]
    assert calls == [2]


def tensorflow_failure(node, message):
    """How TensorFlow 2.21 / Keras 3 end an error in tf.data's pipeline (captured from the cpu-tf2.21 image)."""
    return f"""Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/keras/src/utils/traceback_utils.py", line 122, in error_handler
    raise e.with_traceback(filtered_tb) from None
  File "/opt/venv/lib/python3.11/site-packages/tensorflow/python/eager/execute.py", line 53, in quick_execute
    tensors = pywrap_tfe.TFE_Py_Execute(ctx._handle, device_name, op_name,
  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
tensorflow.python.framework.errors_impl.{message[0]}: Graph execution error:

Detected at node {node} defined at (most recent call last):
<stack traces unavailable>
{message[1]}
\t [[{{{{node {node}}}}}]]
\t [[IteratorGetNext]] [Op:__inference_multi_step_on_iterator_222]
"""


@pytest.mark.parametrize("node, message, reason", [
    ("DecodeJpeg", ("InvalidArgumentError", "jpeg::Uncompress failed. Invalid JPEG data or size."),
     "InvalidArgumentError: jpeg::Uncompress failed. Invalid JPEG data or size."),
    ("ReadFile", ("FailedPreconditionError", "/data/train/cats/cat.3.jpg; Is a directory"),
     "FailedPreconditionError: /data/train/cats/cat.3.jpg; Is a directory"),
    ("ReadFile", ("NotFoundError", "/data/train/cats/cat.3.jpg; No such file or directory"),  # deleted mid-run
     "NotFoundError: /data/train/cats/cat.3.jpg; No such file or directory"),
], ids=["corrupt-jpeg", "a-folder", "deleted-mid-run"])
def test_a_failed_cells_reason_is_the_cause_not_tensorflows_trailer(node, message, reason):
    decided = outcome(output=tensorflow_failure(node, message), exit_code=1)
    assert (decided.status, decided.reason) == ("failed", f"the workload exited with code 1: {reason}")


def test_a_reason_quotes_at_most_a_few_hundred_characters():
    decided = outcome(output="x" * 100_000 + "\n", exit_code=1)
    assert len(decided.reason) < 400
