"""The connection to the Docker engine, with the reasons it can fail said in one line."""

from __future__ import annotations

import os

import docker
import docker.errors

from runner.errors import UserError


def connect() -> docker.DockerClient:
    endpoint = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        if "Permission denied" in str(error):
            raise UserError(f"permission denied on the Docker engine at {endpoint}: add yourself to the docker group or run as root")
        raise UserError(
            f"cannot reach the Docker engine at {endpoint}: start it (systemctl start docker, or dockerd) or point DOCKER_HOST at a running one"
        )
    return client
