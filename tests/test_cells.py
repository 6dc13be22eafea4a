"""Matrix -> cells: a pure expansion with stable, readable ids and one image per build."""

import dataclasses
import re
from pathlib import Path

import pytest

from runner.cells import Cell, ImageSpec, expand, images_of, matches
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
    assert [cell.id for cell in cells] == [f"{image}-{workload}" for image in images for workload in ("dogs-vs-cats", "mnist")]
    cell = cells[0]
    assert (cell.kind, cell.tensorflow, cell.cuda, cell.cudnn, cell.excluded) == ("cpu", "2.21", "", "", "")
    assert cell.workload.name == "dogs-vs-cats"
    assert cell.image.name == "cpu-tf2.21"
    assert cell.image.repository == "cudnn-matrix/cpu-tf2.21"
    assert cell.image.dockerfile == "Dockerfile.cpu"
    assert dict(cell.image.build_args) == {"BASE_IMAGE": "python:3.11-slim", "TENSORFLOW_VERSION": "2.21", "KERAS_VERSION": ""}


def test_two_tensorflow_versions_give_two_cells_on_distinct_images(tmp_path):
    cells = expand(matrix_file(tmp_path, '{tensorflow: ["2.20", "2.21"]}'), TABLE)

    assert [cell.id for cell in cells] == ["cpu-tf2.20-dogs-vs-cats", "cpu-tf2.21-dogs-vs-cats"]
    assert [cell.tensorflow for cell in cells] == ["2.20", "2.21"]
    assert cells[0].image != cells[1].image
    assert [cell.image.repository for cell in cells] == ["cudnn-matrix/cpu-tf2.20", "cudnn-matrix/cpu-tf2.21"]
    assert [dict(cell.image.build_args)["TENSORFLOW_VERSION"] for cell in cells] == ["2.20", "2.21"]
    assert images_of(cells) == [cells[0].image, cells[1].image]


def test_workloads_on_one_image_share_one_image_spec(tmp_path):
    matrix = matrix_file(tmp_path, '{tensorflow: ["2.20", "2.21"]}')
    other = dataclasses.replace(matrix.workloads[0], name="other")
    matrix = dataclasses.replace(matrix, workloads=(matrix.workloads[0], other))

    cells = expand(matrix, TABLE)

    assert [cell.id for cell in cells] == [
        "cpu-tf2.20-dogs-vs-cats", "cpu-tf2.20-other", "cpu-tf2.21-dogs-vs-cats", "cpu-tf2.21-other",
    ]
    assert cells[0].image is cells[1].image
    assert cells[2].image is cells[3].image
    assert images_of(cells) == [cells[0].image, cells[2].image]


def test_images_of_deduplicates_equal_specs_in_first_use_order(tmp_path):
    workload = matrix_file(tmp_path).workloads[0]
    a = ImageSpec("cpu", "a", "Dockerfile.cpu", (("BASE_IMAGE", "x"),))
    b = ImageSpec("cpu", "b", "Dockerfile.cpu", (("BASE_IMAGE", "x"),))
    b_again = ImageSpec("cpu", "b", "Dockerfile.cpu", (("BASE_IMAGE", "x"),))  # equal, not the same object
    cells = [Cell(f"c{i}", "cpu", image, workload, "2.21") for i, image in enumerate([b, a, b_again, a])]

    assert images_of(cells) == [b, a]
    assert images_of([]) == []


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
    assert (runs.cuda, runs.cudnn, runs.tensorflow, runs.excluded) == ("12.5", "9.3", "2.21", "")
    assert runs.image.dockerfile == "Dockerfile.gpu"
    assert dict(runs.image.build_args) == {
        "BASE_IMAGE": "nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04",
        "TENSORFLOW_VERSION": "2.21",
        "KERAS_VERSION": "",
        "CUDNN_PIP": "nvidia-cudnn-cu12==9.3.0.75",
    }
    assert excluded.cudnn == "8.9"
    assert "another major" in excluded.excluded
    assert dict(excluded.image.build_args)["CUDNN_PIP"] == ""


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


def test_with_base_replaces_only_the_base_image():
    spec = ImageSpec("cpu", "cpu-tf2.21", "Dockerfile.cpu",
                     (("BASE_IMAGE", "python:3.11-slim"), ("KERAS_VERSION", ""), ("TENSORFLOW_VERSION", "2.21")))

    rebased = spec.with_base("cudnn-matrix/base:bookworm-python3-abc")

    assert rebased.build_args == (
        ("BASE_IMAGE", "cudnn-matrix/base:bookworm-python3-abc"), ("KERAS_VERSION", ""), ("TENSORFLOW_VERSION", "2.21"),
    )
    assert rebased.base_image == "cudnn-matrix/base:bookworm-python3-abc"
    assert (rebased.kind, rebased.name, rebased.dockerfile) == (spec.kind, spec.name, spec.dockerfile)
    assert rebased.repository == "cudnn-matrix/cpu-tf2.21"
    assert spec.base_image == "python:3.11-slim"  # the original is untouched
    assert rebased != spec
