"""A remote engine over tcp:// with TLS, for real: client certificates from DOCKER_CERT_PATH, the handshake, one cell."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from conftest import REPO, missing_part
from test_ssh import ONE_CELL, records_of, remove_data_volumes
from tls_engine import ENGINE_SOCKET, TlsEngine

pytestmark = pytest.mark.docker

@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory, docker_client):
    """This engine behind a TLS forwarder on 127.0.0.5 that asks for a client certificate, as `dockerd --tlsverify`."""
    if not Path(ENGINE_SOCKET).is_socket():
        missing_part("Docker engine socket", "CUDNN_MATRIX_REQUIRE_DOCKER", f"no {ENGINE_SOCKET} to forward to")
    folder = tmp_path_factory.mktemp("tls")
    engine = TlsEngine(folder)
    engine.start()
    yield engine
    engine.stop()
    remove_data_volumes(docker_client, tmp_path_factory.getbasetemp())


def run_with_certificates(tmp_path, url: str, certificates: Path, **variables: str) -> subprocess.CompletedProcess:
    # REQUESTS_CA_BUNDLE as behind a TLS-intercepting proxy: the engine's own CA (ca.pem) must still be the one checked.
    environment = {**os.environ, "DOCKER_CERT_PATH": str(certificates), "REQUESTS_CA_BUNDLE": certifi.where(),
                   "CURL_CA_BUNDLE": certifi.where(), **variables}
    return subprocess.run([sys.executable, "-m", "runner", "run", "-f", tmp_path / "matrix.yaml", "--results", tmp_path / "results",
                           "--host", url], cwd=REPO, capture_output=True, text=True, env=environment, timeout=540)


@pytest.mark.timeout(600)
def test_a_cell_runs_on_a_tls_engine_with_the_clis_certificates(tmp_path, tls_engine):
    (tmp_path / "matrix.yaml").write_text(ONE_CELL)
    run = run_with_certificates(tmp_path, tls_engine.url, tls_engine.client_certs)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"host {tls_engine.url}: " in run.stderr and "unreachable" not in run.stderr

    run_folder, loaded = records_of(tmp_path / "results")
    assert [(record["cell_id"], record["status"]) for record in loaded] == [("cpu-tf2.21-mnist", "ok")], loaded
    assert loaded[0]["environment"]["host"] == tls_engine.url and loaded[0]["environment"]["host_docker_engine"]
    manifest = json.loads((run_folder / "manifest.json").read_text())
    assert manifest["host"]["dispatch"] == "ssh" and list(manifest["host"]["hosts"]) == [tls_engine.url]


@pytest.mark.timeout(120)
def test_a_client_without_a_certificate_is_refused_in_one_line(tmp_path, tls_engine):
    (tmp_path / "matrix.yaml").write_text(ONE_CELL)
    run = run_with_certificates(tmp_path, tls_engine.url, tls_engine.ca_only)  # checks the engine, has no certificate to show
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith(f"host {tls_engine.url}: unreachable, its cells go to the other hosts (")
    assert lines[1:] == [f"error: none of the 1 host(s) can be reached: {tls_engine.url}"]
    assert not (tmp_path / "results").exists()


@pytest.mark.timeout(600)
def test_a_context_for_a_tls_engine_uses_the_certificates_stored_with_it(tmp_path, tls_engine):
    if shutil.which("docker") is None:
        missing_part("docker CLI", "CUDNN_MATRIX_REQUIRE_DOCKER", "docker context create needs it")
    config = tmp_path / "docker"
    certificates = tls_engine.client_certs
    made = subprocess.run(["docker", "context", "create", "tls-box", "--docker",
                           f"host={tls_engine.url},ca={certificates / 'ca.pem'},cert={certificates / 'cert.pem'},key={certificates / 'key.pem'}"],
                          capture_output=True, text=True, env={**os.environ, "DOCKER_CONFIG": str(config)}, timeout=60)
    assert made.returncode == 0, made.stderr
    (tmp_path / "matrix.yaml").write_text(ONE_CELL)
    run = run_with_certificates(tmp_path, "tls-box", tls_engine.ca_only, DOCKER_CONFIG=str(config))  # DOCKER_CERT_PATH plays no part
    assert run.returncode == 0, run.stderr[-3000:]
    _, loaded = records_of(tmp_path / "results")
    assert [(record["status"], record["environment"]["host"]) for record in loaded] == [("ok", "tls-box")]
