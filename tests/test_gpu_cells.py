"""GPU expansion: the axes' product, GitHub-Actions include/exclude, and the compatibility rules' reasons."""

import shutil
from pathlib import Path

import pytest

from runner.cells import expand, gpu_combinations
from runner.compatibility import CudaBase, Release, Table, cudnn_source, exclusion, load_table, without_cudnn
from runner.config import load_matrix
from runner.errors import UserError
from runner.executors.docker_images import context_files

REPO = Path(__file__).resolve().parent.parent

TABLE = Table(
    releases={
        "tensorflow": {
            "2.18": Release("tensorflow", "2.18", cuda="12.5", cudnn="9.3", python=("3.9", "3.12"), keras="3"),
            "2.14": Release("tensorflow", "2.14", cuda="11.8", cudnn="8.7", python=("3.9", "3.11"), keras="2"),
            "2.12": Release("tensorflow", "2.12", cuda="11.8", cudnn="8.6", python=("3.8", "3.9"), keras="2"),
        },
        "torch": {"2.11": Release("torch", "2.11", cuda="13.0", cudnn="9.19", python=("3.10", "3.14"), keras="3.15")},
        "jax": {"0.10": Release("jax", "0.10", cuda="13.0", cudnn="9.12", python=("3.11", "3.14"), keras="3.15")},
    },
    cuda={
        "12.5": CudaBase("12.5", "nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04", cudnn="9.3.0.75", python="3.10"),
        "11.8": CudaBase("11.8", "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", cudnn="8.9.6.50", python="3.10"),
        "13.0": CudaBase("13.0", "nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04", cudnn="9.13.0.50", python="3.12"),
    },
    cudnn_pip={"12": {"9.3": "nvidia-cudnn-cu12==9.3.0.75", "9.5": "nvidia-cudnn-cu12==9.5.1.17"},
               "13": {"9.13": "nvidia-cudnn-cu13==9.13.1.26", "9.19": "nvidia-cudnn-cu13==9.19.1.2"}},
)


def matrix_file(tmp_path, gpu):
    path = tmp_path / "matrix.yaml"
    path.write_text("workloads: {dogs-vs-cats: {}}\ngpu:\n" + "".join(f"  {line}\n" for line in gpu.strip().splitlines()))
    return load_matrix(path)


@pytest.mark.parametrize(
    "cuda, cudnn, tensorflow, reason",
    [
        ("12.5", "9.3", "2.18", None),
        ("12.5", "9.5", "2.18", None),
        ("12.5", "9.2", "2.18", 'cuDNN 9.2 is an older minor'),
        ("12.5", "9.1", "2.18", 'cuDNN 9.1 is an older minor and fails with "DNN library initialization failed"'),
        ("12.5", "8.9", "2.18", "another major) it would skip the GPU silently and train on the CPU"),
        ("11.8", "8.9", "2.18", "TensorFlow 2.18 was built with CUDA 12.5; CUDA 11.8 is another major"),
        ("12.5", "9.4", "2.18", "no way to install cuDNN 9.4 for CUDA 12.5"),
        ("11.8", "8.9", "2.14", None),  # the 11.8 base carries cuDNN 8.9: no pin needed
        ("11.8", "8.9", "2.12", "TensorFlow 2.12 supports Python 3.8-3.9; the CUDA 11.8 base image has Python 3.10"),
        ("12.5", "9.3", "2.99", "TensorFlow 2.99 is not in the compatibility table"),
        ("12.9", "9.3", "2.18", "CUDA 12.9 is not in the compatibility table"),
    ],
)
def test_exclusion_reasons(cuda, cudnn, tensorflow, reason):
    found = exclusion(TABLE, "tensorflow", tensorflow, cuda, cudnn)
    if reason is None:
        assert found is None
    else:
        assert reason in found


@pytest.mark.parametrize(
    "framework, version, cuda, cudnn, reason",
    [
        ("torch", "2.11", "13.0", "9.19", None),
        ("torch", "2.11", "13.0", "9.13", "torch 2.11 was built with cuDNN 9.19; cuDNN 9.13 is an older minor and is refused as incompatible"),
        ("torch", "2.11", "12.5", "9.19", "torch 2.11 was built with CUDA 13.0; CUDA 12.5 is another major"),
        ("jax", "0.10", "13.0", "9.13", None),
        ("jax", "0.10", "13.0", "8.9", "with cuDNN 8.9 (another major) it refuses to start"),
        ("torch", "2.99", "13.0", "9.19", "torch 2.99 is not in the compatibility table (known: 2.11)"),
    ],
)
def test_exclusion_reasons_for_torch_and_jax(framework, version, cuda, cudnn, reason):
    found = exclusion(TABLE, framework, version, cuda, cudnn)
    assert found == reason if reason is None else reason in found


@pytest.mark.parametrize("framework, version, cuda, cudnn, to_install", [
    ("torch", "2.11", "13.0", "9.23", "no way to install cuDNN 9.23 for CUDA 13.0"),  # the device's torch may carry a newer cuDNN
    ("jax", "0.10", "13.2", "9.19", "CUDA 13.2 is not in the compatibility table"),
    ("tensorflow", "2.12", "11.8", "8.9", "the CUDA 11.8 base image has Python 3.10"),
])
def test_what_only_a_build_needs_excludes_no_cell_of_an_executor_that_installs_nothing(framework, version, cuda, cudnn, to_install):
    assert to_install in exclusion(TABLE, framework, version, cuda, cudnn)
    assert exclusion(TABLE, framework, version, cuda, cudnn, installs=False) is None


def test_what_the_framework_itself_refuses_excludes_a_cell_of_any_executor():
    assert "is an older minor" in exclusion(TABLE, "torch", "2.11", "13.0", "9.13", installs=False)
    assert "is not in the compatibility table" in exclusion(TABLE, "torch", "2.99", "13.0", "9.19", installs=False)


def test_only_torch_can_switch_cudnn_off():
    assert without_cudnn("torch") is None
    assert without_cudnn("tensorflow").startswith("TensorFlow has no switch to run convolutions on a GPU without cuDNN")
    assert without_cudnn("jax").startswith("jax has no switch")


def test_cudnn_comes_from_the_base_when_it_carries_that_minor_else_from_a_pip_pin():
    assert cudnn_source(TABLE, "tensorflow", "12.5", "9.3") == ""
    assert cudnn_source(TABLE, "tensorflow", "12.5", "9.5") == "nvidia-cudnn-cu12==9.5.1.17"
    assert cudnn_source(TABLE, "tensorflow", "11.8", "8.7") is None  # no cu11 pins in this table
    # torch and jax bring their own cuDNN with pip: pinned to the cell's minor even when the base has it.
    assert cudnn_source(TABLE, "torch", "13.0", "9.13") == "nvidia-cudnn-cu13==9.13.1.26"


def test_product_then_exclude_then_include_like_github_actions(tmp_path):
    matrix = matrix_file(tmp_path, '''
cuda: ["12.5", "11.8"]
cudnn: ["9.3", "9.5"]
tensorflow: ["2.18"]
exclude:
  - {cuda: "11.8"}
include:
  - {cudnn: "9.5", keras: "3.6"}
  - {cuda: "11.8", cudnn: "8.9", tensorflow: "2.14"}
''')
    assert gpu_combinations(matrix.gpu, matrix.path, TABLE) == [
        {"cuda": "12.5", "cudnn": "9.3", "tensorflow": "2.18"},
        {"cuda": "12.5", "cudnn": "9.5", "tensorflow": "2.18", "keras": "3.6"},
        {"cuda": "11.8", "cudnn": "8.9", "tensorflow": "2.14"},
    ]


def test_an_include_that_extends_nothing_must_name_a_whole_cell(tmp_path):
    matrix = matrix_file(tmp_path, 'cuda: ["12.5"]\ncudnn: ["9.3"]\ntensorflow: ["2.18"]\ninclude:\n  - {cuda: "11.8", cudnn: "8.9"}')
    with pytest.raises(UserError, match=r"matrix.yaml: gpu.include\[0\]: expected cuda, cudnn and one backend's version"):
        gpu_combinations(matrix.gpu, matrix.path, TABLE)


def test_gpu_cells_carry_versions_base_image_and_cudnn_pin(tmp_path):
    matrix = matrix_file(tmp_path, 'cuda: ["12.5"]\ncudnn: ["9.1", "9.3", "9.5"]\ntensorflow: ["2.18"]')
    cells = expand(matrix, TABLE)
    assert [c.id for c in cells] == [
        "gpu-cuda12.5-cudnn9.1-tf2.18-dogs-vs-cats",
        "gpu-cuda12.5-cudnn9.3-tf2.18-dogs-vs-cats",
        "gpu-cuda12.5-cudnn9.5-tf2.18-dogs-vs-cats",
    ]
    older, from_base, pinned = cells
    assert "older minor" in older.excluded
    assert "cuDNN 9.1" in older.excluded
    assert from_base.excluded == "" and from_base.environment.libraries == ()
    assert pinned.excluded == "" and pinned.environment.libraries == ("nvidia-cudnn-cu12==9.5.1.17",)
    assert pinned.environment.base == "nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04"
    assert pinned.environment.kind == "gpu"
    assert pinned.axes_dict == {"kind": "gpu", "framework": "tensorflow", "framework_version": "2.18", "cuda": "12.5", "cudnn": "9.5"}


def test_gpu_devices_setting(tmp_path):
    assert matrix_file(tmp_path, 'cuda: ["12.5"]\ncudnn: ["9.3"]\ntensorflow: ["2.18"]').gpu.devices == "all"
    assert matrix_file(tmp_path, 'cuda: ["12.5"]\ncudnn: ["9.3"]\ntensorflow: ["2.18"]\ndevices: [0, 2]').gpu.devices == "0,2"
    assert matrix_file(tmp_path, 'cuda: ["12.5"]\ncudnn: ["9.3"]\ntensorflow: ["2.18"]\ndevices: none').gpu.devices == "none"
    with pytest.raises(UserError, match="gpu.devices: expected all, none, or GPU indices"):
        matrix_file(tmp_path, 'cuda: ["12.5"]\ncudnn: ["9.3"]\ntensorflow: ["2.18"]\ndevices: some')


def test_the_shipped_table_loads_and_every_cuda_base_carries_a_cudnn():
    table = load_table()
    assert table.tensorflow and table.cuda
    for base in table.cuda.values():
        assert base.base_image.startswith("nvidia/cuda:") and base.cudnn.count(".") >= 1


def test_the_table_covers_tensorflow_2_12_to_2_21_and_its_pins_name_their_minor():
    table = load_table()
    assert list(table.tensorflow) == [f"2.{minor}" for minor in range(12, 22)]
    for release in table.tensorflow.values():
        assert release.cuda in table.cuda, f"TensorFlow {release.version}'s own CUDA line has a base image"
    for cuda_major, pins in table.cudnn_pip.items():
        for minor, requirement in pins.items():
            assert requirement.startswith(f"nvidia-cudnn-cu{cuda_major}=={minor}.")


def test_every_default_gpu_cell_renders_a_complete_recipe():
    matrix = load_matrix(REPO / "matrix.yaml")
    table = load_table()
    gpu_cells = [cell for cell in expand(matrix, table) if cell.kind == "gpu"]
    runnable = [cell for cell in gpu_cells if not cell.excluded]
    assert len({cell.axis("cuda") for cell in runnable}) >= 2  # at least two CUDA 12 lines
    assert len({cell.axis("cudnn") for cell in runnable if cell.axis("framework_version") == "2.21"}) >= 3  # cuDNN minors side by side
    assert [cell.id for cell in gpu_cells if cell.excluded] == [f"gpu-cuda12.5-cudnn9.2-tf2.21-{w}" for w in ("dogs-vs-cats", "dogs-vs-cats-cached", "mnist")]
    for cell in runnable:
        cuda, cudnn, environment = cell.axis("cuda"), cell.axis("cudnn"), cell.environment
        assert environment.base == table.cuda[cuda].base_image
        assert environment.requirements == (f"tensorflow=={cell.axis('framework_version')}.*", "pillow>=10", "nvidia-ml-py>=12")
        base_carries_it = table.cuda[cuda].cudnn.startswith(cudnn + ".")
        assert environment.libraries == (() if base_carries_it else (table.cudnn_pip["12"][cudnn],))
        files = context_files(environment, matrix.build)
        assert files["Dockerfile"] == (REPO / "docker" / "Dockerfile.gpu").read_bytes()
        assert files["requirements.txt"] == "".join(f"{line}\n" for line in environment.requirements).encode()
        assert files["libraries.txt"] == "".join(f"{line}\n" for line in environment.libraries).encode()
        for name in ("ARG BASE_IMAGE", "requirements.txt", "libraries.txt"):
            assert name.encode() in files["Dockerfile"]


def test_list_with_the_local_executor_keeps_a_cell_whose_cudnn_no_build_could_pin(tmp_path, capsys):
    import json

    from runner import cli

    path = tmp_path / "matrix.yaml"
    path.write_text('workloads: {mnist: {}}\ngpu: {cuda: ["13.0"], cudnn: ["9.23"], torch: ["2.11"]}\n')
    status = {}
    for executor in ("docker", "local"):
        assert cli.main(["list", "-f", str(path), "--executor", executor, "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        status[executor] = row["status"], row["reason"]
    assert status["docker"] == ("excluded", "no way to install cuDNN 9.23 for CUDA 13.0: not in the base image (9.13.0.50) "
                                            "nor in the table's pip pins")
    assert status["local"][0] == ("selected" if shutil.which("nvidia-smi") else "skipped")  # not excluded: skipped only for want of a GPU
