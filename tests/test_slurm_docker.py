"""Real cells through a real Slurm: the Docker executor inside the jobs, on this machine's engine.

Each job runs `python -m runner run-cell` on its node, which builds (or finds up to date) the
cell's image with the node's engine and runs the container: here all three nodes share this
machine's engine. Images are built by the jobs, on their nodes, not by the submitting runner.
"""

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, runner
from runner import dispatch, records

pytestmark = [pytest.mark.docker, pytest.mark.slurm]

TINY_MATRIX = """
workloads:
  dogs-vs-cats: {epochs: 2, warmup_epochs: 1, train_images: 64, validation_images: 32}
repeats: 1
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
slurm:
  poll_seconds: 0.5
"""


def test_a_tiny_real_cell_runs_through_slurm_with_a_record_like_a_local_runs(tmp_path, slurm, docker_client):
    matrix, results = tmp_path / "matrix.yaml", tmp_path / "results"
    matrix.write_text(TINY_MATRIX)
    run = runner("run", "--dispatch", "slurm", "-f", matrix, "--results", results)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| cpu-tf2.21-dogs-vs-cats |      1 | (default)   | -     | whole node |" in run.stderr

    (run_folder,) = results.iterdir()
    (line,) = (run_folder / records.RESULTS_FILE).read_text().splitlines()
    record = json.loads(line)
    assert (record["status"], record["cell_id"], record["executor"]) == ("ok", "cpu-tf2.21-dogs-vs-cats", "docker")
    assert record["axes"] == {"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21"}
    environment = record["environment"]
    assert environment["image"].startswith("cudnn-matrix/cpu-tf2.21:") and environment["image_id"].startswith("sha256:")
    assert environment["base_image_how"] == "debootstrap"
    assert environment["host"] in ("n1", "n2", "n3") and environment["job_id"].isdigit()
    assert environment["host_cpu_model"] and environment["host_docker_engine"]
    measurement = record["measurement"]
    assert measurement["model"]["parameters"] == 1_212_513
    assert len(measurement["epochs"]) == 2 and measurement["data"]["kind"] == "synthetic"
    manifest = json.loads((run_folder / records.MANIFEST_FILE).read_text())
    assert (manifest["state"], manifest["host"]["dispatch"], manifest["host"]["node_executor"]) == ("finished", "slurm", "docker")

    report = runner("report", run_folder, "--by", "host")
    assert report.returncode == 0
    assert f"host {environment['host']}\n" in report.stdout and "| cpu-tf2.21 | ok " in report.stdout


STUCK_MATRIX = """
workloads:
  slurm-stuck-a: {model: dogs-vs-cats, epochs: 2, train_images: 64, validation_images: 32, fault: hang}
  slurm-stuck-b: {model: dogs-vs-cats, epochs: 2, train_images: 64, validation_images: 32, fault: hang}
repeats: 1
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
slurm:
  poll_seconds: 0.5
"""


def containers(docker_client, cell_id):
    return docker_client.containers.list(all=True, filters={"label": f"io.cudnn-matrix.cell={cell_id}"})


def wait_for(condition, what, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_scancel_mid_cell_and_ctrl_c_on_the_runner_leave_no_container(tmp_path, slurm, docker_client):
    matrix, results = tmp_path / "matrix.yaml", tmp_path / "results"
    matrix.write_text(STUCK_MATRIX)
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", "--dispatch", "slurm", "-f", str(matrix), "--results", str(results)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for cell in ("cpu-tf2.21-slurm-stuck-a", "cpu-tf2.21-slurm-stuck-b"):  # the jobs build the image if it is not up to date
            wait_for(lambda: any(c.status == "running" for c in containers(docker_client, cell)), f"{cell}'s container running", 600)
        (run_folder,) = results.iterdir()
        jobs = {cell: job for (cell, _), job in dispatch.read_ledger(run_folder).items()}

        slurm.client("scancel", jobs["cpu-tf2.21-slurm-stuck-a"])  # the job gets SIGTERM; run-cell removes its container
        wait_for(lambda: not containers(docker_client, "cpu-tf2.21-slurm-stuck-a"), "stuck-a's container removed", 60)
        wait_for(lambda: (run_folder / records.RESULTS_FILE).read_text(), "stuck-a's record", 60)

        process.send_signal(signal.SIGINT)  # Ctrl-C: the runner cancels stuck-b's job
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert f"cancelling 1 Slurm job(s) of this run: scancel {jobs['cpu-tf2.21-slurm-stuck-b']}" in stderr
    wait_for(lambda: not containers(docker_client, "cpu-tf2.21-slurm-stuck-b"), "stuck-b's container removed", 60)

    (line,) = (run_folder / records.RESULTS_FILE).read_text().splitlines()
    record = json.loads(line)
    assert record["cell_id"] == "cpu-tf2.21-slurm-stuck-a" and record["status"] == "failed"
    assert record["reason"].startswith(f"its Slurm job {jobs['cpu-tf2.21-slurm-stuck-a']} was cancelled on n")
    assert json.loads((run_folder / records.MANIFEST_FILE).read_text())["state"] == "interrupted"
