"""Which Docker engine to talk to, and how: ssh://, tcp:// with TLS, or a Docker context, as the docker CLI reads them.

Used wherever cells run on an engine that is not this machine's own (the SSH placement's hosts).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import docker
import docker.errors
import docker.tls
import requests

from runner.errors import UserError

ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)  # an engine gone or unreachable


def client_for(url: str) -> docker.DockerClient:
    """A client for one host: ssh:// through the system ssh, tcp:// with TLS, else a Docker context's endpoint."""
    if url.startswith("ssh://"):
        return docker.DockerClient(base_url=url, use_ssh_client=True, timeout=120)
    if url.startswith("tcp://"):
        return docker.DockerClient(base_url=url, tls=tls_config(), timeout=120)
    if url == "default":  # the CLI's own context: DOCKER_HOST, else the local engine
        return docker.from_env(use_ssh_client=os.environ.get("DOCKER_HOST", "").startswith("ssh://"), timeout=120)
    endpoint, tls = context_endpoint(url)
    return docker.DockerClient(base_url=endpoint, tls=tls, use_ssh_client=endpoint.startswith("ssh://"), timeout=120)


def docker_config() -> Path:
    """The docker CLI's configuration folder: DOCKER_CONFIG, else ~/.docker."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def context_endpoint(name: str) -> tuple[str, docker.tls.TLSConfig | bool]:
    """A Docker context's engine and TLS, read where `docker context create` writes them.

    Read here rather than through docker-py's ContextAPI: that looks for contexts beside a
    config.json, and without one (the CLI writes none until a login or `docker context use`)
    in ./contexts, so it misses contexts the CLI lists.
    """
    identity = hashlib.sha256(name.encode()).hexdigest()
    contexts = docker_config() / "contexts"
    try:
        endpoint = json.loads((contexts / "meta" / identity / "meta.json").read_text())["Endpoints"]["docker"]
        host = str(endpoint["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--host {name}: not ssh://user@host[:port], tcp://host:port, nor a Docker context in {contexts} (docker context ls)")
    certificates = contexts / "tls" / identity / "docker"
    skip_verify = bool(endpoint.get("SkipTLSVerify", False))
    if not host.startswith("tcp://") or not (skip_verify or any(certificates.glob("*.pem"))):
        return host, False  # as the CLI: a tcp:// context without TLS material speaks plain HTTP
    return host, _tls_from(certificates, verify=not skip_verify)


def tls_config() -> docker.tls.TLSConfig | bool:
    """The client certificate and CA in DOCKER_CERT_PATH (default ~/.docker), as the docker CLI takes them; else plain TLS."""
    return _tls_from(Path(os.environ.get("DOCKER_CERT_PATH") or docker_config()), verify=True)


def _tls_from(folder: Path, verify: bool) -> docker.tls.TLSConfig | bool:
    """cert.pem and key.pem: this client's certificate; ca.pem: what the engine's certificate is checked against (else the system's CAs)."""
    cert, key, ca = (folder / name for name in ("cert.pem", "key.pem", "ca.pem"))
    client_cert = (str(cert), str(key)) if cert.is_file() and key.is_file() else None
    if client_cert or ca.is_file():
        return EngineTLS(client_cert=client_cert, ca_cert=str(ca) if ca.is_file() else None, verify=verify)
    return True if verify else EngineTLS(verify=False)


class EngineTLS(docker.tls.TLSConfig):
    """docker-py's TLS settings, with the engine's CA kept where REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is set.

    requests lets those variables (set behind a TLS-intercepting proxy) replace a session's own CA
    on every request that names none, as docker-py's requests do: the engine's certificate would
    then be checked against the proxy's CA and refused.
    """

    def configure_client(self, client) -> None:
        super().configure_client(client)
        merge = client.merge_environment_settings

        def engine_ca_kept(url, proxies, stream, verify, cert):
            settings = merge(url, proxies, stream, verify, cert)
            if verify is None:
                settings["verify"] = client.verify
            return settings

        client.merge_environment_settings = engine_ca_kept
