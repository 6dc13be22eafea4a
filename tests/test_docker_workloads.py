"""Both seed networks, layer for layer, in a Keras 2 image (TF 2.15) and a Keras 3 image (TF 2.21)."""

import json

import pytest

from conftest import runner

pytestmark = pytest.mark.docker

MATRIX = """
workloads:
  dogs-vs-cats: {epochs: 2, train_images: 64, validation_images: 32}
  dogs-vs-cats-cached: {model: dogs-vs-cats, epochs: 3, train_images: 64, validation_images: 32, input: cached}
  mnist: {epochs: 2, train_images: 512, validation_images: 128}
repeats: 1
cpu:
  tensorflow: ["2.15", "2.21"]
build:
  offline_base: true
"""
PARAMETERS = {"dogs-vs-cats": 1_212_513, "mnist": 600_810}  # the seed-era summaries' "Total params"
# By hand, 2 x multiply-adds. Dogs vs Cats: conv 148*148*3*3*3*32 + 72*72*3*3*32*32 + 34*34*3*3*32*64,
# dense 18496*64 + 64*1. MNIST: conv 26*26*3*3*1*32 + 24*24*3*3*32*32, dense 4608*128 + 128*10.
FORWARD_FLOPS = {"dogs-vs-cats": 178_384_000, "mnist": 12_188_416}
# Training: 3x forward, less the first convolution's input gradient (2*148*148*3*3*3*32 and 2*26*26*3*3*1*32).
TRAINING_FLOPS = {"dogs-vs-cats": 3 * 178_384_000 - 37_850_112, "mnist": 3 * 12_188_416 - 389_376}


@pytest.fixture(scope="module")
def measured(tmp_path_factory, docker_client):
    folder = tmp_path_factory.mktemp("workloads")
    (folder / "matrix.yaml").write_text(MATRIX)
    run = runner("run", "-f", folder / "matrix.yaml", "--results", folder / "results")
    assert run.returncode == 0, run.stderr[-3000:]
    (run_folder,) = (folder / "results").iterdir()
    return {record["cell_id"]: record for record in map(json.loads, (run_folder / "results.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("tensorflow, keras_major", [("2.15", "2."), ("2.21", "3.")])
@pytest.mark.parametrize("model", ["dogs-vs-cats", "mnist"])
def test_the_same_network_in_keras_2_and_keras_3(measured, tensorflow, keras_major, model):
    record = measured[f"cpu-tf{tensorflow}-{model}"]
    assert record["status"] == "ok", record["reason"]
    measurement = record["measurement"]
    assert measurement["versions"]["tensorflow"].startswith(tensorflow + ".")
    assert measurement["versions"]["keras"].startswith(keras_major)
    assert measurement["model"]["parameters"] == PARAMETERS[model]
    assert measurement["model"]["forward_flops_per_image"] == FORWARD_FLOPS[model]
    assert measurement["data"]["kind"] == "synthetic"
    for epoch in measurement["epochs"]:
        assert epoch["gflops_per_second"] == pytest.approx(epoch["images_per_second"] * TRAINING_FLOPS[model] / 1e9)
        assert epoch["model_gflops_per_second"] == pytest.approx(measurement["settings"]["batch_size"] * TRAINING_FLOPS[model]
                                                                 / epoch["step_seconds_median"] / 1e9)
        assert 0 < epoch["step_seconds_median"] <= epoch["step_seconds_max"] <= epoch["train_seconds"]
        assert 0 < epoch["validation_seconds"] and epoch["train_seconds"] + epoch["validation_seconds"] <= epoch["seconds"]
    assert measurement["model"]["training_flops_per_image"] == TRAINING_FLOPS[model]
    assert measurement["model"]["compute_step_seconds"] > 0
    assert all(0 <= epoch["input_wait_share"] < 1 for epoch in measurement["epochs"])
    expected_steps = {"dogs-vs-cats": 2, "mnist": 4}[model]  # 64 / 32 and 512 / 128
    assert [epoch["steps"] for epoch in measurement["epochs"]] == [expected_steps] * 2


def test_pipeline_settings_are_recorded(measured):
    jpeg = measured["cpu-tf2.21-dogs-vs-cats"]["measurement"]["settings"]["pipeline"]
    cached = measured["cpu-tf2.21-dogs-vs-cats-cached"]["measurement"]["settings"]["pipeline"]
    assert jpeg == {"input": "jpeg", "autotune": False, "parallel_calls": 2, "prefetch_batches": 2,
                    "cached_batches": "not applicable (input: jpeg)"}
    assert cached["input"] == "cached" and cached["cached_batches"].startswith("in host memory (tf.data's cache; ")
    assert measured["cpu-tf2.15-dogs-vs-cats-cached"]["status"] == "ok"


@pytest.mark.parametrize("tensorflow", ["2.15", "2.21"])
@pytest.mark.parametrize("model", ["dogs-vs-cats", "mnist"])
def test_every_epoch_says_what_the_machine_did(measured, tensorflow, model):
    measurement = measured[f"cpu-tf{tensorflow}-{model}"]["measurement"]
    run = measurement["telemetry"]
    assert run["memory_limit_bytes"] == 16 * 2**30  # limits.memory's default, as the container's cgroup has it
    parameter_bytes = PARAMETERS[model] * 4  # the model's float32 weights: any process that trains it holds more
    for epoch in measurement["epochs"]:
        figures = epoch["telemetry"]
        assert figures["samples"] >= 2  # at least the epoch's first and last
        for key in ("rss_bytes_max", "process_peak_rss_bytes"):
            assert parameter_bytes < figures[key] < run["memory_limit_bytes"], key
        assert 0 < figures["cpu_seconds"] and 0 < figures["cpu_utilisation"] <= 1.1
        assert figures["gpus"] == "not available: no NVIDIA driver (libnvidia-ml.so.1 not found)"
    peaks = [epoch["telemetry"]["process_peak_rss_bytes"] for epoch in measurement["epochs"]]
    assert peaks == sorted(peaks)  # the kernel's high-water mark only rises
    assert run["gpus"] == "not available: no NVIDIA driver (libnvidia-ml.so.1 not found)"
    assert run["sampler"]["samples"] >= 2 * len(measurement["epochs"]) and run["sampler"]["cpu_share"] < 0.01  # under 1%
