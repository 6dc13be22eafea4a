"""The venv and local executors' decisions: venv names and reuse, local's version check, GPUs, the
CLI's choice of executor, local's exclusions in a run, the report's isolation note. Those that build
an executor ask a real interpreter what it has (a process, a quarter of a second): marked executors.

tests/test_local_runs.py runs the workload for real; tests/test_venv.py builds real venvs.
"""

import importlib.metadata
import io
import json
import re
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from host_runs import FAULTS, asking_for, local_executor, plan_of, run_cells, venv_executor
from runner import cli, executors
from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.executors import Prepared, PrepareFailure, Unsuitable
from runner.executors.local_executor import mismatches
from runner.executors.host_process import Interpreter, gpu_unavailable, visible_devices
from runner.executors.venv_executor import VENVS_VARIABLE, VenvExecutor, venv_name, venvs_folder
from runner.progress import Progress
from runner.report import render

SPEC = EnvironmentSpec(kind="cpu", name="cpu-tf2.21", base="python:3.11-slim", requirements=("tensorflow==2.21.*",),
                       variables=(("TF_CPP_MIN_LOG_LEVEL", "1"),))
PYTHON = Interpreter(executable="/usr/bin/python3", version="3.11.7", real_path="/usr/bin/python3.11", packages={})
PYYAML = importlib.metadata.version("pyyaml")


# venv: names and reuse

def test_a_venv_is_named_by_its_spec_and_a_hash_of_all_it_is_made_from():
    name = venv_name(SPEC, PYTHON)
    assert name.startswith("cpu-tf2.21-") and len(name) == len("cpu-tf2.21-") + 12
    assert venv_name(SPEC, PYTHON) == name  # unchanged: reused
    changes = [
        replace(SPEC, requirements=("tensorflow==2.20.*",)),
        replace(SPEC, libraries=("nvidia-cudnn-cu12==9.3.*",)),
        replace(SPEC, variables=()),
    ]
    assert len({name, *(venv_name(spec, PYTHON) for spec in changes)}) == 4
    assert venv_name(SPEC, replace(PYTHON, version="3.12.1")) != name
    assert venv_name(SPEC, replace(PYTHON, real_path="/opt/python3.11")) != name


def test_venvs_are_kept_in_the_folder_the_variable_names_else_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(VENVS_VARIABLE, str(tmp_path))
    assert venvs_folder() == tmp_path
    monkeypatch.delenv(VENVS_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert venvs_folder() == tmp_path / "cache" / "cudnn-matrix" / "venvs"


def pretend_pip(succeeds: bool):
    """In place of VenvExecutor.install: a 'venv' whose python is this one, or pip's failure."""
    def install(self, spec, folder):
        if not succeeds:
            return PrepareFailure(spec, "venv build failed: pip install -r requirements.txt exited with code 1: ERROR: no", "ERROR: no")
        (folder / "bin").mkdir()
        (folder / "bin" / "python").symlink_to(sys.executable)
        return None
    return install


@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_a_venv_is_built_once_and_then_up_to_date(tmp_path, monkeypatch):
    monkeypatch.setattr(VenvExecutor, "install", pretend_pip(succeeds=True))
    said = io.StringIO()
    executor = venv_executor(tmp_path, stream=said)
    first = executor.prepare(SPEC)
    assert isinstance(first, Prepared)
    named = tmp_path / "venvs" / venv_name(SPEC, executor.python)
    assert named.is_symlink() and Path(first.handle).parent.parent == named.resolve()
    assert f"cpu-tf2.21: building {named}" in said.getvalue()

    monkeypatch.setattr(VenvExecutor, "install", lambda *args: pytest.fail("rebuilt an up-to-date venv"))
    again = executor.prepare(SPEC)
    assert again.handle == first.handle
    assert f"cpu-tf2.21: up to date ({named})" in said.getvalue()
    provenance = dict(again.provenance)
    assert (provenance["isolation"], provenance["venv"], provenance["base_python"]) == ("none", str(named.resolve()), executor.python.executable)


@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_a_failed_build_leaves_nothing_that_could_be_taken_for_a_venv(tmp_path, monkeypatch):
    monkeypatch.setattr(VenvExecutor, "install", pretend_pip(succeeds=False))
    failure = venv_executor(tmp_path).prepare(SPEC)
    assert isinstance(failure, PrepareFailure) and failure.reason.startswith("venv build failed: ")
    assert list((tmp_path / "venvs").iterdir()) == []


@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_a_venv_another_runner_named_first_is_used_and_this_build_dropped(tmp_path, monkeypatch):
    other = venv_executor(tmp_path)  # a job on another node, sharing the venvs folder
    build = pretend_pip(succeeds=True)

    def install(self, spec, folder):
        build(self, spec, folder)
        if self is not other:
            other.prepare(spec)  # finishes the same venv while this build is still going
    monkeypatch.setattr(VenvExecutor, "install", install)
    said = io.StringIO()
    prepared = venv_executor(tmp_path, stream=said).prepare(SPEC)
    named = tmp_path / "venvs" / venv_name(SPEC, other.python)
    assert f"cpu-tf2.21: another runner finished {named} first: using it" in said.getvalue()
    assert isinstance(prepared, Prepared) and Path(prepared.handle).parent.parent == named.resolve()
    assert sorted(p.name for p in (tmp_path / "venvs").iterdir()) == sorted([named.name, named.resolve().name])  # this build is gone
    assert (named / "bin" / "python").exists()  # and the other's is whole


@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_a_build_cut_short_is_built_again(tmp_path, monkeypatch):
    executor = venv_executor(tmp_path)
    named = tmp_path / "venvs" / venv_name(SPEC, executor.python)
    leftover = tmp_path / "venvs" / f".{named.name}.killed"  # what a build killed with -9 leaves
    (leftover / "bin").mkdir(parents=True)
    monkeypatch.setattr(VenvExecutor, "install", pretend_pip(succeeds=True))
    prepared = executor.prepare(SPEC)
    assert named.resolve() != leftover and Path(prepared.handle).parent.parent == named.resolve()


@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_a_pinned_cudnn_comes_first_on_the_loader_path(tmp_path, monkeypatch):
    def install(self, spec, folder):
        pretend_pip(succeeds=True)(self, spec, folder)
        (folder / "lib" / "python3.11" / "site-packages" / "nvidia" / "cudnn" / "lib").mkdir(parents=True)
    monkeypatch.setattr(VenvExecutor, "install", install)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/local/cuda/lib64")
    pinned = replace(SPEC, libraries=("nvidia-cudnn-cu12==9.3.*",))
    prepared = venv_executor(tmp_path).prepare(pinned)
    (name, value), = prepared.variables
    assert name == "LD_LIBRARY_PATH" and value.endswith("/site-packages/nvidia/cudnn/lib:/usr/local/cuda/lib64")
    assert venv_executor(tmp_path).prepare(SPEC).variables == ()  # nothing pinned: the loader's path is the host's


# local: the version check

@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_local_runs_a_spec_the_interpreter_meets_and_records_what_it_has():
    major_minor = ".".join(PYYAML.split(".")[:2])
    spec = replace(SPEC, requirements=(f"PyYAML=={major_minor}.*",))
    prepared = local_executor().prepare(spec)
    assert isinstance(prepared, Prepared) and prepared.handle == sys.executable
    provenance = dict(prepared.provenance)
    assert provenance["isolation"] == "none" and provenance["installed"] == f"PyYAML=={PYYAML}"
    assert provenance["python_version"] == ".".join(map(str, sys.version_info[:3]))


@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_local_excludes_a_spec_naming_what_the_interpreter_has_instead():
    spec = replace(SPEC, requirements=("tensorflow==9.9.*", "pyyaml==1.0.*"))
    unsuitable = local_executor().prepare(spec)
    assert isinstance(unsuitable, Unsuitable)
    assert unsuitable.reason == (f"{sys.executable} has no tensorflow (tensorflow==9.9.* asked for), pyyaml {PYYAML} "
                                 "(pyyaml==1.0.* asked for): the local executor installs nothing")


@pytest.mark.parametrize("requirement, installed, met", [
    ("torch==2.11.*", "2.11.0+cpu", True),  # a local version is the version it names
    ("torch==2.11.*", "2.12.0", False),
    ("jax[cuda12]==0.8.*", "0.8.1", True),
    ("tensorflow==2.21.*", "2.21.0rc1", True),  # what is installed is what would run
    ("--extra-index-url https://download.pytorch.org/whl/cpu", None, True),  # names no package
])
def test_the_version_check_reads_requirements_as_pip_does(requirement, installed, met):
    packages = {} if installed is None else {"torch": installed, "jax": installed, "tensorflow": installed}
    assert (mismatches((requirement,), packages) == []) is met


def test_a_python_that_cannot_run_is_a_usage_error(tmp_path):
    with pytest.raises(UserError, match=r"cannot run the Python interpreter .*/nothing-here \(No such file or directory\): check --python"):
        local_executor(str(tmp_path / "nothing-here"))


def test_a_program_that_is_not_a_python_is_a_usage_error():
    with pytest.raises(UserError, match=r"^the Python interpreter /bin/true cannot say what it has installed \(exit code 0\)"):
        local_executor("/bin/true")


# GPUs without containers

@pytest.fixture
def nvidia_smi(tmp_path, monkeypatch):
    """A stand-in nvidia-smi on PATH that lists what the test writes."""
    def listing(output: str, exit_code: int = 0):
        script = tmp_path / "bin" / "nvidia-smi"
        script.parent.mkdir(exist_ok=True)
        script.write_text(f"#!/bin/sh\nprintf '{output}'\nexit {exit_code}\n")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    return listing


def test_gpu_cells_need_nvidia_smi_to_list_the_gpus_asked_for(nvidia_smi, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpu_unavailable("all").startswith("no GPU on this host: nvidia-smi")
    assert gpu_unavailable("none") is None  # none asked for: the workload's own check speaks
    nvidia_smi("GPU 0: NVIDIA H200 (UUID: GPU-1)\\nGPU 1: NVIDIA H200 (UUID: GPU-2)\\n")
    assert gpu_unavailable("all") is None and gpu_unavailable("0,1") is None
    assert gpu_unavailable("1,2") == "no GPU 2 on this host: nvidia-smi -L lists 2; check gpu.devices or --gpus"
    nvidia_smi("NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.\\n", exit_code=9)
    assert gpu_unavailable("all") == ("no GPU on this host: nvidia-smi -L lists none "
                                      "(NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.)")


def test_cpu_cells_see_no_gpu_and_gpu_cells_the_ones_asked_for():
    assert [visible_devices("cpu", devices) for devices in ("all", "0")] == ["", ""]
    assert [visible_devices("gpu", devices) for devices in ("all", "none", "0,1")] == [None, "", "0,1"]


# the CLI's choice

@pytest.mark.parametrize("argv, executor, python", [
    (["run"], "docker", sys.executable),
    (["run", "--executor", "venv"], "venv", sys.executable),
    (["build", "--executor", "local", "--python", "/opt/python/bin/python3"], "local", "/opt/python/bin/python3"),
    (["list", "--executor", "local"], "local", None),
])
def test_executor_and_python_flags(argv, executor, python):
    args = cli.parser().parse_args(argv)
    assert args.executor == executor and getattr(args, "python", None) == python


def test_an_unknown_executor_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.parser().parse_args(["run", "--executor", "podman"])
    assert exit.value.code == 2 and "invalid choice: 'podman'" in capsys.readouterr().err


@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_the_executor_is_built_by_name(tmp_path):
    plan = plan_of(tmp_path, FAULTS)
    args = cli.parser().parse_args(["run", "--executor", "local"])
    built = executors.make(args.executor, executors.Wanted(plan.matrix.build, plan.gpu_devices, args.python, Progress()))
    assert (built.name, built.isolation, built.python.executable) == ("local", "none", sys.executable)


def test_list_json_names_the_chosen_executor(tmp_path, capsys):
    plan_of(tmp_path, FAULTS)
    assert cli.main(["list", "--json", "-f", str(tmp_path / "matrix.yaml"), "--executor", "venv"]) == 0
    assert {row["executor"] for row in json.loads(capsys.readouterr().out)} == {"venv"}


def test_a_wrong_python_stops_the_run_before_a_run_folder_is_made(tmp_path, capsys):
    plan_of(tmp_path, FAULTS)
    code = cli.main(["run", "-f", str(tmp_path / "matrix.yaml"), "--executor", "local", "--python", str(tmp_path / "nothing-here"),
                     "--results", str(tmp_path / "results")])
    assert code == 2 and "check --python" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


# local's exclusions in a run

@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_local_excludes_the_cells_its_interpreter_cannot_run_and_runs_the_others(tmp_path):
    plan = asking_for(plan_of(tmp_path, FAULTS, "cpu-tf2.21-[cg]"), ("tensorflow==9.9.*",))
    records = run_cells(plan, local_executor())
    assert {r.status for r in records.values()} == {"excluded"}
    assert records["cpu-tf2.21-crash"].reason == f"{sys.executable} has no tensorflow (tensorflow==9.9.* asked for): the local executor installs nothing"



# the report

@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_the_report_says_when_cells_ran_without_isolation(tmp_path):
    records = run_cells(asking_for(plan_of(tmp_path, FAULTS, "crash"), ()), local_executor())
    assert render(list(records.values())).endswith(
        "\n\nCells run without isolation (executor local): other processes on the host may have shared their CPU, memory and GPU.")


@pytest.mark.executors  # asks a real interpreter what it has (a process)
def test_the_local_executor_does_not_exclude_a_gpu_cell_for_want_of_the_telemetrys_nvml_binding():
    from runner.environments import NVML_REQUIREMENT, EnvironmentSpec
    from runner.executors import Prepared

    pyyaml = ".".join(importlib.metadata.version("pyyaml").split(".")[:2])
    spec = EnvironmentSpec("gpu", "gpu-x", "", (f"pyyaml=={pyyaml}.*", NVML_REQUIREMENT))
    assert isinstance(local_executor().prepare(spec), Prepared)  # nvidia-ml-py is not in this venv: telemetry says so instead


def test_images_travel_only_with_the_docker_executor(tmp_path, capsys):
    assert cli.main(["build", "--executor", "venv", "--save", str(tmp_path / "images")]) == 2
    assert capsys.readouterr().err == "error: --save: images travel as archives with --executor docker; venv builds no image\n"


@pytest.mark.parametrize("index, said", [(None, "no readable images.json"), ("[5]", "expected a list of {archive, environment, image_id, tag}"),
                                         ('[{"environment": "e", "tag": "t", "image_id": "i", "archive": "../x.tar"}]', "an archive name with a folder")])
def test_a_folder_build_save_did_not_write_is_refused_in_one_line(tmp_path, index, said):
    from runner.executors import docker_archives

    if index is not None:
        (tmp_path / "images.json").write_text(index)
    with pytest.raises(UserError, match=re.escape(said)):
        docker_archives.read_index(tmp_path)


def test_a_save_folder_that_cannot_be_made_is_refused_before_anything_is_built(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert cli.main(["build", "-f", str(tmp_path / "missing.yaml"), "--save", str(tmp_path / "file" / "images")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --save {tmp_path / 'file' / 'images'}: cannot write there (")
