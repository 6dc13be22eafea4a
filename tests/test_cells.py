"""Matrix -> cells: a pure expansion with axes as data, stable readable ids, and one environment per build."""

import dataclasses
import re
from pathlib import Path

import pytest

from runner.cells import cell_id, environments_of, expand, make_cell, matches
from runner.environments import EnvironmentSpec, environment_for, environment_name
from runner.compatibility import load_table
from runner.config import load_matrix

REPO = Path(__file__).resolve().parent.parent
TABLE = load_table()


def matrix_file(tmp_path, cpu='{tensorflow: ["2.21"]}', extra=""):
    path = tmp_path / "matrix.yaml"
    path.write_text(f"workloads: {{dogs-vs-cats: {{}}}}\ncpu: {cpu}\nbuild: {{ca_certificates: []}}\n{extra}")
    return load_matrix(path)


def test_the_default_matrix_expands_to_the_cpu_cells_then_the_gpu_cells():
    cells = expand(load_matrix(REPO / "matrix.yaml"), TABLE)

    images = ["cpu-tf2.21"] + [f"gpu-cuda{cuda}-cudnn{cudnn}-tf2.21" for cuda in ("12.6", "12.8") for cudnn in ("9.3", "9.5", "9.8")]
    images.append("gpu-cuda12.5-cudnn9.2-tf2.21")
    assert [cell.id for cell in cells] == [f"{image}-{workload}" for image in images for workload in ("dogs-vs-cats", "dogs-vs-cats-cached", "mnist")]
    cell = cells[0]
    assert cell.axes_dict == {"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21"}
    assert (cell.kind, cell.axis("cuda"), cell.axis("cudnn"), cell.excluded) == ("cpu", "", "", "")
    assert cell.workload.name == "dogs-vs-cats"
    assert cell.environment == EnvironmentSpec(
        kind="cpu", name="cpu-tf2.21", base="python:3.11-slim", requirements=("tensorflow==2.21.*", "pillow>=10"),
        libraries=(), variables=(("KERAS_BACKEND", "tensorflow"), ("TF_CPP_MIN_LOG_LEVEL", "1")),
    )


def test_two_tensorflow_versions_give_two_cells_on_distinct_images(tmp_path):
    cells = expand(matrix_file(tmp_path, '{tensorflow: ["2.20", "2.21"]}'), TABLE)

    assert [cell.id for cell in cells] == ["cpu-tf2.20-dogs-vs-cats", "cpu-tf2.21-dogs-vs-cats"]
    assert [cell.axis("framework_version") for cell in cells] == ["2.20", "2.21"]
    assert cells[0].environment != cells[1].environment
    assert [cell.environment.name for cell in cells] == ["cpu-tf2.20", "cpu-tf2.21"]
    assert [cell.environment.requirements for cell in cells] == [("tensorflow==2.20.*", "pillow>=10"), ("tensorflow==2.21.*", "pillow>=10")]
    assert environments_of(cells) == [cells[0].environment, cells[1].environment]


def test_workloads_on_one_image_share_one_image_spec(tmp_path):
    matrix = matrix_file(tmp_path, '{tensorflow: ["2.20", "2.21"]}')
    other = dataclasses.replace(matrix.workloads[0], name="other")
    matrix = dataclasses.replace(matrix, workloads=(matrix.workloads[0], other))

    cells = expand(matrix, TABLE)

    assert [cell.id for cell in cells] == [
        "cpu-tf2.20-dogs-vs-cats", "cpu-tf2.20-other", "cpu-tf2.21-dogs-vs-cats", "cpu-tf2.21-other",
    ]
    assert cells[0].environment is cells[1].environment
    assert cells[2].environment is cells[3].environment
    assert environments_of(cells) == [cells[0].environment, cells[2].environment]


def test_environments_of_deduplicates_equal_specs_in_first_use_order(tmp_path):
    workload = matrix_file(tmp_path).workloads[0]
    a = EnvironmentSpec("cpu", "a", "x", ("tensorflow==2.21.*",))
    b = EnvironmentSpec("cpu", "b", "x", ("tensorflow==2.21.*",))
    b_again = EnvironmentSpec("cpu", "b", "x", ("tensorflow==2.21.*",))  # equal, not the same object
    axes = {"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21"}
    cells = [make_cell(axes, workload, environment) for environment in [b, a, b_again, a]]

    assert environments_of(cells) == [b, a]
    assert environments_of([]) == []


@pytest.mark.parametrize("axes, expected", [
    ({"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21"}, "cpu-tf2.21-dogs-vs-cats"),
    ({"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21", "keras": "3.12"}, "cpu-tf2.21-keras3.12-dogs-vs-cats"),
    ({"kind": "gpu", "framework": "tensorflow", "framework_version": "2.21", "cuda": "12.6", "cudnn": "9.3"},
     "gpu-cuda12.6-cudnn9.3-tf2.21-dogs-vs-cats"),
    ({"cudnn": "9.3", "framework_version": "2.21", "cuda": "12.6", "framework": "tensorflow", "kind": "gpu"},
     "gpu-cuda12.6-cudnn9.3-tf2.21-dogs-vs-cats"),
])
def test_one_function_makes_ids_from_axes_as_they_always_read(axes, expected):
    assert cell_id(axes, "dogs-vs-cats") == expected
    assert environment_name(axes) == expected.removesuffix("-dogs-vs-cats")


def test_the_recipe_is_data_a_keras_pin_and_a_cudnn_pin_included():
    axes = {"kind": "gpu", "framework": "tensorflow", "framework_version": "2.21", "cuda": "12.6", "cudnn": "9.3", "keras": "3.12"}
    spec = environment_for(axes, "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04", "3.12", "nvidia-cudnn-cu12==9.3.0.75")
    assert spec.name == "gpu-cuda12.6-cudnn9.3-tf2.21-keras3.12"
    assert spec.requirements == ("tensorflow==2.21.*", "keras==3.12.*", "pillow>=10", "nvidia-ml-py>=12")
    assert spec.libraries == ("nvidia-cudnn-cu12==9.3.0.75",)
    assert spec.describe()["variables"] == {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "1"}


def test_ids_are_stable_and_readable(tmp_path):
    matrix = matrix_file(
        tmp_path,
        '{tensorflow: ["2.20", "2.21"], keras: "3.12"}',
        'gpu: {cuda: ["12.5"], cudnn: ["9.3", "8.9"], tensorflow: ["2.21"]}\n',
    )

    first = [cell.id for cell in expand(matrix, TABLE)]
    second = [cell.id for cell in expand(matrix, TABLE)]

    assert first == second
    assert first == [
        "cpu-tf2.20-keras3.12-dogs-vs-cats",
        "cpu-tf2.21-keras3.12-dogs-vs-cats",
        "gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats",
        "gpu-cuda12.5-cudnn8.9-tf2.21-dogs-vs-cats",
    ]
    assert all(re.fullmatch(r"[a-z0-9.-]+", cell_id) for cell_id in first)
    assert len(set(first)) == len(first)


def test_expansion_does_not_change_the_matrix(tmp_path):
    matrix = matrix_file(tmp_path, '{tensorflow: ["2.21"]}', 'gpu: {cuda: ["12.5"], cudnn: ["9.3"], tensorflow: ["2.21"], include: [{keras: "3.11"}]}\n')
    before = dataclasses.asdict(matrix)

    expand(matrix, TABLE)
    expand(matrix, TABLE)

    assert dataclasses.asdict(matrix) == before


def test_gpu_cells_carry_their_axes_and_the_tables_verdict(tmp_path):
    matrix = matrix_file(tmp_path, extra='gpu: {cuda: ["12.5"], cudnn: ["9.3", "8.9"], tensorflow: ["2.21"]}\n')

    gpu = [cell for cell in expand(matrix, TABLE) if cell.kind == "gpu"]

    runs, excluded = gpu
    assert runs.axes_dict == {"kind": "gpu", "framework": "tensorflow", "framework_version": "2.21", "cuda": "12.5", "cudnn": "9.3"}
    assert runs.excluded == ""
    assert runs.environment.kind == "gpu"
    assert runs.environment.base == "nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04"
    assert runs.environment.requirements == ("tensorflow==2.21.*", "pillow>=10", "nvidia-ml-py>=12")  # NVML for telemetry
    assert runs.environment.libraries == ("nvidia-cudnn-cu12==9.3.0.75",)
    assert excluded.axis("cudnn") == "8.9"
    assert "another major" in excluded.excluded
    assert excluded.environment.libraries == ()


@pytest.fixture
def cells(tmp_path):
    matrix = matrix_file(tmp_path, '{tensorflow: ["2.20", "2.21"]}', 'gpu: {cuda: ["12.5"], cudnn: ["9.3"], tensorflow: ["2.21"]}\n')
    return expand(matrix, TABLE)


@pytest.mark.parametrize(
    "pattern, selected",
    [
        (None, ["cpu-tf2.20-dogs-vs-cats", "cpu-tf2.21-dogs-vs-cats", "gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats"]),
        ("tf2.21", ["cpu-tf2.21-dogs-vs-cats", "gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats"]),
        ("cpu", ["cpu-tf2.20-dogs-vs-cats", "cpu-tf2.21-dogs-vs-cats"]),
        ("cudnn9.3", ["gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats"]),
        ("cpu-*-dogs*", ["cpu-tf2.20-dogs-vs-cats", "cpu-tf2.21-dogs-vs-cats"]),
        ("tf2.2?-dogs", ["cpu-tf2.20-dogs-vs-cats", "cpu-tf2.21-dogs-vs-cats", "gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats"]),
        ("cpu-tf2.2[0]", ["cpu-tf2.20-dogs-vs-cats"]),
        ("cpu-tf2.21-dogs-vs-cats", ["cpu-tf2.21-dogs-vs-cats"]),
        ("mnist", []),
        ("gpu-*-tf2.20", []),
        ("CPU", []),
    ],
)
def test_k_selects_by_substring_or_glob(cells, pattern, selected):
    assert [cell.id for cell in cells if matches(cell, pattern)] == selected


@pytest.mark.parametrize("axes, requirements, libraries", [
    ({"kind": "cpu", "framework": "torch", "framework_version": "2.11"}, ("torch==2.11.*", "keras==3.15.*", "pillow>=10"), ()),
    ({"kind": "cpu", "framework": "jax", "framework_version": "0.10"}, ("jax==0.10.*", "keras==3.15.*", "pillow>=10"), ()),
    ({"kind": "gpu", "framework": "torch", "framework_version": "2.11", "cuda": "13.0", "cudnn": "9.19"},
     ("torch==2.11.*", "keras==3.15.*", "pillow>=10", "nvidia-ml-py>=12"), ("nvidia-cudnn-cu13==9.19.1.2",)),
    ({"kind": "gpu", "framework": "jax", "framework_version": "0.11", "cuda": "13.0", "cudnn": "9.13"},
     ("jax[cuda13]==0.11.*", "keras==3.15.*", "pillow>=10", "nvidia-ml-py>=12"), ("nvidia-cudnn-cu13==9.13.1.26",)),
])
def test_torch_and_jax_recipes_install_keras_3_beside_them_and_name_the_backend(tmp_path, axes, requirements, libraries):
    kind = axes["kind"]
    if kind == "cpu":
        text = f'cpu: {{backend: [{axes["framework"]}]}}\n'
    else:
        text = f'gpu: {{backend: [{axes["framework"]}], cuda: ["{axes["cuda"]}"], cudnn: ["{axes["cudnn"]}"]}}\n'
    path = tmp_path / "matrix.yaml"
    path.write_text("workloads: {dogs-vs-cats: {}}\n" + text + "build: {ca_certificates: []}\n")
    (cell,) = expand(load_matrix(path), TABLE)
    assert cell.axes_dict == axes and cell.excluded == ""
    assert cell.id == f"{environment_name(axes)}-dogs-vs-cats"
    assert (cell.environment.requirements, cell.environment.libraries) == (requirements, libraries)
    assert dict(cell.environment.variables) == {"KERAS_BACKEND": axes["framework"]}


def test_the_backend_axis_and_its_versions(tmp_path):
    matrix = matrix_file(tmp_path, '{backend: [tensorflow, torch, jax], torch: ["2.11"]}')
    assert [cell.id for cell in expand(matrix, TABLE)] == ["cpu-tf2.21-dogs-vs-cats", "cpu-torch2.11-dogs-vs-cats", "cpu-jax0.10-dogs-vs-cats"]
    # jax's newest, 0.11, needs Python 3.12: on python:3.11-slim the default is the newest that runs there.
    versions_only = matrix_file(tmp_path, '{torch: ["2.11"]}')  # listing a backend's versions selects it
    assert [cell.id for cell in expand(versions_only, TABLE)] == ["cpu-torch2.11-dogs-vs-cats"]


@pytest.mark.parametrize("settings, reason", [
    ("{loader: tfdata}", "workloads.dogs-vs-cats.loader: tf.data needs TensorFlow, which a torch environment does not have"),
    ("{cudnn: false}", None),  # on a CPU cell there is no cuDNN to switch off: recorded as not applicable, not refused
])
def test_workload_settings_a_backend_cannot_honour_exclude_the_cell(tmp_path, settings, reason):
    path = tmp_path / "matrix.yaml"
    path.write_text(f"workloads: {{dogs-vs-cats: {settings}}}\ncpu: {{torch: [\"2.11\"]}}\nbuild: {{ca_certificates: []}}\n")
    (cell,) = expand(load_matrix(path), TABLE)
    assert cell.excluded == (reason or "")


def test_cudnn_off_runs_on_torch_gpu_cells_only(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text('workloads: {dogs-vs-cats: {cudnn: false}}\n'
                    'gpu: {backend: [torch, jax], cuda: ["13.0"], cudnn: ["9.19"]}\nbuild: {ca_certificates: []}\n')
    torch, jax = expand(load_matrix(path), TABLE)
    assert torch.excluded == ""
    assert jax.excluded.startswith("jax has no switch to run convolutions on a GPU without cuDNN")
