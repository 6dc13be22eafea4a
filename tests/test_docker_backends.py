"""The three Keras backends in real CPU images: the same networks, the same FLOPs, and settings recorded honestly.

PyPI's torch for Linux is the CUDA build: its image pulls about 3 GB of NVIDIA wheels (CI's
longest build). The seed's augmentation in tf.data is checked here against augment.py, the numpy
version tests/test_augment.py checks against Keras 1.
"""

import json
import sys

import pytest

from conftest import REPO, runner

sys.path.insert(0, str(REPO / "workload"))  # as the workload runs: its modules side by side
import flop_count  # noqa: E402

pytestmark = pytest.mark.docker

SMALL = "epochs: 2, train_images: 64, validation_images: 32"
MATRIX = f"""
workloads:
  dogs-vs-cats: {{{SMALL}}}
  mnist: {{{SMALL}, kernel_time: true}}
  mnist-without-cudnn: {{model: mnist, {SMALL}, cudnn: false}}
  dogs-vs-cats-cached: {{model: dogs-vs-cats, {SMALL}, input: cached}}
repeats: 1
cpu:
  backend: [tensorflow, torch, jax]
build:
  offline_base: true
"""
PARAMETERS = {"dogs-vs-cats": 1_212_513, "mnist": 600_810}
FORWARD_FLOPS = {"dogs-vs-cats": 178_384_000, "mnist": 12_188_416}
ENVIRONMENTS = {"tensorflow": "cpu-tf2.21", "torch": "cpu-torch2.11", "jax": "cpu-jax0.10"}
# Each framework's own count of a training step against the exact layer count (docs/workloads.md): torch's counts what
# the layer count counts; XLA's adds element-wise work and the optimiser's update (within 3%); TensorFlow's profiler adds
# the gradients TensorFlow prunes when it runs the graph (the first convolution's input gradient), about 13%.
COUNTED_FLOPS = {"torch": (1.0, 1.0), "jax": (1.0, 1.03), "tensorflow": (1.1, 1.2)}


@pytest.fixture(scope="module")
def measured(tmp_path_factory, docker_client):
    folder = tmp_path_factory.mktemp("backends")
    (folder / "matrix.yaml").write_text(MATRIX)
    run = runner("run", "-f", folder / "matrix.yaml", "--results", folder / "results")
    assert run.returncode == 0, run.stderr[-3000:]
    (run_folder,) = (folder / "results").iterdir()
    return {record["cell_id"]: record for record in map(json.loads, (run_folder / "results.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
@pytest.mark.parametrize("model", ["dogs-vs-cats", "mnist"])
def test_every_backend_trains_the_same_network(measured, backend, model):
    record = measured[f"{ENVIRONMENTS[backend]}-{model}"]
    assert record["status"] == "ok", record["reason"]
    assert record["axes"]["framework"] == backend
    measurement = record["measurement"]
    assert measurement["versions"]["keras_backend"] == backend
    assert measurement["model"]["parameters"] == PARAMETERS[model]
    assert measurement["model"]["forward_flops_per_image"] == FORWARD_FLOPS[model]
    counted = measurement["model"]["counted_flops"]
    assert counted["method"] == flop_count.METHODS[backend]
    assert COUNTED_FLOPS[backend][0] <= counted["training_flops_per_image"] / measurement["model"]["training_flops_per_image"] <= COUNTED_FLOPS[backend][1]
    settings = measurement["settings"]
    assert settings["loader"] == ("tfdata" if backend == "tensorflow" else "python")
    assert (settings["precision"], settings["compute_dtype"], settings["tf32"]) == ("fp32", "float32", False)
    assert len(measurement["epochs"]) == 2
    limit = measurement["telemetry"]["memory_limit_bytes"]
    for epoch in measurement["epochs"]:  # the same sampler beside every backend's threads
        assert PARAMETERS[model] * 4 < epoch["telemetry"]["process_peak_rss_bytes"] < limit
        assert epoch["telemetry"]["gpus"].startswith("not available: ")


@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
def test_every_epoch_times_training_apart_from_validation(measured, backend):
    for model in ("dogs-vs-cats", "mnist"):
        for epoch in measured[f"{ENVIRONMENTS[backend]}-{model}"]["measurement"]["epochs"]:
            assert 0 < epoch["validation_seconds"] and epoch["train_seconds"] + epoch["validation_seconds"] <= epoch["seconds"]


@pytest.mark.parametrize("backend, placed_on", [
    ("tensorflow", "in host memory (tf.data's cache; "), ("torch", "on the device (torch tensors on cpu)"), ("jax", "on the device (jax arrays on "),
])
def test_cached_batches_are_placed_on_the_device_once_and_the_record_says_where(measured, backend, placed_on):
    record = measured[f"{ENVIRONMENTS[backend]}-dogs-vs-cats-cached"]
    assert record["status"] == "ok", record["reason"]
    assert record["measurement"]["settings"]["pipeline"]["cached_batches"].startswith(placed_on)
    # Batches committed to a device made jax compile its step again in the first timed epoch, timed as training.
    compiles = record["measurement"]["model"]["compiles_in_timed_epochs"]
    assert compiles == 0 if backend == "jax" else compiles == "not applicable (counted for jax)"
    jpeg = measured[f"{ENVIRONMENTS[backend]}-dogs-vs-cats"]["measurement"]["settings"]
    assert jpeg["pipeline"]["cached_batches"] == "not applicable (input: jpeg)"
    assert (jpeg["conv_autotune"], jpeg["conv_autotune_source"]) == ("not applicable (no GPU)",) * 2


def test_torch_records_the_convolution_it_called(measured):
    ops = measured["cpu-torch2.11-mnist"]["measurement"]["convolution_ops"]
    assert "aten::convolution" in ops and any(op in ops for op in ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward"))
    assert measured["cpu-jax0.10-mnist"]["measurement"]["convolution_ops"].startswith("not applicable")


@pytest.mark.parametrize("backend, profiler, convolutions", [
    ("tensorflow", "tf.profiler", {"_FusedConv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"}),
    ("torch", "torch.profiler", {"aten::convolution_backward"}),
    ("jax", "jax.profiler", {"(convolution forward)", "(convolution backward filter)", "(convolution backward data)"}),
])
def test_every_backend_records_where_a_step_went_by_kernel_class_when_asked(measured, backend, profiler, convolutions):
    kernels = measured[f"{ENVIRONMENTS[backend]}-mnist"]["measurement"]["kernel_time"]
    assert (kernels["profiler"], kernels["device"], kernels["steps"]) == (profiler, "cpu", 3)
    seconds = kernels["seconds_per_step"]
    assert seconds["convolution_forward"] > 0 and seconds["matmul"] > 0
    assert seconds["convolution_backward"] > 0 if backend == "torch" else seconds["convolution_backward_filter"] > 0
    named = " ".join(kernels["convolutions"])
    assert all(name in named for name in convolutions), named
    # kernel_time auto, the default, profiles GPU cells only
    said = measured[f"{ENVIRONMENTS[backend]}-dogs-vs-cats"]["measurement"]["kernel_time"]
    assert said == "not profiled: kernel_time auto profiles GPU cells only"


@pytest.mark.parametrize("backend, compiled, step", [
    ("jax", True, "XLA (jax.jit)"), ("tensorflow", False, "graph (tf.function)"), ("torch", False, "eager"),
])
def test_jit_compile_auto_trains_each_backend_as_keras_users_run_it(measured, backend, compiled, step):
    measurement = measured[f"{ENVIRONMENTS[backend]}-dogs-vs-cats"]["measurement"]
    settings = measurement["settings"]
    assert (settings["jit_compile_requested"], settings["jit_compile"], settings["train_step"]) == ("auto", compiled, step)
    # The proof of what ran: a compiled step runs its Python only while traced, an eager one every batch (2 epochs of 2).
    steps = sum(epoch["steps"] for epoch in measurement["epochs"])
    calls = measurement["model"]["train_step_python_calls"]
    assert steps == 4
    assert calls == steps if backend == "torch" else 1 <= calls < steps


@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
def test_cudnn_off_on_a_cpu_cell_is_recorded_as_not_applicable(measured, backend):
    record = measured[f"{ENVIRONMENTS[backend]}-mnist-without-cudnn"]
    assert record["status"] == "ok", record["reason"]
    assert record["measurement"]["settings"]["cudnn"] == "not applicable (no GPU)"


AUGMENTATION_CHECK = """
import numpy as np, tensorflow as tf
import augment, tfdata_input
rng = np.random.default_rng(3)
images = np.repeat(np.repeat(rng.random((4, 15, 15, 3)), 10, axis=1), 10, axis=2).astype("float32")
shear, zoom_x, zoom_y = np.array([0.2, -0.2, 0.1, 0.0]), np.array([0.8, 1.2, 1.0, 1.1]), np.array([1.2, 0.8, 0.9, 1.0])
ours = augment.transform(images, augment.matrices(shear, zoom_x, zoom_y, 150, 150))
theirs = tfdata_input.seed_transform(tf, tf.constant(images), *(tf.constant(v, tf.float32) for v in (shear, zoom_x, zoom_y))).numpy()
print(float(np.mean(ours == theirs)))
"""


def test_tf_data_augments_exactly_as_the_numpy_reference(measured, docker_client):
    image = docker_client.images.list("cudnn-matrix/cpu-tf2.21")[0]
    output = docker_client.containers.run(image.id, entrypoint=["python", "-c", AUGMENTATION_CHECK], working_dir="/opt/workload",
                                          environment={"TF_CPP_MIN_LOG_LEVEL": "2"}, remove=True)
    assert float(output.decode().split()[-1]) > 0.999
