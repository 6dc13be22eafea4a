"""Keras' own models (examples/models.yaml) in real CPU images: the networks Keras publishes, on every backend.

ResNet-50, MobileNetV2 and EfficientNetB0 from keras.applications at 32x32, two epochs of 32 synthetic
images: what is checked is that each backend builds the published network and trains it on images made
in memory, not how fast. All nine cells take about 10 minutes on 2 cores, mostly XLA and TensorFlow
compiling the big graphs, so CI runs MobileNetV2 (depthwise convolutions, the synthetic loader of each
backend) on all three backends and the other two on torch, which compiles nothing: about 3 minutes.
"""

import json

import pytest

from conftest import REPO, runner
from workload.models import PUBLISHED_PARAMETERS

pytestmark = pytest.mark.docker

ENVIRONMENTS = {"tensorflow": "cpu-tf2.21", "torch": "cpu-torch2.11", "jax": "cpu-jax0.10"}
SELECTIONS = ("cpu-*-mobilenet-v2", "cpu-torch2.11-[re]*")  # the second: resnet50 and efficientnet-b0, MobileNetV2 not again
CELLS = [(backend, "mobilenet-v2") for backend in ENVIRONMENTS] + [("torch", "resnet50"), ("torch", "efficientnet-b0")]


@pytest.fixture(scope="module")
def measured(tmp_path_factory, docker_client):
    records = {}
    for selection in SELECTIONS:
        results = tmp_path_factory.mktemp("models") / "results"
        run = runner("run", "-f", REPO / "examples" / "models.yaml", "-k", selection, "--results", results)
        assert run.returncode == 0, run.stderr[-3000:]
        (run_folder,) = results.iterdir()
        records.update((record["cell_id"], record) for record in map(json.loads, (run_folder / "results.jsonl").read_text().splitlines()))
    return records


@pytest.mark.parametrize("backend, model", CELLS)
def test_every_backend_builds_the_network_keras_publishes_and_trains_it(measured, backend, model):
    record = measured[f"{ENVIRONMENTS[backend]}-{model}"]
    assert record["status"] == "ok", record["reason"]
    measurement = record["measurement"]
    assert measurement["model"]["parameters"] == PUBLISHED_PARAMETERS[model]
    assert measurement["data"]["kind"] == "synthetic" and measurement["data"]["synthetic"]["images"] == "made in memory by the workload"
    settings = measurement["settings"]
    assert (settings["image_size"], settings["classes"], settings["data_format"], settings["batch_size"]) == (32, 1000, "channels_last", 16)
    assert settings["pipeline"]["input"] == "cached"
    assert [epoch["steps"] for epoch in measurement["epochs"]] == [2, 2]
    assert measurement["model"]["counted_flops"]["training_flops_per_image"] > 0


def test_every_backend_is_credited_with_the_same_flops(measured):
    counted = {measured[f"{environment}-mobilenet-v2"]["measurement"]["model"]["forward_flops_per_image"] for environment in ENVIRONMENTS.values()}
    assert len(counted) == 1 and counted.pop() > 0
