"""Two "rented boxes" on this machine: an sshd on 127.0.0.2 and one on 127.0.0.3, both reaching this Docker engine.

Keys are made with ssh-keygen in the test's folder. The runner's `ssh` (what docker-py's
use_ssh_client runs) finds them through an ssh config file: a two-line `ssh` wrapper
first on PATH passes `-F config`, as a user's ~/.ssh/config would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ADDRESSES = ("127.0.0.2", "127.0.0.3")
UNREACHABLE = "127.0.0.4"  # loopback, where nothing listens
BOX = "127.0.0.5"  # a box with a Docker engine of its own (box_engine.py), started by the tests that need one


def missing() -> str | None:
    for tool in ("/usr/sbin/sshd", "ssh", "ssh-keygen", "docker"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install openssh-server)"
    if os.geteuid() != 0:
        return "sshd for other addresses needs root"
    return None


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class SshHosts:
    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port(ADDRESSES[0])
        self.daemons: dict[str, subprocess.Popen] = {}
        self.bin = folder / "bin"

    @property
    def urls(self) -> list[str]:
        return [self.url(address) for address in ADDRESSES]

    def url(self, address: str) -> str:
        return f"ssh://root@{address}:{self.port}"

    @property
    def environment(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}"}

    def start(self) -> None:
        folder = self.folder
        for key in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
        (folder / "ssh_config").write_text(
            f"Host {' '.join(ADDRESSES)} {UNREACHABLE} {BOX}\n  IdentityFile {folder / 'user_key'}\n  IdentitiesOnly yes\n"
            "  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 5\n")
        self.bin.mkdir()
        (self.bin / "ssh").write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {folder / "ssh_config"} "$@"\n')
        (self.bin / "ssh").chmod(0o755)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        for address in ADDRESSES:
            self.start_one(address)

    def start_one(self, address: str, docker_host: str = "") -> None:
        """An sshd on the address; its sessions reach this machine's engine, or the one at docker_host."""
        config = self.folder / f"sshd-{address}.conf"
        config.write_text((f"SetEnv DOCKER_HOST={docker_host}\n" if docker_host else "") +
            f"ListenAddress {address}\nHostKey {self.folder / 'host_key'}\nAuthorizedKeysFile {self.folder / 'user_key.pub'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
            f"PidFile {self.folder / f'sshd-{address}.pid'}\n")
        log = open(self.folder / f"sshd-{address}.log", "w")
        self.daemons[address] = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-p", str(self.port)],
                                                 stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                socket.create_connection((address, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd on {address}:{self.port} did not start: {(self.folder / f'sshd-{address}.log').read_text()[-2000:]}")

    def kill(self, address: str) -> None:
        """The box dies: its sshd and every session it started (a plain kill of the listener leaves sessions up)."""
        daemon = self.daemons.pop(address, None)
        if daemon is None:
            return
        for pid in [*descendants(daemon.pid), daemon.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        daemon.wait(timeout=10)

    def stop(self) -> None:
        for address in list(self.daemons):
            self.kill(address)


def descendants(pid: int) -> list[int]:
    """The processes below pid, deepest first, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []

    def walk(node: int) -> None:
        for child in children.get(node, []):
            walk(child)
            found.append(child)

    walk(pid)
    return found
