"""A Docker engine of its own, for a "rented box" that has none of this machine's images.

Its own data root, state and socket, and its own containerd (dockerd starts one when no system one
answers), in a network namespace of its own: with `--bridge=none` beside this machine's engine a
second dockerd would delete that engine's docker0, so it gets a namespace where there is none.
The benchmark containers run without a network anyway. Entered with nsenter, the network alone:
`ip netns exec` would also remount /sys, hiding the cgroups dockerd needs. An sshd whose sessions have DOCKER_HOST
set to its socket (ssh_hosts.SshHosts.start_one) makes it a box reached over SSH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker


class BoxEngine:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cm-box-"))  # short: a unix socket's path has at most 107 bytes
        self.namespace = f"cm-box-{os.getpid()}"
        self.daemon: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.folder / 'docker.sock'}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=300)

    def start(self) -> None:
        subprocess.run(["ip", "netns", "add", self.namespace], check=True)
        subprocess.run(["ip", "netns", "exec", self.namespace, "ip", "link", "set", "lo", "up"], check=True)
        log = open(self.folder / "dockerd.log", "w")
        self.daemon = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.namespace}", "dockerd", "--data-root", str(self.folder / "data"),
             "--exec-root", str(self.folder / "exec"), "--pidfile", str(self.folder / "dockerd.pid"), "-H", self.url,
             "--bridge=none", "--iptables=false"], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(120):
            try:
                self.client().ping()
                return
            except docker.errors.DockerException:
                if self.daemon.poll() is not None:
                    break
                time.sleep(0.5)
        raise RuntimeError(f"the box's dockerd did not start: {(self.folder / 'dockerd.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=10)
        subprocess.run(["ip", "netns", "delete", self.namespace], check=False)
        subprocess.run(["umount", "--recursive", "--lazy", str(self.folder / "data")], check=False, capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)
