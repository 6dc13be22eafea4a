"""A CPU run reproduced from its locks on this machine, in real images: the same packages, and no difference in speed.

The run's jax image resolves its requirements as pip does on the day; `reproduce` builds a second
image from the run's lock (exact versions, pip's hash-checking mode), after checking every pin
against PyPI, runs the same cells as often and compares the two runs.
"""

import json

import pytest

from conftest import runner
from runner import locks, records

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]

MATRIX = """
workloads:
  mnist: {epochs: 3, train_images: 256, validation_images: 64}
repeats: 3
cpu:
  backend: [jax]
build:
  offline_base: true
"""


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, docker_client):
    folder = tmp_path_factory.mktemp("reproduce")
    (folder / "matrix.yaml").write_text(MATRIX)
    results = folder / "results"
    first = runner("run", "-f", folder / "matrix.yaml", "--results", results)
    assert first.returncode == 0, first.stderr[-3000:]
    original = records.latest_run(results)
    again = runner("reproduce", original.name, "--results", results)
    assert again.returncode == 0, again.stderr[-3000:]
    return original, records.latest_run(results), again


def good_records(run_folder):
    return [record for record in records.load(run_folder) if record.status == "ok"]


def test_every_record_names_a_lock_of_every_package_with_its_exact_version(reproduced):
    original, _, _ = reproduced
    for record in good_records(original):
        lock = locks.read(original, record.environment["name"], record.environment["lock"])
        versions = {pin.name: pin.version for pin in lock.requirements}
        assert versions["jax"] == record.measurement.versions["jax"] and versions["keras"] == record.measurement.versions["keras"]
        assert {"numpy", "jaxlib", "pillow", "ml-dtypes"} <= set(versions) and lock.hashed
        assert dict(lock.base)["how"] == "debootstrap" and any(line.startswith("python3=") for line in lock.debian)


def test_the_image_rebuilt_from_the_lock_holds_the_same_packages(reproduced):
    original, again, _ = reproduced
    before, after = (good_records(folder)[0].environment for folder in (original, again))
    assert before["image"] != after["image"]  # a second image, built from the lock's pins
    assert locks.read(again, after["name"], after["lock"]).requirements == locks.read(original, before["name"], before["lock"]).requirements


def test_reproducing_on_the_same_machine_finds_no_difference(reproduced):
    original, again, said = reproduced
    differences = [line for line in said.stdout.splitlines() if line.startswith("- ")]
    assert "The two runs' machines" in said.stdout
    assert all(line.startswith(("- project_commit:", "- project_dirty:")) for line in differences), differences  # a commit between, at most
    compared = runner("compare", original, again, "--format", "json")
    assert compared.returncode == 0, compared.stderr
    cells = json.loads(compared.stdout)["cells"]
    assert [cell["cell_id"] for cell in cells] == ["cpu-jax0.10-mnist"] and cells[0]["repeats_b"] == 3
    assert cells[0]["verdict"] in ("no_difference", "same"), cells[0]
