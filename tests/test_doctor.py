"""cudnn-matrix doctor: what a run depends on, checked without running anything; the real executors, no engine needed."""

import pytest

from fake_executor import FakeExecutor
from runner import cli, doctor, session

MATRIX = """workloads:
  mnist: {epochs: 2, train_images: 64, validation_images: 32, data: data}
  dogs-vs-cats: {epochs: 2, train_images: 64, validation_images: 32, data: data}
cpu: {tensorflow: ["2.21"]}
gpu: {cuda: ["12.5"], cudnn: ["9.3"], tensorflow: ["2.21"]}
build: {ca_certificates: []}
"""


def doctor_command(folder, monkeypatch, capsys, *options, **environment):
    """`doctor` in-process, in folder, with environment set: (exit status, stdout, stderr)."""
    (folder / "matrix.yaml").write_text(MATRIX)
    monkeypatch.chdir(folder)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    code = cli.main(["doctor", "-f", str(folder / "matrix.yaml"), *options])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_engine_that_cannot_be_reached_is_a_problem_and_exit_1(tmp_path, monkeypatch, capsys):
    code, out, err = doctor_command(tmp_path, monkeypatch, capsys, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    assert code == 1, err
    assert out.splitlines() == [
        f"ok       matrix: {tmp_path / 'matrix.yaml'}: 4 cell(s), 4 selected",
        f"problem  executor docker: cannot reach the Docker engine at unix://{tmp_path}/no-engine.sock: "
        "start it (systemctl start docker, or dockerd) or point DOCKER_HOST at a running one"]


@pytest.mark.executors  # asks a real interpreter what it has
def test_an_interpreter_without_the_framework_runs_nothing_and_says_why(tmp_path, monkeypatch, capsys):
    code, out, err = doctor_command(tmp_path, monkeypatch, capsys, "--executor", "local", "-k", "cpu-")
    assert code == 1, err
    assert "problem  cells: 0 of the 2 selected would run" in out
    assert "has no tensorflow (tensorflow==2.21.* asked for): the local executor installs nothing" in out
    assert "Traceback" not in err


def test_the_checks_say_which_cells_would_run_and_where_each_workloads_data_comes_from(tmp_path):
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    (tmp_path / "data" / "mnist" / "mnist.npz").write_bytes(b"")  # present: run checks it in full, doctor says where it is
    found = doctor.checks(session.plan(tmp_path / "matrix.yaml"), "fake", lambda: FakeExecutor(no_gpu="no GPU here"), tmp_path / "results")
    lines = [check.line() for check in found]
    assert lines[1:5] == ["ok       executor fake: fake True", "ok       cells: 2 of the 4 selected would run",
                          "warning  2 cell(s): not run: skipped: no GPU here", "ok       environment cpu-tf2.21: fake: built on demand"]
    assert lines[5].startswith("ok       disk for results: ") and " GiB free at " in lines[5]
    assert lines[6:] == [f"ok       data for mnist: real data in {tmp_path / 'data' / 'mnist' / 'mnist.npz'}",
                         f"ok       data for dogs-vs-cats: none in {tmp_path / 'data'}: a synthetic set will be generated "
                         "(timings are real, accuracy meaningless)"]
    assert doctor.exit_code(found) == 0
