"""Problems outside the matrix are one line and exit 2 too: no engine, no debootstrap, a damaged results file."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from runner import records
from runner.executors import docker_base as base
from runner.config import BuildSettings
from runner.errors import UserError


def test_an_unreachable_engine_names_the_endpoint_and_what_to_do(tmp_path):
    environment = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock")
    result = subprocess.run([sys.executable, "-m", "runner", "build"], cwd=REPO, env=environment, capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
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


def test_a_results_file_cut_short_still_loads_with_a_warning(tmp_path, capsys):
    run_folder = tmp_path / "20261129-000000"
    run_folder.mkdir()
    good = json.dumps({
        "cell_id": "cpu-tf2.21-dogs-vs-cats", "status": "failed", "reason": "x", "kind": "cpu", "workload": "dogs-vs-cats",
        "tensorflow_requested": "2.21", "cuda_requested": "", "cudnn_requested": "", "image": "i", "image_id": "",
        "base_image": "", "started": "s", "ended": "e", "measurement": None, "log_tail": "", "schema": 2,
    })
    (run_folder / records.RESULTS_FILE).write_text(good + "\n" + good[: len(good) // 2])

    loaded = records.load(run_folder)

    assert [record.cell_id for record in loaded] == ["cpu-tf2.21-dogs-vs-cats"]
    assert "the last record was cut short and is left out" in capsys.readouterr().err


def test_a_damaged_line_in_the_middle_is_an_error(tmp_path):
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / records.RESULTS_FILE).write_text("{not json\n{}\n")
    with pytest.raises(UserError, match=r"results.jsonl:1: not a JSON record"):
        records.load(run_folder)
