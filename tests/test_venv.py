"""Real virtualenvs, built with pip from the package index this host can reach (seconds each), and built twice at once."""

import io
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from host_runs import FAULTS, asking_for, plan_of, run_cells, venv_executor
from runner import locks
from runner.environments import EnvironmentSpec
from runner.executors import Prepared
from runner.executors.venv_executor import VenvExecutor, venv_name
from runner.records import latest_run

pytestmark = [pytest.mark.executors, pytest.mark.timeout(600)]


def test_a_venv_is_built_run_in_and_then_reused(tmp_path):
    said = io.StringIO()
    executor = venv_executor(tmp_path, stream=said)
    plan = asking_for(plan_of(tmp_path, FAULTS, "crash"), ("pyyaml",))
    records = run_cells(plan, executor)

    crash = records["cpu-tf2.21-crash"]
    assert (crash.status, crash.reason) == ("failed", "the workload exited with code 1: injected fault: crash")
    assert crash.environment["isolation"] == "none" and crash.environment["installed"].startswith("pyyaml==")
    assert crash.environment["python"] == f"{crash.environment['venv']}/bin/python"
    lock = locks.read(latest_run(plan.matrix.path.parent / "results"), "cpu-tf2.21", crash.environment["lock"])
    assert [pin.name for pin in lock.requirements] == ["pyyaml"]
    assert "Successfully installed" in said.getvalue()

    again = executor.prepare(plan.selected[0].environment)
    assert dict(again.provenance)["venv"] == crash.environment["venv"]
    assert said.getvalue().count("cpu-tf2.21: building ") == 1 and "cpu-tf2.21: up to date (" in said.getvalue()


def test_a_venv_is_locked_and_a_venv_built_from_its_lock_has_the_same_packages(tmp_path):
    executor = venv_executor(tmp_path)
    spec = EnvironmentSpec("cpu", "cpu-locked", "", ("requests>=2",))

    built = executor.prepare(spec)

    lock = built.lock
    assert {pin.name for pin in lock.requirements} >= {"requests", "urllib3", "idna", "certifi"} and lock.hashed
    assert dict(built.provenance)["lock"] == lock.digest and dict(lock.base)["python"] == executor.python.version
    assert locks.unavailable([lock]) == []  # every pin, and its wheel's hash, on PyPI

    again = executor.prepare(locks.locked_spec(spec, lock))

    assert dict(again.provenance)["venv"] != dict(built.provenance)["venv"]  # a venv of its own, built from the pins
    assert again.lock.requirements == lock.requirements and again.lock.digest == lock.digest
    withdrawn = locks.Lock("e", locks.INSTALLER, (), (locks.Pin("requests", "0.0.999"),))
    assert locks.unavailable([withdrawn, lock]) == ["requests==0.0.999"]


def test_a_requirement_pip_cannot_install_fails_the_cells_with_pips_words(tmp_path):
    records = run_cells(asking_for(plan_of(tmp_path, FAULTS, "crash"), ("nonexistent-package-xyz==1",)), venv_executor(tmp_path))
    crash = records["cpu-tf2.21-crash"]
    assert crash.status == "failed"
    assert crash.reason == ("venv build failed: pip install -r requirements.txt exited with code 1: "
                            "ERROR: No matching distribution found for nonexistent-package-xyz==1")
    assert "nonexistent-package-xyz" in crash.log_tail
    assert list((tmp_path / "venvs").iterdir()) == []  # nothing that could be taken for a venv


@pytest.mark.timeout(120)
def test_two_runners_building_one_venv_at_once_both_run_in_the_one_named_first(tmp_path, monkeypatch):
    # What jobs on two nodes sharing CUDNN_MATRIX_VENVS do: both build, both finish, then both try to name it.
    both_built = threading.Barrier(2, timeout=90)
    build = VenvExecutor.install

    def install(self, spec, folder):
        failure = build(self, spec, folder)
        both_built.wait()
        return failure
    monkeypatch.setattr(VenvExecutor, "install", install)
    spec = asking_for(plan_of(tmp_path, FAULTS, "crash"), ()).selected[0].environment  # a venv of this interpreter alone
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda executor: executor.prepare(spec), [venv_executor(tmp_path), venv_executor(tmp_path)])

    assert isinstance(first, Prepared) and isinstance(second, Prepared), (first, second)
    assert first.handle == second.handle
    named = tmp_path / "venvs" / venv_name(spec, venv_executor(tmp_path).python)
    assert sorted(p.name for p in (tmp_path / "venvs").iterdir()) == sorted([named.name, named.resolve().name])  # the other build is gone
    assert subprocess.run([first.handle, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True).stdout.strip() == str(named.resolve())
