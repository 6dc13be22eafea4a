import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


@pytest.fixture
def package_index(monkeypatch):
    """A package index on loopback answering PEP 691 JSON: numpy 2.1.3 and protobuf 5.29.1, with the fake executor's hashes.

    name -> (its one version, the sha256 and size of its one file): a test changes what the index has.
    """
    projects = {"numpy": ("2.1.3", "a" * 64, 15 * 2**20), "protobuf": ("5.29.1", "b" * 64, 2**20)}

    class Index(BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.strip("/").split("/")[-1]
            if name not in projects:
                self.send_error(404)
                return
            version, sha256, size = projects[name]
            body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "versions": [version],
                               "files": [{"filename": f"{name}-{version}.whl", "hashes": {"sha256": sha256}, "size": size}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple/")
    yield projects
    server.shutdown()
