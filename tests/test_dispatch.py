"""Dispatch without a cluster: slurm: settings, the gpu_type axis, placement, run-cell, and the refusals. Milliseconds.

tests/test_slurm.py runs the same code against a real Slurm.
"""

import os
import sys
from pathlib import Path

import pytest

from fake_executor import FakeExecutor
from runner import cli, dispatch, executors, gpu_types, invocation, records, run_plan, session
from runner.config import load_matrix
from runner.dispatch import slurm
from runner.dispatch_settings import SLURM_DEFAULTS
from runner.errors import UserError
from runner.progress import Progress

SMALL = "model: mnist, epochs: 2, train_images: 64, validation_images: 32"
MATRIX = f"""workloads:
  mnist: {{{SMALL}}}
cpu:
  tensorflow: ["2.21"]
gpu:
  cuda: ["12.5"]
  cudnn: ["9.3"]
  tensorflow: ["2.21"]
  gpu_type: ["h100", "h200"]
build:
  ca_certificates: []
"""


@pytest.fixture
def matrix(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(MATRIX)
    return path


def test_slurm_settings_default_to_exclusive_nodes_and_the_clusters_defaults(matrix):
    assert load_matrix(matrix).slurm == SLURM_DEFAULTS
    assert SLURM_DEFAULTS.exclusive and SLURM_DEFAULTS.partition is None and SLURM_DEFAULTS.time is None
    matrix.write_text(MATRIX + 'slurm:\n  partition: cpu\n  gpu_partition: gpu,gpu-big\n  account: lab\n  time: "02:00:00"\n'
                               '  exclusive: false\n  options: ["--qos=high", "--constraint=ib"]\n  poll_seconds: 2\n')
    settings = load_matrix(matrix).slurm
    assert (settings.partition, settings.gpu_partition, settings.account, settings.time) == ("cpu", "gpu,gpu-big", "lab", "02:00:00")
    assert (settings.exclusive, settings.options, settings.poll_seconds) == (False, ("--qos=high", "--constraint=ib"), 2.0)


@pytest.mark.parametrize("settings, message", [
    ("time: 2:00:00", 'slurm.time: expected a Slurm time limit in quotes, such as "02:00:00", "90" (minutes) or "1-00:00:00", got the number 7200'),
    ('time: "two hours"', "slurm.time: expected a Slurm time limit in quotes"),
    ('options: ["--gres=gpu:2"]', "slurm.options[0]: expected an option the dispatcher does not set itself (for --gres use gpu.gpu_type)"),
    ('options: ["--output=/tmp/x"]', "slurm.options[0]: expected an option the dispatcher does not set itself (for --output use nothing"),
    ('options: ["-p gpu"]', "slurm.options[0]: expected a long sbatch option without spaces"),
    ('partition: "gpu; rm -rf /"', "slurm.partition: expected a Slurm name"),
    ("poll_seconds: 0", "slurm.poll_seconds: expected a number of seconds from 0.1 to 600"),
    ("exclusiv: true", "slurm.exclusiv: expected one of account, exclusive,"),
])
def test_bad_slurm_settings_are_one_line_naming_the_key(matrix, capsys, settings, message):
    matrix.write_text(MATRIX + f"slurm: {{{settings}}}\n")
    assert cli.main(["list", "-f", str(matrix)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert message in line and line.startswith(f"error: {matrix}:")


def test_gpu_type_is_an_axis_of_gpu_cells_and_part_of_their_id(matrix):
    plan = session.plan(matrix)
    assert [cell.id for cell in plan.cells] == ["cpu-tf2.21-mnist", "gpu-h100-cuda12.5-cudnn9.3-tf2.21-mnist",
                                                "gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist"]
    h100, h200 = plan.cells[1:]
    assert h100.axes_dict == {"kind": "gpu", "framework": "tensorflow", "framework_version": "2.21", "cuda": "12.5", "cudnn": "9.3",
                              "gpu_type": "h100"}
    assert h100.environment == h200.environment  # one image runs on either GPU
    assert [cell.id for cell in session.plan(matrix, "gpu-h200").selected] == ["gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist"]
    matrix.write_text(MATRIX.replace('["h100", "h200"]', '["h100", "h100"]'))
    with pytest.raises(Exception, match=r"gpu.gpu_type\[1\]: expected each GPU type once"):
        load_matrix(matrix)


def test_gpu_include_and_exclude_may_name_a_gpu_type(matrix):
    two_cudas = MATRIX.replace('cuda: ["12.5"]', 'cuda: ["12.5", "12.8"]').replace('cudnn: ["9.3"]', 'cudnn: ["9.8"]')
    matrix.write_text(two_cudas.replace('  gpu_type: ["h100", "h200"]\n', '  gpu_type: ["h100", "h200"]\n'
                                        '  exclude: [{gpu_type: h100, cuda: "12.5"}]\n'
                                        '  include: [{gpu_type: h200, keras: "3.12"}, {gpu_type: b200, cuda: "12.8", cudnn: "9.8", tensorflow: "2.21"},\n'
                                        '            {cuda: "12.8", cudnn: "9.8", tensorflow: "2.20"}]\n'))
    cells = {cell.id: cell for cell in session.plan(matrix).cells if cell.kind == "gpu"}
    assert sorted(cells) == [
        "gpu-b200-cuda12.8-cudnn9.8-tf2.21-mnist",  # an include naming its type adds that one cell
        "gpu-h100-cuda12.8-cudnn9.8-tf2.20-mnist", "gpu-h100-cuda12.8-cudnn9.8-tf2.21-mnist",  # no h100 on CUDA 12.5
        "gpu-h200-cuda12.5-cudnn9.8-tf2.21-keras3.12-mnist",
        "gpu-h200-cuda12.8-cudnn9.8-tf2.20-mnist",  # an include naming no type adds a cell for every type
        "gpu-h200-cuda12.8-cudnn9.8-tf2.21-keras3.12-mnist",
    ]
    assert cells["gpu-b200-cuda12.8-cudnn9.8-tf2.21-mnist"].environment == cells["gpu-h100-cuda12.8-cudnn9.8-tf2.21-mnist"].environment


@pytest.mark.parametrize("gpu_types, message", [
    ('["h100"]', "gpu.exclude[0].gpu_type: expected one of the types gpu.gpu_type lists (h100), got the text 'a100'"),
    (None, "gpu.exclude[0].gpu_type: expected gpu.gpu_type to list the GPU types first, got the text 'a100'"),
])
def test_an_exclude_naming_a_gpu_type_the_matrix_does_not_list_is_refused(matrix, capsys, gpu_types, message):
    listed = f"  gpu_type: {gpu_types}\n" if gpu_types else ""
    matrix.write_text(MATRIX.replace('  gpu_type: ["h100", "h200"]\n', listed + "  exclude: [{gpu_type: a100}]\n"))
    assert cli.main(["list", "-f", str(matrix)]) == 2
    assert message in capsys.readouterr().err


def test_a_local_run_skips_gpu_types_this_host_does_not_have(matrix, monkeypatch):
    monkeypatch.setattr(gpu_types, "host_gpu_names", lambda: ("NVIDIA H100 80GB HBM3",))
    result = session.run(session.plan(matrix, "gpu"), FakeExecutor(), matrix.parent / "results", None, 1, Progress())
    status = {record.cell_id: (record.status, record.reason) for record in result.records}
    assert status["gpu-h100-cuda12.5-cudnn9.3-tf2.21-mnist"] == ("failed", "expected a GPU, TensorFlow registered none")  # the fake has none
    assert status["gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist"] == (
        "skipped", "GPU type h200: this host has NVIDIA H100 80GB HBM3; dispatch it to a cluster (run --dispatch slurm)")


def test_a_job_on_a_node_without_a_gpu_of_its_type_fails_naming_the_nodes_gpus(matrix, monkeypatch, tmp_path):
    plan = session.plan(matrix, "gpu")
    h100, h200 = plan.selected
    run_folder = records.new_run(tmp_path / "results", plan.matrix.path, {})
    monkeypatch.setattr(gpu_types, "host_gpu_names", lambda: ("NVIDIA H100 80GB HBM3",))  # gres.conf called it h200
    record = dispatch.run_job(plan, FakeExecutor(), h200, 0, run_folder, "7", "0", Progress())
    assert (record.status, record.reason) == ("failed", "GPU type h200: the scheduler placed this job on a node whose GPUs are "
                                                        "NVIDIA H100 80GB HBM3; check the gres types in the cluster's gres.conf")
    assert record.environment["job_id"] == "7"
    executor = FakeExecutor()
    dispatch.run_job(plan, executor, h100, 0, run_folder, "8", "0", Progress())
    assert [job.cell_id for job in executor.jobs] == [h100.id]  # the right GPU: it runs
    monkeypatch.setattr(gpu_types, "host_gpu_names", lambda: ())  # GPUs without names (the test cluster's): trusted
    assert dispatch.run_job(plan, FakeExecutor(), h200, 0, run_folder, "9", "0", Progress()).reason != record.reason


def test_placement_asks_for_a_typed_gpu_or_a_whole_node(matrix):
    matrix.write_text(MATRIX + 'slurm: {partition: cpu, gpu_partition: gpu, account: lab, time: "30", options: ["--qos=high"]}\n')
    plan = session.plan(matrix)
    cpu, h100, _ = slurm.place(plan.cells, plan.matrix.slurm)
    assert cpu.sbatch_options(plan.matrix.slurm) == ["--partition=cpu", "--account=lab", "--time=30", "--exclusive", "--qos=high"]
    assert h100.sbatch_options(plan.matrix.slurm) == ["--partition=gpu", "--account=lab", "--time=30", "--exclusive",
                                                      "--gres=gpu:h100:1", "--qos=high"]
    matrix.write_text(MATRIX.replace('  gpu_type: ["h100", "h200"]\n', "") + "slurm: {exclusive: false}\n")
    plan = session.plan(matrix)
    cpu, gpu = slurm.place(plan.cells, plan.matrix.slurm)
    assert cpu.sbatch_options(plan.matrix.slurm) == ["--exclusive"]  # a CPU cell's timings need the whole node
    assert gpu.sbatch_options(plan.matrix.slurm) == ["--gres=gpu:1"]
    table = slurm.render_placement([cpu, gpu], {cpu.cell.id: [0, 1], gpu.cell.id: [0, 1]}, plan.matrix.slurm)
    assert table.startswith("placement: 4 Slurm job(s), one per cell and repeat; time limit the partition default (slurm.time)")
    assert "| gpu-cuda12.5-cudnn9.3-tf2.21-mnist |      2 | (default)   | --gres=gpu:1 | shared node |" in table


def test_the_gpus_slurm_granted_are_numbered_as_the_executor_sees_them(matrix):
    constrained = {"SLURM_JOB_GPUS": "1", "CUDA_VISIBLE_DEVICES": "0"}  # ConstrainDevices: the job's processes see GPU 1 as 0
    assert dispatch.granted_gpus(constrained, inside_job=False) == "1"  # the node's own, for an engine outside the cgroup
    assert dispatch.granted_gpus(constrained, inside_job=True) == "0"  # venv and local: as the job's processes see it
    for inside_job in (False, True):
        assert dispatch.granted_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}, inside_job) == "0,1"
        assert dispatch.granted_gpus({"CUDA_VISIBLE_DEVICES": "GPU-5f2c", "SLURM_JOB_GPUS": "2"}, inside_job) == "2"
        assert dispatch.granted_gpus({"CUDA_VISIBLE_DEVICES": "GPU-5f2c", "SLURM_JOB_GPUS": ""}, inside_job) is None
        assert dispatch.granted_gpus({}, inside_job) is None
    plan = session.plan(matrix)
    cpu, gpu = plan.cells[0], plan.cells[1]
    assert dispatch.gpus_for(gpu, "2,3") == "2"  # --exclusive grants every GPU of the node; a cell times one
    assert dispatch.gpus_for(cpu, "0,1") is None


def new_run(matrix):
    return records.new_run(matrix.parent / "results", matrix, {"dispatch": "slurm"})


def test_run_cell_writes_one_record_file_with_the_nodes_facts_and_leaves_results_jsonl_alone(matrix, monkeypatch, capsys):
    executor = FakeExecutor()
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: executor)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURMD_NODENAME", "node-7")
    monkeypatch.setenv("SLURM_JOB_GPUS", "3,4")
    run_folder = new_run(matrix)
    assert cli.main(["run-cell", "-f", str(matrix), "--cell", "gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist", "--repeat", "1",
                     "--run", str(run_folder)]) == 0
    record = records.read_one(run_folder / "jobs" / "gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist.1.77.json")
    assert (record.status, record.repeat, record.executor) == ("failed", 1, "fake")  # the fake has no GPU
    assert {key: record.environment[key] for key in ("host", "job_id", "gpu_devices")} == {"host": "node-7", "job_id": "77", "gpu_devices": "3"}
    assert record.environment["gpus_granted"] == "3,4"
    assert record.environment["host_cpu_cores"] == str(os.cpu_count())
    assert (run_folder / records.RESULTS_FILE).read_text() == ""
    assert sorted(p.name for p in (run_folder / "jobs").iterdir()) == ["gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist.1.77.json"]  # no work folder left
    assert executor.jobs[0].cell_id == "gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist"


def test_run_cell_with_venv_or_local_builds_that_executor_on_the_gpu_as_the_jobs_processes_see_it(matrix, monkeypatch):
    built = {}

    def local(wanted):
        built.update(python=wanted.python, gpu_devices=wanted.gpu_devices)
        return FakeExecutor()
    monkeypatch.setitem(executors.REGISTRY, "local", local)
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    monkeypatch.setenv("SLURM_JOB_GPUS", "3,4")  # the node's numbering
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # the job's, under ConstrainDevices
    run_folder = new_run(matrix)
    assert cli.main(["run-cell", "-f", str(matrix), "--cell", "gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist", "--run", str(run_folder),
                     "--executor", "local", "--python", "/shared/python3"]) == 0
    assert built == {"python": "/shared/python3", "gpu_devices": "0"}
    record = records.read_one(run_folder / "jobs" / "gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist.0.78.json")
    assert (record.environment["gpu_devices"], record.environment["gpus_granted"]) == ("0", "0,1")


def test_run_cell_with_local_excludes_a_cell_the_nodes_python_cannot_run_as_a_local_run_does(matrix, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "79")
    run_folder = new_run(matrix)
    assert cli.main(["run-cell", "-f", str(matrix), "--cell", "cpu-tf2.21-mnist", "--run", str(run_folder), "--executor", "local"]) == 0
    record = records.read_one(run_folder / "jobs" / "cpu-tf2.21-mnist.0.79.json")
    assert (record.status, record.executor, record.environment["job_id"]) == ("excluded", "local", "79")
    assert record.reason == f"{sys.executable} has no tensorflow (tensorflow==2.21.* asked for): the local executor installs nothing"


def test_run_cell_refuses_a_matrix_changed_since_submission_and_an_unknown_cell(matrix, capsys):
    run_folder = new_run(matrix)
    assert cli.main(["run-cell", "-f", str(matrix), "--cell", "cpu-tf2.21-mnist", "--run", str(run_folder), "--matrix-sha256", "0" * 64]) == 2
    assert "changed since this job was submitted" in capsys.readouterr().err
    assert cli.main(["run-cell", "-f", str(matrix), "--cell", "cpu-tf2.21-nothing", "--run", str(run_folder)]) == 2
    assert f"error: {matrix}: no cell 'cpu-tf2.21-nothing' in this matrix" in capsys.readouterr().err


def test_dispatch_refusals_are_one_line(matrix, capsys, monkeypatch, tmp_path):
    assert cli.main(["run", "--dispatch", "slurm", "--gpus", "0", "-f", str(matrix)]) == 2
    assert "--gpus: with --dispatch slurm each job uses the GPUs Slurm grants it" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm commands
    assert cli.main(["run", "--dispatch", "slurm", "-f", str(matrix), "--results", str(tmp_path / "results")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: sbatch not found: --dispatch slurm needs Slurm's client commands")
    assert not (tmp_path / "results").exists()  # nothing was started


class RefusingSlurm(slurm.Slurm):
    """A controller that answers and refuses every job: what the runner writes and records, without a cluster."""

    def __init__(self):
        self.submitted = []

    def check(self):
        return "25.05.0"

    def submit(self, arguments):
        self.submitted.append(arguments)
        return None, "no nodes"


def test_the_job_script_runs_the_cell_with_the_runs_executor_and_the_records_say_which(matrix):
    venv = slurm.NodeExecutor("venv", "/shared/python3")
    result = slurm.run(session.plan(matrix, "cpu"), matrix.parent / "results", None, 1, Progress(), node_executor=venv, slurm=RefusingSlurm())
    (script,) = (result.folder / "jobs").glob("*.sh")
    assert "run-cell -f " in script.read_text() and " --executor venv --python /shared/python3" in script.read_text()
    (record,) = result.records
    assert (record.status, record.executor) == ("failed", "venv")  # refused by Slurm: the submitting runner's own record
    host = records.manifest(result.folder)["host"]
    assert (host["node_executor"], host["node_python"]) == ("venv", "/shared/python3")

    docker = slurm.run(session.plan(matrix, "cpu"), matrix.parent / "docker", None, 1, Progress(), slurm=RefusingSlurm())
    (script,) = (docker.folder / "jobs").glob("*.sh")
    assert script.read_text().rstrip().endswith(" --executor docker")  # no --python: the image has its own
    assert "node_python" not in records.manifest(docker.folder)["host"]


def test_a_dispatched_run_is_resumed_with_the_executor_it_ran_its_jobs_with(matrix):
    plan = session.plan(matrix, "cpu")
    first = slurm.run(plan, matrix.parent / "results", None, 1, Progress(), slurm=RefusingSlurm())
    with pytest.raises(UserError) as refused:
        slurm.run(plan, matrix.parent / "results", "latest", 1, Progress(), node_executor=slurm.NodeExecutor("local", "/usr/bin/python3"),
                  slurm=RefusingSlurm())
    assert str(refused.value) == (f"--executor local --python /usr/bin/python3: run {first.folder.name} ran its jobs with "
                                  "--executor docker; resume it with the same")


def test_a_run_is_resumed_the_way_it_ran(matrix, tmp_path, capsys):
    local = session.run(session.plan(matrix, "cpu"), FakeExecutor(), tmp_path / "results", None, 1, Progress())
    with pytest.raises(UserError) as refused:
        slurm.run(session.plan(matrix, "cpu"), tmp_path / "results", local.folder.name, 1, Progress(), slurm=RefusingSlurm())
    assert str(refused.value) == (f"--dispatch slurm --resume {local.folder.name}: that run ran here, not dispatched; "
                                  f"resume it the way it ran: `python -m runner run --resume {local.folder.name}`")
    dispatched = slurm.run(session.plan(matrix, "cpu"), tmp_path / "results", None, 1, Progress(), slurm=RefusingSlurm())
    # Refused before any host is connected to: this one does not exist.
    assert cli.main(["run", "-f", str(matrix), "--results", str(tmp_path / "results"), "--resume", dispatched.folder.name,
                     "--host", "ssh://nobody@127.0.0.4:9"]) == 2
    assert (f"error: --dispatch ssh --resume {dispatched.folder.name}: that run ran with --dispatch slurm; "
            f"resume it the way it ran: `python -m runner run --dispatch slurm --resume {dispatched.folder.name}`") in capsys.readouterr().err


def test_venv_and_local_on_slurm_ask_the_python_before_anything_is_submitted(matrix, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "Slurm", RefusingSlurm)
    assert cli.main(["run", "--dispatch", "slurm", "--executor", "local", "--python", str(tmp_path / "nowhere"), "-f", str(matrix),
                     "--results", str(tmp_path / "results")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: cannot run the Python interpreter {tmp_path / 'nowhere'} (") and line.endswith("check --python")
    assert not (tmp_path / "results").exists()


def test_the_ledger_survives_a_line_cut_short(tmp_path):
    (tmp_path / "jobs").mkdir()
    dispatch.note_submitted(tmp_path, {"cell": "a", "repeat": 0, "job": "1"})
    with open(tmp_path / "jobs" / dispatch.LEDGER_FILE, "a") as ledger:
        ledger.write('{"cell": "b", "rep')  # a runner killed mid-write
    dispatch.note_submitted(tmp_path, {"cell": "c", "repeat": 0, "job": "3"})
    dispatch.note_submitted(tmp_path, {"cell": "a", "repeat": 0, "job": "4"})  # resubmitted
    assert dispatch.read_ledger(tmp_path) == {("a", 0): "4", ("c", 0): "3"}


def test_report_by_host_makes_one_table_per_node(matrix, capsys):
    run_folder = new_run(matrix)
    base = dict(reason="", axes={"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21"}, workload="mnist",
                executor="docker", started="2026-01-01T00:00:00+00:00", ended="2026-01-01T00:01:00+00:00")
    for cell, node in (("cpu-a", "n1"), ("cpu-b", "n2"), ("cpu-c", "n1")):
        records.append(run_folder, records.Record(cell_id=cell, status="failed", environment={"host": node}, **base))
    assert cli.main(["report", str(run_folder), "--by", "host"]) == 1
    out = capsys.readouterr().out
    assert out.index("host n1\n") < out.index("cpu-a") < out.index("cpu-c") < out.index("host n2\n") < out.index("cpu-b")
    assert dispatch.where(records.load(run_folder)).count("| n1 ") == 2


def test_the_resume_command_names_where_the_run_ran(matrix):
    """Printed the same way for every placement: pasted as printed, it resumes the run the way it ran."""
    for options, expected in ((["--dispatch", "slurm", "--executor", "venv", "--python", "/shared/py"],
                               "--dispatch slurm --executor venv --python /shared/py"),
                              (["--host", "ssh://a", "--host", "ssh://b"], "--host ssh://a --host ssh://b")):
        args = cli.parser().parse_args(["run", "-f", str(matrix), *options])
        assert invocation.resume_command(args, "RUN") == f"python -m runner run -f {matrix} {expected} --resume RUN"


class TwoNodeSlurm(RefusingSlurm):
    """A controller with nodes n0 and n1 that runs each job at once, on the node asked for (--nodelist) or else in turn,
    its record written as the job would write it: the submitting side's placement, without a cluster."""

    def __init__(self, cells):
        super().__init__()
        self.cells = {cell.id: cell for cell in cells}

    def submit(self, arguments):
        self.submitted.append(arguments)
        job_id = str(len(self.submitted))
        named = next(a for a in arguments if a.startswith("--nodelist="))[11:] if any(a.startswith("--nodelist=") for a in arguments) else ""
        cell_id, _, repeat = next(a for a in arguments if a.startswith("--job-name="))[len("--job-name=cudnn-matrix:"):].rpartition(".")
        run_folder = Path(arguments[-1]).parent.parent
        record = run_plan.record(self.cells[cell_id], "docker", "failed", "not measured: a fake node", repeat=int(repeat),
                                 where={"host": named or f"n{len(self.submitted) % 2}", "job_id": job_id})
        records.save(dispatch.record_path(run_folder, cell_id, int(repeat), job_id), record)
        return job_id, ""

    def states(self, job_ids):
        return {}


@pytest.mark.parametrize("placement", ["spread", "same-node"])
def test_placement_same_node_pins_each_comparison_group_to_the_node_its_first_job_ran_on(tmp_path, placement):
    path = tmp_path / "matrix.yaml"
    path.write_text(f'workloads: {{mnist: {{{SMALL}}}, other: {{{SMALL}}}}}\ncpu: {{tensorflow: ["2.20", "2.21"]}}\n'
                    f"build: {{ca_certificates: []}}\nplacement: {placement}\n")
    plan = session.plan(path)
    result = slurm.run(plan, tmp_path / "results", None, 3, Progress(), slurm=TwoNodeSlurm(plan.cells))
    nodes = {}
    for record in result.records:
        nodes.setdefault(record.workload, set()).add(record.environment["host"])
    assert all(len(used) == 1 for used in nodes.values()) == (placement == "same-node"), nodes
