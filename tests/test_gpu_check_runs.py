"""bench/gpu_check.sh as the GPU machine runs it: no Docker, no TensorFlow, no network (`unshare -n`), torch and jax
in the interpreter, Keras from a folder of wheels. This host has no GPU, so the GPU cells are skipped, or, with a
fake nvidia-smi listing an H200, run and fail: either way the check must say so and exit non-zero.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.executors, pytest.mark.timeout(900),
              pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed")]

REPO = Path(__file__).resolve().parent.parent
# What the GPU machine's interpreter has, less its CUDA: torch 2.13 is a CPU build where a wheel folder offers one (this
# project's machines), else PyPI's CUDA build; the runner's own needs; Keras' dependencies but Keras itself, which comes
# from the wheels folder as it does there.
INTERPRETER = ["torch==2.13.*", "jax==0.10.*", "numpy", "pillow", "pyyaml", "tabulate", "matplotlib", "scipy", "jinja2",
               "packaging", "absl-py", "rich", "h5py", "ml-dtypes"]
KERAS_WHEELS = ["keras==3.15.1", "namex==0.1.0", "optree==0.20.0"]
FAKE_NVIDIA_SMI = """#!/bin/sh
case "$*" in
  *-L*) echo "GPU 0: NVIDIA H200 (UUID: GPU-8f2c1d3e-0000-0000-0000-000000000000)";;
  *) echo "index, name, driver_version"; echo "0, NVIDIA H200, 580.159.03";;
esac
"""


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    """A GPU machine's interpreter (as far as a CPU host has one) and the wheels folder the check is given."""
    folder = tmp_path_factory.mktemp("gpu-machine")
    subprocess.run([sys.executable, "-m", "venv", folder / "venv"], check=True)
    python = folder / "venv" / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + INTERPRETER, check=True, timeout=1200)
    subprocess.run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                    "-d", folder / "wheels", *KERAS_WHEELS], check=True, timeout=300)
    fake = folder / "fake-nvidia-smi"
    fake.mkdir()
    (fake / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (fake / "nvidia-smi").chmod(0o755)
    return {"python": python, "wheels": folder / "wheels", "fake_nvidia_smi": fake}


def check(machine, results: Path, *options: str, gpu: bool = False) -> subprocess.CompletedProcess:
    """gpu_check.sh offline, on a PATH without nvidia-smi unless `gpu` puts the fake one first."""
    path = ([str(machine["fake_nvidia_smi"])] if gpu else []) + [p for p in os.environ["PATH"].split(":")
                                                                  if not (Path(p) / "nvidia-smi").exists()]
    environment = {**os.environ, "PATH": ":".join(path), "PYTHON": str(machine["python"]), "PYTHONPATH": ""}
    return subprocess.run(["unshare", "-n", str(REPO / "bench" / "gpu_check.sh"), str(machine["wheels"]), str(results), *options],
                          capture_output=True, text=True, env=environment, timeout=840)


def records_of(results: Path) -> list[dict]:
    (run,) = (results / "runs").iterdir()
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def test_the_quick_check_runs_offline_and_archives_what_it_measured(machine, tmp_path):
    done = check(machine, tmp_path, "--quick")

    assert done.returncode == 3, done.stderr[-3000:]
    out = done.stdout.splitlines()
    assert out[-1].startswith("NO GPU CELL WAS MEASURED (") and "skipped: no GPU on this host" in out[-1]
    assert out[-2].startswith(f"archive: {tmp_path / 'gpu_check.tgz'} (")
    first = lambda prefix: next(i for i, line in enumerate(out) if line.startswith(prefix))  # noqa: E731
    assert first("| cell ") < first("| model ") < first("| question ") < first("| GPU cell ")  # the runner's report, then the check's
    cpu = [record for record in records_of(tmp_path) if record["axes"]["kind"] == "cpu"]
    assert sorted((record["cell_id"], record["status"]) for record in cpu) == [  # in the order the run's shuffled round took
        ("cpu-torch2.13-baseline-dogs-vs-cats", "ok"), ("cpu-torch2.13-baseline-mnist", "ok")]
    with tarfile.open(tmp_path / "gpu_check.tgz") as tar:
        names = set(tar.getnames())
    assert {"gpu_check/gpu_check.yaml", "gpu_check/environment.json", "gpu_check/report.txt", "gpu_check/gpu_check.txt",
            "gpu_check/epochs.png", "gpu_check/gpu_check.log", "gpu_check/run/manifest.json", "gpu_check/run/results.jsonl"} <= names
    assert not any("/data/" in name or name.endswith(".whl") for name in names)
    assert (tmp_path / "gpu_check.tgz").stat().st_size < 2 * 1024**2


def test_a_check_whose_gpu_cells_all_fail_exits_non_zero_naming_why(machine, tmp_path):
    done = check(machine, tmp_path, "--quick", gpu=True)

    assert done.returncode == 3, done.stderr[-3000:]
    gpu = [record for record in records_of(tmp_path) if record["axes"]["kind"] == "gpu" and record["axes"]["framework"] == "jax"]
    assert gpu and {(record["status"], record["reason"]) for record in gpu} == {("failed", "expected a GPU, jax registered none")}
    assert "| dogs-vs-cats | GPU, jax                 | failed: expected a GPU, jax registered none" in done.stdout
    assert "failed: expected a GPU, jax registered none" in done.stdout.splitlines()[-1]


def test_a_budget_of_a_minute_ends_cleanly_naming_the_rows_not_reached(machine, tmp_path):
    started = time.monotonic()
    done = check(machine, tmp_path, "--quick", "--budget-minutes", "1", gpu=True)
    took = time.monotonic() - started

    assert done.returncode == 3, done.stderr[-3000:]
    assert took < 60 + 60  # the minute, and the wheels' installation and the interpreter's start before the budget starts
    assert "not reached (budget)" in done.stdout
    assert (tmp_path / "gpu_check.tgz").is_file()
