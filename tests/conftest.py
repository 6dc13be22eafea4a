import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def docker_client():
    """A real engine, or a skip; CI sets CUDNN_MATRIX_REQUIRE_DOCKER so that a missing engine fails instead."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        if os.environ.get("CUDNN_MATRIX_REQUIRE_DOCKER"):
            pytest.fail(f"no Docker engine, and CUDNN_MATRIX_REQUIRE_DOCKER is set: {error}")
        pytest.skip(f"no Docker engine: {error}")
    return client


def runner(*args, cwd=REPO):
    """python -m runner as a user types it; returns the CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=cwd, capture_output=True, text=True)


UNIT_TEST_SECONDS = 60  # fast tests get a tight limit; Docker tests keep pyproject's, which covers image builds


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("docker") is None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TEST_SECONDS))
