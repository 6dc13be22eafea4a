"""The GPU recipe without a GPU or a registry: built for real on the registry-free stand-in base,
its pinned cuDNN is the one the loader finds, and its cells fail or skip with the right reason."""

import json
import shutil

import pytest

from conftest import runner
from runner.compatibility import load_table

pytestmark = pytest.mark.docker

# One TensorFlow and CUDA line, one cuDNN minor that the base tag does not carry, so the pip pin is used.
TENSORFLOW, CUDA, CUDNN = "2.21", "12.5", "9.3"

GPU_MATRIX = f"""
workloads:
  dogs-vs-cats: {{epochs: 2, train_images: 64, validation_images: 32}}
repeats: 1
cpu:
  tensorflow: ["2.21"]
gpu:
  cuda: ["{CUDA}"]
  cudnn: ["{CUDNN}", "8.9"]
  tensorflow: ["{TENSORFLOW}"]
build:
  offline_base: true
"""
GPU_CELL = f"gpu-cuda{CUDA}-cudnn{CUDNN}-tf{TENSORFLOW}-dogs-vs-cats"


@pytest.fixture(scope="module")
def gpu_matrix(tmp_path_factory, docker_client):
    folder = tmp_path_factory.mktemp("gpu")
    (folder / "matrix.yaml").write_text(GPU_MATRIX)
    built = runner("build", "-f", folder / "matrix.yaml", "-k", "gpu")
    assert built.returncode == 0, built.stderr[-3000:]
    return folder


def only_record(results, cell_id):
    (run_folder,) = results.iterdir()
    records = [json.loads(line) for line in (run_folder / "results.jsonl").read_text().splitlines()]
    return {record["cell_id"]: record for record in records}[cell_id], records


def test_the_chosen_cell_needs_a_pin():
    assert load_table().cudnn_pip["12"][CUDNN]
    assert not load_table().cuda[CUDA].cudnn.startswith(CUDNN + ".")


def test_the_image_loads_exactly_the_pinned_cudnn(gpu_matrix, docker_client):
    image = docker_client.images.list(f"cudnn-matrix/gpu-cuda{CUDA}-cudnn{CUDNN}-tf{TENSORFLOW}")[0]
    assert image.labels["io.cudnn-matrix.libraries"] == load_table().cudnn_pip["12"][CUDNN]
    probe = (
        "import ctypes; lib = ctypes.CDLL('libcudnn.so.9'); lib.cudnnGetVersion.restype = ctypes.c_size_t;"
        "print(lib.cudnnGetVersion());"
        "print([l.split()[-1] for l in open('/proc/self/maps') if l.split()[-1].endswith('/libcudnn.so.9')][0])"
    )
    output = docker_client.containers.run(image.id, entrypoint=["python", "-c", probe], remove=True).decode().split()
    major, minor = CUDNN.split(".")
    assert int(output[0]) // 100 == int(major) * 100 + int(minor)
    assert "/site-packages/nvidia/cudnn/lib/libcudnn.so.9" in output[1]


def test_list_shows_gpu_versions_and_excluded_reasons(gpu_matrix):
    listed = runner("list", "-f", gpu_matrix / "matrix.yaml", "--json")
    assert listed.returncode == 0
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    cell = rows[GPU_CELL]
    here = "selected" if shutil.which("nvidia-smi") else "skipped"  # list says, as run would, that this host has no GPU
    assert (cell["status"], cell["cuda"], cell["cudnn"], cell["tensorflow"]) == (here, CUDA, CUDNN, TENSORFLOW)
    assert cell["base_image"] == load_table().cuda[CUDA].base_image
    other_major = rows[f"gpu-cuda{CUDA}-cudnn8.9-tf{TENSORFLOW}-dogs-vs-cats"]
    assert other_major["status"] == "excluded"
    assert "skip the GPU silently" in other_major["reason"]
    strict = runner("list", "-f", gpu_matrix / "matrix.yaml", "--strict")
    assert strict.returncode == 2 and "excluded (--strict)" in strict.stderr


def test_without_a_gpu_attached_the_cell_fails_with_the_reason(gpu_matrix):
    results = gpu_matrix / "results-none"
    run = runner("run", "-f", gpu_matrix / "matrix.yaml", "-k", "gpu", "--gpus", "none", "--results", results)
    assert run.returncode == 1, run.stderr[-3000:]
    record, records = only_record(results, GPU_CELL)
    assert record["status"] == "failed"
    assert record["reason"] == "expected a GPU, TensorFlow registered none"
    assert record["measurement"]["gpu"]["registered"] == []
    assert record["measurement"]["epochs"] == []  # stopped before training: no CPU numbers
    assert [r["status"] for r in records if r["cell_id"] != GPU_CELL] == ["excluded"]


def test_on_an_engine_without_nvidia_runtime_gpu_cells_skip_and_cpu_runs(gpu_matrix, docker_client):
    results = gpu_matrix / "results-all"
    run = runner("run", "-f", gpu_matrix / "matrix.yaml", "--results", results)
    assert run.returncode == 0, run.stderr[-3000:]
    record, records = only_record(results, GPU_CELL)
    assert record["status"] == "skipped"
    assert 'could not select device driver "" with capabilities: [[gpu]]' in record["reason"]
    assert {r["cell_id"]: r["status"] for r in records}["cpu-tf2.21-dogs-vs-cats"] == "ok"
    assert docker_client.containers.list(all=True, filters={"label": "io.cudnn-matrix.probe"}) == []
