"""The run path of the venv and local executors for real: the workload as a process of this interpreter.

Its faults happen before any framework is imported, so these need no TensorFlow: a crash, a hang past
the time limit, an unreadable record, an interrupted run, a runner killed with -9.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, seed_for_matrix_order
from host_runs import FAULTS, asking_for, local_executor, plan_of, run_cells

pytestmark = pytest.mark.executors  # real processes, a second or more each: `make executors-test`
from runner.executors.host_process import follow


def test_each_fault_becomes_its_record_through_the_session(tmp_path):
    plan = asking_for(plan_of(tmp_path, FAULTS, "cpu-tf2.21-[cgh]"), ())
    records = run_cells(plan, local_executor())
    assert {cell: (r.status, r.reason) for cell, r in records.items()} == {
        "cpu-tf2.21-crash": ("failed", "the workload exited with code 1: injected fault: crash"),
        "cpu-tf2.21-garbage": ("failed", "the workload printed no readable result record"),
        "cpu-tf2.21-hang": ("failed", "exceeded its time limit of 0.02 min (workloads.hang.timeout_minutes)"),
    }
    crash = records["cpu-tf2.21-crash"]
    assert "injected fault: crash" in crash.log_tail
    assert (crash.executor, crash.environment["isolation"], crash.environment["python"]) == ("local", "none", sys.executable)


def test_the_spec_variables_and_no_gpu_reach_a_cpu_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    seen = tmp_path / "environment.json"
    # The workload's crash, preceded by a look at its environment: sitecustomize runs first in any interpreter.
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(
        f"import json, os\njson.dump(dict(os.environ), open({str(seen)!r}, 'w'))\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "hook"))
    run_cells(asking_for(plan_of(tmp_path, FAULTS, "crash"), ()), local_executor())
    environment = json.loads(seen.read_text())
    assert (environment["TF_CPP_MIN_LOG_LEVEL"], environment["PYTHONUNBUFFERED"], environment["CUDA_VISIBLE_DEVICES"]) == ("1", "1", "")


def test_the_whole_process_group_is_killed_at_the_deadline():
    lines = []
    finished = follow(["sh", "-c", "echo $$; sleep 300 & echo $!; wait"], lines.append, timeout_seconds=1)
    assert finished.timed_out and finished.exit_code == -signal.SIGKILL
    assert lines and all(wait_until_gone(int(pid)) for pid in lines)  # a kill takes effect a moment after it is sent


def test_a_last_line_without_newline_and_broken_utf8_are_kept():
    finished = follow([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'a\\xff\\nlast')"], lambda line: None)
    assert (finished.exit_code, finished.output) == (0, "a\ufffd\nlast")


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def workload_of(cell_id: str, folder: Path, seconds: float = 30) -> int:
    """The pid of the workload process running cell_id with data under folder."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                words = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"benchmark.py" in word for word in words) and any(f'"{cell_id}"'.encode() in w and str(folder).encode() in w for w in words):
                return int(cmdline.parent.name)
        time.sleep(0.1)
    raise AssertionError(f"no workload process for {cell_id} within {seconds} s")


def start_run(tmp_path: Path) -> subprocess.Popen:
    """A run of the crash cell, then the stuck one (the seed keeps the matrix's order)."""
    plan_of(tmp_path, FAULTS)
    seed = seed_for_matrix_order(tmp_path / "matrix.yaml", "cpu-tf2.21-[cs]")
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "local_cli.py"), "run", "-f", str(tmp_path / "matrix.yaml"), "-k", "cpu-tf2.21-[cs]",
         "--executor", "local", "--results", str(tmp_path / "results"), "--seed", seed],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_until_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_kills_the_workload_and_keeps_finished_records(tmp_path, stop):
    process = start_run(tmp_path)
    stuck = workload_of("cpu-tf2.21-stuck", tmp_path)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr[-3000:]
    assert wait_until_gone(stuck)
    (run_folder,) = (tmp_path / "results").iterdir()
    assert [json.loads(line)["cell_id"] for line in (run_folder / "results.jsonl").read_text().splitlines()] == ["cpu-tf2.21-crash"]
    assert json.loads((run_folder / "manifest.json").read_text())["state"] == "interrupted"


def test_the_workload_dies_with_a_runner_killed_by_sigkill(tmp_path):
    process = start_run(tmp_path)
    stuck = workload_of("cpu-tf2.21-stuck", tmp_path)
    process.kill()  # no handler runs
    process.communicate(timeout=30)
    assert wait_until_gone(stuck)
