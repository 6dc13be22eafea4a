import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def missing_part(what: str, variable: str, why: str):
    """A part of the machine a test needs is missing: a skip, or a failure where CI sets `variable` to require it."""
    if os.environ.get(variable):
        pytest.fail(f"no {what}, and {variable} is set: {why}")
    pytest.skip(f"no {what}: {why}")


@pytest.fixture(scope="session")
def docker_client():
    """A real engine, or a skip; CI sets CUDNN_MATRIX_REQUIRE_DOCKER so that a missing engine fails instead."""
    import docker  # here: docker-py takes most of a second to import, and most test processes never ask for an engine

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        missing_part("Docker engine", "CUDNN_MATRIX_REQUIRE_DOCKER", str(error))
    return client


@contextmanager
def small_disk(tmp_path: Path, size: str):
    """A real tmpfs of `size` (64k, 256k) mounted in tmp_path: a results disk that fills up. Root only, as in CI."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    folder = tmp_path / f"disk-{size}"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def runner(*args, cwd=REPO):
    """python -m runner as a user types it; returns the CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def seed_for_matrix_order(path, pattern=None) -> str:
    """A `run --seed` whose shuffle of the first round leaves the selected cells in the matrix's order: for a test that
    must know which cell runs first or last (a run's order within a round is otherwise a new seed's, see run_plan)."""
    from runner import run_plan, session

    cells = session.plan(path, pattern).selected
    return str(next(seed for seed in range(10_000)
                    if [cell for cell, _ in run_plan.interleaved(cells, {cell.id: range(1) for cell in cells}, seed)] == cells))


UNIT_TEST_SECONDS = 60  # fast tests get a tight limit; Docker tests keep pyproject's, which covers image builds


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("docker") is None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TEST_SECONDS))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real Slurm controller and three nodes on this machine (harness/slurm_cluster.py), or a skip.

    CI sets CUDNN_MATRIX_REQUIRE_SLURM so that a missing Slurm fails the tests instead.
    """
    from slurm_cluster import LocalCluster, missing

    why = missing()
    if why:
        missing_part("Slurm here", "CUDNN_MATRIX_REQUIRE_SLURM", why)
    cluster = LocalCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm(slurm_cluster, monkeypatch):
    """The cluster, idle, with this process's Slurm commands pointed at it."""
    slurm_cluster.settle()
    for name, value in slurm_cluster.environment.items():
        monkeypatch.setenv(name, value)
    return slurm_cluster
