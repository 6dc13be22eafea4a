"""Problems outside the matrix are one line and exit 2 too: no engine, no debootstrap, a damaged results file."""

import json

import pytest

from conftest import REPO
from runner import cli, records
from runner.executors import base_images as base
from runner.config import BuildSettings
from runner.errors import UserError


def test_an_unreachable_engine_names_the_endpoint_and_what_to_do(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert cli.main(["build"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line == (
        "error: cannot reach the Docker engine at unix:///nonexistent/docker.sock: "
        "start it (systemctl start docker, or dockerd) or point DOCKER_HOST at a running one"
    )


class NoImages:
    """The engine seam: no image is there yet, so the registry-free base must be made."""

    class images:
        @staticmethod
        def get(reference):
            import docker.errors

            raise docker.errors.ImageNotFound(reference)


def test_missing_debootstrap_says_what_to_install(monkeypatch):
    monkeypatch.setattr(base.shutil, "which", lambda name: None)
    settings = BuildSettings(offline_base=True, ca_certificates=(), debian_mirror="http://deb.debian.org/debian")
    with pytest.raises(UserError, match=r"^debootstrap is not installed, .*install it \(apt-get install debootstrap\)$"):
        base.resolve_base(NoImages(), "python:3.11-slim", settings, lambda message: None)


def schema_2_record(cell_id):
    return json.dumps({
        "cell_id": cell_id, "status": "failed", "reason": "x", "kind": "cpu", "workload": "dogs-vs-cats",
        "tensorflow_requested": "2.21", "cuda_requested": "", "cudnn_requested": "", "image": "i", "image_id": "",
        "base_image": "", "started": "s", "ended": "e", "measurement": None, "log_tail": "", "schema": 2,
    })


def test_a_results_file_cut_short_still_loads_with_a_warning(tmp_path, capsys):
    run_folder = tmp_path / "20261129-000000"
    run_folder.mkdir()
    good = schema_2_record("cpu-tf2.21-dogs-vs-cats")
    (run_folder / records.RESULTS_FILE).write_text(good + "\n" + good[: len(good) // 2])

    loaded = records.load(run_folder)

    assert [record.cell_id for record in loaded] == ["cpu-tf2.21-dogs-vs-cats"]
    assert f"{records.RESULTS_FILE}:2: not a complete JSON record; the line is left out" in capsys.readouterr().err


@pytest.mark.parametrize("damage, what", [
    ("{not json", "not a complete JSON record"),
    ("{}", "a record without a schema version"),
    ("[1, 2]", "not a record"),
    ('{"schema": 3, "cell_id": "x"}', "not a record of results schema 3"),
    ('{"schema": 2, "cell_id": "x"}', "a schema-2 record without"),
])
def test_a_damaged_line_in_the_middle_costs_that_line_only(tmp_path, capsys, damage, what):
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / records.RESULTS_FILE).write_text(f"{schema_2_record('a')}\n{damage}\n{schema_2_record('b')}\n")

    assert [record.cell_id for record in records.load(run_folder)] == ["a", "b"]
    (warning,) = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"warning: {run_folder / records.RESULTS_FILE}:2: {what}")


def test_an_append_after_a_record_cut_short_starts_on_a_fresh_line(tmp_path, capsys):
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    good = schema_2_record("a")
    (run_folder / records.RESULTS_FILE).write_text(good + "\n" + good[:40])  # power lost mid-write
    record = records.load(run_folder)[0]

    records.append(run_folder, record)

    lines = (run_folder / records.RESULTS_FILE).read_text().splitlines()
    assert lines[1] == good[:40] and len(lines) == 3
    assert [r.cell_id for r in records.load(run_folder)] == ["a", "a"]
    assert "results.jsonl:2: not a complete JSON record" in capsys.readouterr().err
