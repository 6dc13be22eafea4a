"""The walking skeleton for real: registry-free base, CPU image build, one tiny cell in a container."""

import json
import shutil

import pytest

from conftest import runner
from runner import locks

pytestmark = pytest.mark.docker

TINY_MATRIX = """
workloads:
  dogs-vs-cats:
    epochs: 2
    warmup_epochs: 1
    train_images: 64
    validation_images: 32
    data: data
repeats: 1
cpu:
  tensorflow: ["2.21"]
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, docker_client):
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "matrix.yaml").write_text(TINY_MATRIX)
    return folder


@pytest.fixture(scope="module")
def first_build(tiny):
    return runner("build", "-f", tiny / "matrix.yaml", "--offline-base")


def test_build_starts_from_the_registry_free_base(first_build):
    assert first_build.returncode == 0, first_build.stderr[-3000:]
    assert "registry-free base cudnn-matrix/base:bookworm-python3-" in first_build.stderr
    assert "Successfully tagged cudnn-matrix/cpu-tf2.21:" in first_build.stderr or "up to date" in first_build.stderr


def test_unchanged_matrix_rebuilds_nothing(first_build, tiny):
    again = runner("build", "-f", tiny / "matrix.yaml", "--offline-base")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "cpu-tf2.21: up to date (cudnn-matrix/cpu-tf2.21:" in again.stderr
    assert "Step 1/" not in again.stderr


def test_unpullable_base_falls_back_and_says_so(first_build, tiny):
    matrix = tiny / "unpullable.yaml"
    matrix.write_text(TINY_MATRIX.replace('cpu:\n', 'cpu:\n  base_image: cudnn-matrix-test/not-in-any-registry:1\n'))
    built = runner("build", "-f", matrix)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "cannot pull cudnn-matrix-test/not-in-any-registry:1" in built.stderr
    assert "using an equivalent base made from Debian packages instead" in built.stderr


def test_tiny_cell_runs_end_to_end(first_build, tiny):
    results = tiny / "results"
    run = runner("run", "-f", tiny / "matrix.yaml", "--offline-base", "--results", results)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "cpu-tf2.21-dogs-vs-cats" in run.stdout

    (run_folder,) = results.iterdir()
    (line,) = (run_folder / "results.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["status"] == "ok" and record["cell_id"] == "cpu-tf2.21-dogs-vs-cats"
    assert record["executor"] == "docker"
    assert record["axes"] == {"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21"}
    environment = record["environment"]
    assert environment["image"].startswith("cudnn-matrix/cpu-tf2.21:") and environment["image_id"].startswith("sha256:")
    assert environment["base_image"].startswith("cudnn-matrix/base:bookworm-python3-")
    assert (environment["base_image_requested"], environment["base_image_how"]) == ("python:3.11-slim", "debootstrap")
    measurement = record["measurement"]
    assert measurement["cell_id"] == "cpu-tf2.21-dogs-vs-cats"
    assert measurement["model"]["parameters"] == 1_212_513  # the seed's network, layer for layer
    assert measurement["versions"]["tensorflow"].startswith("2.21.")
    assert measurement["versions"]["keras"].startswith("3.")
    assert measurement["data"]["kind"] == "synthetic"
    assert measurement["warmup_epochs"] == 1
    assert len(measurement["epochs"]) == 2
    for epoch in measurement["epochs"]:
        assert 0 < epoch["train_seconds"] <= epoch["seconds"]
        assert epoch["images_per_second"] == pytest.approx(64 / epoch["train_seconds"])
    assert measurement["host"]["cpu_model"]
    assert measurement["settings"]["batch_size"] == 32

    report = runner("report", run_folder)
    assert report.returncode == 0
    assert "dogs-vs-cats (speed-ups against cpu-tf2.21-dogs-vs-cats):\n" in report.stdout and "| cpu-tf2.21 | ok " in report.stdout
    assert "Synthetic data" in report.stdout


def test_dry_run_says_which_images_exist_and_that_gpu_cells_will_be_skipped_before_building(first_build, tiny):
    matrix = tiny / "dry.yaml"
    matrix.write_text(TINY_MATRIX + 'gpu: {cuda: ["12.5"], cudnn: ["9.3"], tensorflow: ["2.21"]}\n')
    done = runner("run", "-f", matrix, "--results", tiny / "dry-results", "--dry-run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cpu-tf2.21: image cudnn-matrix/cpu-tf2.21 built before: rebuilt only if its recipe or base changed" in done.stderr
    if shutil.which("nvidia-smi") is None:  # as on this project's machines: said before any GPU image is built
        assert "1 cell(s) not run: skipped: no GPU on this host: nvidia-smi, which comes with the NVIDIA driver, is not installed" in done.stderr
    assert not (tiny / "dry-results").exists() and "Step 1/" not in done.stderr


def test_doctor_checks_the_engine_its_disk_and_the_images_for_real(first_build, tiny):
    done = runner("doctor", "-f", tiny / "matrix.yaml")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "ok       executor docker: docker_engine " in done.stdout
    assert "ok       environment cpu-tf2.21: image cudnn-matrix/cpu-tf2.21 built before" in done.stdout
    assert "disk for images: " in done.stdout and "GiB free at " in done.stdout


def test_an_image_round_trips_through_an_archive_and_a_changed_one_is_refused(first_build, tiny, docker_client, tmp_path):
    images = tmp_path / "images"
    saved = runner("build", "-f", tiny / "matrix.yaml", "--offline-base", "--save", images)
    assert saved.returncode == 0, saved.stderr[-3000:]
    (entry,) = json.loads((images / "images.json").read_text())
    assert (images / entry["archive"]).stat().st_size > 100 * 2**20  # the whole image, TensorFlow and all
    assert "tensorflow" in {pin.name for pin in locks.read(images, "cpu-tf2.21", entry["lock"]).requirements}
    docker_client.images.remove(entry["tag"], force=True)  # as on a machine that never built it

    loaded = runner("build", "-f", tiny / "matrix.yaml", "--offline-base", "--load", images)

    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert f"cpu-tf2.21: loaded {entry['tag']} from" in loaded.stderr and f"cpu-tf2.21: up to date ({entry['tag']})" in loaded.stderr
    assert "Step 1/" not in loaded.stderr  # nothing built
    assert docker_client.images.get(entry["tag"]).id == entry["image_id"]
    (images / "images.json").write_text(json.dumps([{**entry, "image_id": "sha256:" + "0" * 64}]))
    refused = runner("build", "-f", tiny / "matrix.yaml", "--offline-base", "--load", images)
    assert refused.returncode == 2 and f"not the sha256:{'0' * 64} saved as {entry['tag']}" in refused.stderr.splitlines()[-1]
