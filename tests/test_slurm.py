"""Dispatch to a real Slurm (harness/slurm_cluster.py: one controller, three nodes, typed fake GPUs), fake cells.

What is real: slurmctld and slurmd, sbatch/squeue/scontrol/scancel, the placement by gres
type, the jobs, run-cell in each job on its node, the signals Slurm sends, the merging into
results.jsonl, --resume. What is not: the executor inside the jobs (tests/slurm_job_runner.py,
a fake that sleeps instead of training), since no GPU cell can run here and TensorFlow cells
take minutes; tests/test_slurm_docker.py runs real containers through the same path.
"""

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, seed_for_matrix_order
from runner import cli, dispatch, executors, records
from runner.dispatch import slurm as slurm_dispatch
from slurm_job_runner import COMMAND, use_fake_nodes

pytestmark = [pytest.mark.slurm]

SMALL = "model: mnist, epochs: 2, train_images: 64, validation_images: 32"


@pytest.fixture
def fake_nodes(slurm, monkeypatch):
    """Jobs run tests/slurm_job_runner.py (the fake executor) instead of `python -m runner`."""
    monkeypatch.setitem(executors.REGISTRY, "docker", executors.REGISTRY["docker"])  # both restored after the test
    monkeypatch.setattr(slurm_dispatch, "RUNNER_COMMAND", slurm_dispatch.RUNNER_COMMAND)
    use_fake_nodes()
    return slurm


def matrix_file(tmp_path, workloads: dict[str, str], body: str, slurm: str = "poll_seconds: 0.3"):
    lines = ["workloads:"] + [f"  {name}: {{{SMALL}{', ' + extra if extra else ''}}}" for name, extra in workloads.items()]
    path = tmp_path / "matrix.yaml"
    path.write_text("\n".join(lines) + "\nrepeats: 1\n" + body + f"slurm: {{{slurm}}}\nbuild: {{ca_certificates: []}}\n")
    return path


def dispatch_run(path, capsys, *extra):
    code = cli.main(["run", "--dispatch", "slurm", "-f", str(path), "--results", str(path.parent / "results"), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def records_of(results):
    (run_folder,) = results.iterdir()
    return run_folder, {(record.cell_id, record.repeat): record for record in records.load(run_folder)}


def overlap(a, b) -> bool:
    return a.started < b.ended and b.started < a.ended


GPU_MATRIX = """gpu:
  cuda: ["12.5"]
  cudnn: ["9.3"]
  tensorflow: ["2.21"]
  gpu_type: ["h100", "h200"]
cpu:
  tensorflow: ["2.21"]
"""


@pytest.mark.timeout(120)
def test_gpu_cells_go_to_nodes_of_their_type_and_a_two_gpu_node_runs_two_at_once(tmp_path, fake_nodes, capsys, monkeypatch):
    monkeypatch.setenv("CUDNN_MATRIX_FAKE_SECONDS", json.dumps({"first": 4, "second": 4}))
    path = matrix_file(tmp_path, {"first": "", "second": ""}, GPU_MATRIX, "exclusive: false, poll_seconds: 0.3")
    code, out, err = dispatch_run(path, capsys, "-k", "gpu")
    assert code == 0, err[-3000:]

    placement = err.index("placement: 4 Slurm job(s)")
    assert placement < err.index("submitted as job")  # printed before anything was submitted
    assert "| gpu-h100-cuda12.5-cudnn9.3-tf2.21-first " in err and "--gres=gpu:h200:1" in err and "shared node" in err

    run_folder, kept = records_of(tmp_path / "results")
    assert set(kept) == {(f"gpu-{t}-cuda12.5-cudnn9.3-tf2.21-{w}", 0) for t in ("h100", "h200") for w in ("first", "second")}
    assert {record.status for record in kept.values()} == {"ok"}
    h100 = [kept[(f"gpu-h100-cuda12.5-cudnn9.3-tf2.21-{w}", 0)] for w in ("first", "second")]
    h200 = [kept[(f"gpu-h200-cuda12.5-cudnn9.3-tf2.21-{w}", 0)] for w in ("first", "second")]
    assert {record.environment["host"] for record in h100} == {"n1"}
    assert {record.environment["host"] for record in h200} == {"n2"}
    # n1's two GPUs, one to each of two cells running at the same time; n2 has one GPU for its two cells.
    assert sorted(record.environment["gpu_devices"] for record in h100) == ["0", "1"]
    assert overlap(*h100)
    assert not overlap(*h200)
    for record in kept.values():
        assert record.axes["gpu_type"] in ("h100", "h200")
        assert record.environment["gpu_devices_given"] == record.environment["gpu_devices"]  # Slurm's grant reached the executor
        assert record.environment["job_id"] and record.environment["host_cpu_cores"] and record.executor == "fake"
        assert (run_folder / "jobs" / f"{record.cell_id}.0.{record.environment['job_id']}.json").is_file()
    assert "| host " in out and "| n1 " in out  # where each record was measured

    report = cli.main(["report", str(run_folder), "--by", "host"])
    out, _ = capsys.readouterr()
    assert report == 0
    assert "host n1\n" in out and "host n2\n" in out


@pytest.mark.timeout(60)
def test_on_whole_nodes_a_gpu_cell_is_timed_on_one_of_the_gpus_granted_and_a_cpu_cell_on_none(tmp_path, fake_nodes, capsys):
    path = matrix_file(tmp_path, {"first": ""}, GPU_MATRIX.replace('["h100", "h200"]', '["h100"]'))
    code, out, err = dispatch_run(path, capsys)
    assert code == 0, err[-3000:]
    assert "| gpu-h100-cuda12.5-cudnn9.3-tf2.21-first |      1 | (default)   | --gres=gpu:h100:1 | whole node |" in err
    _, kept = records_of(tmp_path / "results")
    gpu, cpu = kept[("gpu-h100-cuda12.5-cudnn9.3-tf2.21-first", 0)], kept[("cpu-tf2.21-first", 0)]
    # --exclusive: Slurm grants the job both of n1's GPUs; the cell is given one.
    assert (gpu.environment["host"], gpu.environment["gpus_granted"], gpu.environment["gpu_devices_given"]) == ("n1", "0,1", "0")
    assert "gpu_devices" not in cpu.environment


@pytest.mark.timeout(120)
def test_placement_same_node_runs_each_comparison_group_on_the_node_its_first_job_got(tmp_path, fake_nodes, capsys):
    path = matrix_file(tmp_path, {"first": "", "second": ""}, 'cpu:\n  tensorflow: ["2.20", "2.21"]\nplacement: same-node\n')
    code, out, err = dispatch_run(path, capsys, "--repeats", "2")
    assert code == 0, err[-3000:]
    _, kept = records_of(tmp_path / "results")
    nodes = {}
    for record in kept.values():
        nodes.setdefault(record.workload, set()).add(record.environment["host"])
    assert [len(used) for used in nodes.values()] == [1, 1], nodes
    assert err.count("--nodelist=") == 6  # every job of a group but its first asked for that node


@pytest.mark.timeout(60)
def test_a_job_slurm_refuses_is_a_failed_record_with_sbatchs_own_message(tmp_path, fake_nodes, capsys):
    path = matrix_file(tmp_path, {"mnist": ""}, GPU_MATRIX.replace('["h100", "h200"]', '["a100"]'))
    code, out, err = dispatch_run(path, capsys, "-k", "gpu")
    assert code == 1, err[-3000:]
    _, kept = records_of(tmp_path / "results")
    (record,) = kept.values()
    assert record.status == "failed"
    assert record.reason == ("Slurm refused the job (--gres=gpu:a100:1): Batch job submission failed: "
                             "Requested node configuration is not available")

    path = matrix_file(tmp_path / "results", {"mnist": ""}, GPU_MATRIX, "partition: nowhere")
    code, out, err = dispatch_run(path, capsys, "-k", "cpu")
    assert code == 1, err[-3000:]
    _, kept = records_of(tmp_path / "results" / "results")
    assert kept[("cpu-tf2.21-mnist", 0)].reason == ("Slurm refused the job (--partition=nowhere): invalid partition specified: nowhere "
                                                   "Batch job submission failed: Invalid partition name specified")


def start_runner(path, *extra, environment=None):
    """A submitting runner in a process of its own (fake nodes), to be interrupted or killed."""
    return subprocess.Popen([*COMMAND, "run", "--dispatch", "slurm", "-f", str(path), "--results", str(path.parent / "results"), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def wait_for(condition, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


def ledger_jobs(results) -> dict[str, str]:
    """cell id -> its job, from the run's submission ledger."""
    folders = list(results.iterdir()) if results.is_dir() else []
    return {cell: job for (cell, _), job in dispatch.read_ledger(folders[0]).items()} if folders else {}


@pytest.mark.timeout(180)
def test_a_crash_a_cancelled_job_and_a_dead_node_fail_only_their_cells(tmp_path, fake_nodes, monkeypatch):
    monkeypatch.setenv("CUDNN_MATRIX_FAKE_SECONDS", json.dumps({"mnist": 2}))
    path = matrix_file(tmp_path, {"mnist": "", "crash": "fault: crash", "cancelled": "fault: hang", "orphaned": "fault: hang"},
                       "cpu:\n  tensorflow: [\"2.21\"]\n")
    runner = start_runner(path)
    try:
        jobs = wait_for(lambda: len(ledger_jobs(tmp_path / "results")) == 4 and ledger_jobs(tmp_path / "results"), "four submissions")
        running = wait_for(lambda: all(fake_nodes.jobs().get(jobs[f"cpu-tf2.21-{w}"], ("",))[0] == "RUNNING"
                                       for w in ("cancelled", "orphaned")) and fake_nodes.jobs(), "the two hanging jobs running")
        fake_nodes.client("scancel", jobs["cpu-tf2.21-cancelled"])
        dead = running[jobs["cpu-tf2.21-orphaned"]][1]
        # What slurmctld does when a node stops answering, without waiting SlurmdTimeout for it.
        fake_nodes.client("scontrol", "update", f"nodename={dead}", "state=down", "reason=power lost")
        _, err = runner.communicate(timeout=120)
    finally:
        runner.kill()
    assert runner.returncode == 1, err[-3000:]
    _, kept = records_of(tmp_path / "results")
    reasons = {cell: (record.status, record.reason) for (cell, _), record in kept.items()}
    assert reasons["cpu-tf2.21-mnist"] == ("ok", "")
    assert reasons["cpu-tf2.21-crash"] == ("failed", "the workload exited with code 1: injected fault: crash")
    cancelled = jobs["cpu-tf2.21-cancelled"]
    assert reasons["cpu-tf2.21-cancelled"][1].startswith(f"its Slurm job {cancelled} was cancelled on n")
    assert reasons["cpu-tf2.21-orphaned"] == ("failed", f"its node {dead} failed while the cell ran (Slurm job {jobs['cpu-tf2.21-orphaned']}: NODE_FAIL)")
    assert kept[("cpu-tf2.21-orphaned", 0)].environment["host"] == dead
    assert "Traceback" not in err


@pytest.mark.timeout(180)
def test_resume_after_the_runner_is_killed_merges_finished_jobs_follows_running_ones_and_resubmits_the_rest(tmp_path, fake_nodes, monkeypatch):
    monkeypatch.setenv("CUDNN_MATRIX_FAKE_SECONDS", json.dumps({"quick": 0, "slow": 6, "slower": 6, "last": 6}))
    path = matrix_file(tmp_path, {"quick": "", "slow": "", "slower": "", "last": ""}, "cpu:\n  tensorflow: [\"2.21\"]\n")
    runner = start_runner(path, "--seed", seed_for_matrix_order(path))  # last is submitted last, to wait for a node
    try:
        jobs = wait_for(lambda: len(ledger_jobs(tmp_path / "results")) == 4 and ledger_jobs(tmp_path / "results"), "four submissions")
        (run_folder,) = (tmp_path / "results").iterdir()
        wait_for(lambda: list((run_folder / "jobs").glob("cpu-tf2.21-quick.0.*.json")), "the quick cell's record")
        runner.kill()  # kill -9: no handler runs, no job is cancelled
        runner.communicate(timeout=30)
    finally:
        runner.kill()
    # Pending, or just started on the quick cell's node: lost while no runner watched, to be submitted again.
    fake_nodes.client("scancel", jobs["cpu-tf2.21-last"])

    resumed = start_runner(path, "--resume", run_folder.name)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-3000:]
    assert f"following job {jobs['cpu-tf2.21-slow']}, submitted by an earlier runner" in err
    assert f"following job {jobs['cpu-tf2.21-slower']}, submitted by an earlier runner" in err
    lines = (run_folder / records.RESULTS_FILE).read_text().splitlines()
    loaded = [json.loads(line) for line in lines]
    assert sorted(record["cell_id"] for record in loaded) == [f"cpu-tf2.21-{w}" for w in ("last", "quick", "slow", "slower")]
    assert {record["status"] for record in loaded} == {"ok"}
    by_cell = {record["cell_id"]: record["environment"]["job_id"] for record in loaded}
    assert by_cell["cpu-tf2.21-slow"] == jobs["cpu-tf2.21-slow"]  # merged from the job the killed runner submitted
    assert by_cell["cpu-tf2.21-last"] != jobs["cpu-tf2.21-last"]  # submitted again
    assert json.loads((run_folder / records.MANIFEST_FILE).read_text())["state"] == "finished"

    local = subprocess.run([sys.executable, "-m", "runner", "run", "-f", str(path), "--results", str(tmp_path / "results"),
                            "--resume", run_folder.name], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert local.returncode == 2 and "resume it the way it ran: `python -m runner run --dispatch slurm --resume" in local.stderr


@pytest.mark.timeout(120)
def test_ctrl_c_cancels_the_runs_jobs(tmp_path, fake_nodes):
    path = matrix_file(tmp_path, {"one": "fault: hang", "two": "fault: hang"}, "cpu:\n  tensorflow: [\"2.21\"]\n")
    runner = start_runner(path)
    try:
        jobs = wait_for(lambda: len(ledger_jobs(tmp_path / "results")) == 2 and ledger_jobs(tmp_path / "results"), "two submissions")
        wait_for(lambda: all(fake_nodes.jobs().get(job, ("",))[0] == "RUNNING" for job in jobs.values()), "both jobs running")
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=100)
    finally:
        runner.kill()
    assert runner.returncode == 130, err[-3000:]
    assert "cancelling 2 Slurm job(s) of this run" in err
    assert {fake_nodes.jobs()[job][0] for job in jobs.values()} == {"CANCELLED"}
    (run_folder,) = (tmp_path / "results").iterdir()
    assert (run_folder / records.RESULTS_FILE).read_text() == ""  # nothing measured, nothing recorded
    assert json.loads((run_folder / records.MANIFEST_FILE).read_text())["state"] == "interrupted"
    assert "--dispatch slurm --resume" in err
