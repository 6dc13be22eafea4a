"""Remote Docker hosts over SSH, for real: two sshd on loopback addresses, both reaching this engine."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import docker.errors
import pytest

from conftest import REPO, missing_part, runner
from runner.executors import docker_engine, docker_volumes
from runner.executors.docker_run import remove_run
from box_engine import BoxEngine
from ssh_hosts import ADDRESSES, BOX, UNREACHABLE, SshHosts, missing

pytestmark = pytest.mark.ssh

SMALL = "model: mnist, epochs: 2, train_images: 64, validation_images: 32"

SPLIT_MATRIX = f"""
workloads:
  mnist: {{{SMALL}}}
  again: {{{SMALL}, batch_size: 16}}
repeats: 2
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
"""

ONE_CELL = f"""
workloads:
  mnist: {{{SMALL}}}
repeats: 1
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
"""

HANG_MATRIX = f"""
workloads:
  mnist: {{{SMALL}}}
  stuck: {{{SMALL}, fault: hang, timeout_minutes: 0.5}}
repeats: 2
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
"""


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory, docker_client):
    """Both sshd, or a skip; CI sets CUDNN_MATRIX_REQUIRE_SSH so that a missing sshd fails instead."""
    why = missing()
    if why:
        missing_part("sshd here", "CUDNN_MATRIX_REQUIRE_SSH", why)
    hosts = SshHosts(tmp_path_factory.mktemp("ssh"))
    hosts.start()
    yield hosts
    hosts.stop()
    remove_data_volumes(docker_client, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def box(ssh_hosts):
    """A box reached over SSH whose Docker engine is its own (box_engine.py): it has none of this engine's images."""
    engine = BoxEngine()
    engine.start()
    ssh_hosts.start_one(BOX, docker_host=engine.url)
    yield ssh_hosts.url(BOX), engine
    ssh_hosts.kill(BOX)
    engine.stop()


def remove_data_volumes(client, base):
    """The data volumes these tests' runs made; others' are left alone, and so is one another runner uses now.

    A volume is named by its data's checksum: on a shared engine another test session's run of
    the same synthetic data may be using the volume these tests made.
    """
    for volume in client.volumes.list(filters={"label": "io.cudnn-matrix.kind=data"}):
        if (volume.attrs.get("Labels") or {}).get("io.cudnn-matrix.source", "").startswith(str(base)):
            try:
                volume.remove(force=True)
            except docker.errors.APIError as error:
                if error.status_code != 409:  # 409: in use
                    raise


def records_of(results):
    (run_folder,) = results.iterdir()
    return run_folder, [json.loads(line) for line in (run_folder / "results.jsonl").read_text().splitlines()]


@pytest.mark.timeout(600)
def test_a_matrix_split_over_two_hosts_merges_into_one_run(tmp_path, ssh_hosts):
    (tmp_path / "matrix.yaml").write_text(SPLIT_MATRIX + "hosts:\n" + "".join(f"  - {url}\n" for url in ssh_hosts.urls))
    unreachable = f"ssh://root@{UNREACHABLE}:{ssh_hosts.port}"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "runner", "run", "-f", tmp_path / "matrix.yaml", "--results", tmp_path / "results",
                          *(f"--host={url}" for url in [*ssh_hosts.urls, unreachable])],
                         cwd=REPO, capture_output=True, text=True, env=ssh_hosts.environment, timeout=540)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"host {unreachable}: unreachable, its cells go to the other hosts" in run.stderr
    assert "up to date (cudnn-matrix/cpu-tf2.21:" in run.stderr  # built on each host: here the same engine, so already there

    run_folder, loaded = records_of(tmp_path / "results")
    assert len(loaded) == 4 and {record["status"] for record in loaded} == {"ok"}
    hosts = {record["environment"]["host"] for record in loaded}
    assert hosts == set(ssh_hosts.urls), "both hosts measured cells"
    for record in loaded:
        environment = record["environment"]
        assert int(environment["host_cpu_cores"]) >= 1 and environment["host_docker_engine"]
        assert "runc" in environment["host_runtimes"]
        assert record["measurement"]["data"]["kind"] == "synthetic"  # the data came through the volume, marker and all
    manifest = json.loads((run_folder / "manifest.json").read_text())
    assert manifest["host"]["dispatch"] == "ssh" and set(manifest["host"]["hosts"]) == set(ssh_hosts.urls)
    # Cells ran side by side: one at a time per host, so the two hosts' cells overlap in time.
    spans = {host: [(r["started"], r["ended"]) for r in loaded if r["environment"]["host"] == host] for host in hosts}
    first, second = spans.values()
    assert any(a0 <= b1 and b0 <= a1 for a0, a1 in first for b0, b1 in second), spans
    print(f"split run: {time.monotonic() - started:.0f} s")

    again = subprocess.run([sys.executable, "-m", "runner", "run", "-f", tmp_path / "matrix.yaml", "--results", tmp_path / "again",
                            "-k", "*-mnist", "--repeats", "1", f"--host={ssh_hosts.urls[1]}"],
                           cwd=REPO, capture_output=True, text=True, env=ssh_hosts.environment, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"host {ssh_hosts.urls[1]}: data " in again.stderr and "already there (volume cudnn-matrix-data-" in again.stderr

    by_host = runner("report", run_folder, "--by", "host")
    assert by_host.returncode == 0, by_host.stderr
    for url in ssh_hosts.urls:
        assert f"host {url}" in by_host.stdout


@pytest.mark.timeout(600)
def test_a_host_that_dies_mid_run_fails_only_its_running_cell(tmp_path, ssh_hosts, docker_client):
    (tmp_path / "matrix.yaml").write_text(HANG_MATRIX)
    results = tmp_path / "results"
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", "-f", str(tmp_path / "matrix.yaml"), "--results", str(results),
                                *(f"--host={url}" for url in ssh_hosts.urls)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ssh_hosts.environment)
    victim = None
    seen = []
    try:
        deadline = time.monotonic() + 300
        for line in process.stderr:
            seen.append(line)
            if "cpu-tf2.21-stuck (repeat 1/2) on " in line and ": " not in line.split(" on ")[1]:
                victim = next(address for address in ADDRESSES if ssh_hosts.url(address) in line)
                break
            if time.monotonic() > deadline:
                break
        assert victim, "".join(seen)[-3000:]
        (run_folder,) = results.iterdir()
        for _ in range(120):  # until the hanging container is really there (this run's: the engine may be shared)
            if docker_client.containers.list(filters={"label": ["io.cudnn-matrix.cell=cpu-tf2.21-stuck", f"io.cudnn-matrix.run-id={run_folder.name}"]}):
                break
            time.sleep(0.25)
        ssh_hosts.kill(victim)
        _, rest = process.communicate(timeout=400)
        stderr = "".join(seen) + rest
    finally:
        if process.poll() is None:
            process.kill()
        for folder in results.iterdir() if results.exists() else []:
            remove_run(docker_client, folder)  # the dead "box" is this engine: its hung container is still here
        ssh_hosts.start_one(victim) if victim and victim not in ssh_hosts.daemons else None
    assert process.returncode == 1, stderr[-3000:]
    dead_url = ssh_hosts.url(victim)
    assert f"host {dead_url} stopped answering" in stderr

    _, loaded = records_of(results)
    assert len(loaded) == 4
    failed = [record for record in loaded if record["status"] == "failed"]
    died = [record for record in failed if "stopped answering" in record["reason"]]
    assert len(died) == 1 and died[0]["cell_id"] == "cpu-tf2.21-stuck" and died[0]["environment"]["host"] == dead_url
    # The rest ran on the host left: the mnist cells measured, the second stuck cell ended by its time limit.
    after = [record for record in loaded if record is not died[0] and record["started"] >= died[0]["started"]]
    assert all(record["environment"]["host"] != dead_url for record in after), loaded
    assert [record["status"] for record in loaded if record["cell_id"] == "cpu-tf2.21-mnist"] == ["ok", "ok"]
    others = [record for record in failed if record is not died[0]]
    assert [record["reason"] for record in others] == ["exceeded its time limit of 0.5 min (workloads.stuck.timeout_minutes)"]


@pytest.mark.timeout(300)
def test_a_docker_context_names_a_host(tmp_path, ssh_hosts):
    """Made with the docker CLI in a DOCKER_CONFIG of its own, which holds no config.json."""
    environment = {**ssh_hosts.environment, "DOCKER_CONFIG": str(tmp_path / "docker")}
    made = subprocess.run(["docker", "context", "create", "box2", "--docker", f"host={ssh_hosts.urls[1]}"],
                          capture_output=True, text=True, env=environment, timeout=60)
    assert made.returncode == 0, made.stderr
    (tmp_path / "matrix.yaml").write_text(ONE_CELL)

    def run(host):
        return subprocess.run([sys.executable, "-m", "runner", "run", "-f", tmp_path / "matrix.yaml", "--results", tmp_path / "results",
                               "--host", host], cwd=REPO, capture_output=True, text=True, env=environment, timeout=240)

    try:
        through_context = run("box2")
        unknown = run("box9")
    finally:
        subprocess.run(["docker", "context", "rm", "--force", "box2"], capture_output=True, env=environment, timeout=60)
    assert through_context.returncode == 0, through_context.stderr[-3000:]
    _, loaded = records_of(tmp_path / "results")
    assert [(record["status"], record["environment"]["host"]) for record in loaded] == [("ok", "box2")]
    assert unknown.returncode == 2 and unknown.stderr.splitlines() == [
        f"error: --host box9: not ssh://user@host[:port], tcp://host:port, nor a Docker context in {tmp_path / 'docker' / 'contexts'} "
        "(docker context ls)"]


@pytest.mark.timeout(900)
def test_ctrl_c_stops_every_host_and_resume_runs_only_the_rest(tmp_path, ssh_hosts, docker_client):
    urls = "hosts:\n" + "".join(f"  - {url}\n" for url in ssh_hosts.urls)
    (tmp_path / "matrix.yaml").write_text(SPLIT_MATRIX + urls)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "runner", "run", "--dispatch", "ssh", "-f", str(tmp_path / "matrix.yaml"), "--results", str(results)]
    log = tmp_path / "interrupted.log"
    with open(log, "w") as output:
        # A session of its own, signalled as a whole: what Ctrl-C in a terminal does (the ssh children get it too).
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=ssh_hosts.environment,
                                   start_new_session=True)
    run_folder = None
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and process.poll() is None:
            folders = list(results.iterdir()) if results.exists() else []
            if folders and (folders[0] / "results.jsonl").read_text().strip():  # a run finished ...
                run_folder = folders[0]
                # ... and another is going: its container is there (this run's: the engine is shared)
                if docker_client.containers.list(filters={"label": f"io.cudnn-matrix.run-id={run_folder.name}"}):
                    break
            time.sleep(0.2)
        assert run_folder and process.poll() is None, "no moment with a run finished and one going\n" + log.read_text()[-3000:]
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=180) == 130, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        left = docker_client.containers.list(all=True, filters={"label": f"io.cudnn-matrix.run-id={run_folder.name}"}) if run_folder else []
        for folder in results.iterdir() if results.exists() else []:
            remove_run(docker_client, folder)
    stderr = log.read_text()
    assert not left, f"containers of the interrupted run left behind: {[c.name for c in left]}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and f"--resume {run_folder.name}` runs the rest" in stderr
    assert json.loads((run_folder / "manifest.json").read_text())["state"] == "interrupted"
    _, kept = records_of(results)
    assert kept and len(kept) < 4 and {record["status"] for record in kept} == {"ok"}, kept  # nothing failed by the interrupt

    resumed = subprocess.run([*command, "--resume", run_folder.name], cwd=REPO, capture_output=True, text=True,
                             env=ssh_hosts.environment, timeout=540)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"run {run_folder.name}: {4 - len(kept)} run(s) over 2 host(s)" in resumed.stderr
    _, loaded = records_of(results)
    assert loaded[:len(kept)] == kept, "the finished records are kept as they were"
    assert {record["status"] for record in loaded} == {"ok"}
    assert Counter((record["cell_id"], record["repeat"]) for record in loaded) == {
        (cell, repeat): 1 for cell in ("cpu-tf2.21-mnist", "cpu-tf2.21-again") for repeat in (0, 1)}
    assert json.loads((run_folder / "manifest.json").read_text())["state"] == "finished"


class SetAfter:
    """An event that becomes set once asked `blocks` times: Ctrl-C in the middle of a data copy, between two blocks."""

    def __init__(self, blocks):
        self.left = blocks

    def is_set(self):
        self.left -= 1
        return self.left < 0


@pytest.mark.timeout(300)
def test_an_interrupted_data_copy_leaves_no_volume_on_the_host(tmp_path, ssh_hosts, docker_client, monkeypatch):
    from runner.dispatch import ssh

    monkeypatch.setenv("PATH", ssh_hosts.environment["PATH"])  # the ssh wrapper with the test keys
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "images.bin").write_bytes(os.urandom(3 << 20))  # a checksum of its own: a volume no one else has
    images = docker_client.images.list(filters={"label": "io.cudnn-matrix.kind"})
    assert images, "no cudnn-matrix image in this engine to create the copying container from"
    host = ssh.Host(ssh_hosts.urls[0], docker_engine.client_for(ssh_hosts.urls[0]), {}, False, None)
    name = docker_volumes.VOLUME_PREFIX + docker_volumes.checksum(folder)[:16]
    try:
        with pytest.raises(docker_volumes.Stopped):
            host.volume(folder, images[0].id, print, SetAfter(2))
        assert not docker_client.volumes.list(filters={"name": name}), "a half-filled volume under the data's checksum"
        assert not docker_client.containers.list(all=True, filters={"volume": name})
        assert host.volume(folder, images[0].id, print) == name  # the next copy starts afresh, and completes
    finally:
        for volume in docker_client.volumes.list(filters={"name": name}):
            volume.remove(force=True)


@pytest.mark.timeout(300)
def test_a_volume_whose_copy_was_cut_short_is_filled_again(tmp_path, ssh_hosts, docker_client, monkeypatch):
    """A runner killed outright (kill -9) during the copy leaves a volume under the data's checksum, without its marker."""
    from runner.dispatch import ssh

    monkeypatch.setenv("PATH", ssh_hosts.environment["PATH"])
    folder = tmp_path / "data"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "1.jpg").write_bytes(os.urandom(1 << 16))  # a checksum of its own: a volume no one else has
    images = docker_client.images.list(filters={"label": "io.cudnn-matrix.kind"})
    assert images, "no cudnn-matrix image in this engine to create the copying container from"
    name = docker_volumes.VOLUME_PREFIX + docker_volumes.checksum(folder)[:16]
    docker_client.volumes.create(name)  # empty: the kill came before any byte
    host = ssh.Host(ssh_hosts.urls[0], docker_engine.client_for(ssh_hosts.urls[0]), {}, False, None)
    said = []
    try:
        assert host.volume(folder, images[0].id, said.append) == name
        assert f"host {host.url}: volume {name} holds a copy cut short (a runner killed during it): copying again" in said
        listing = docker_client.containers.run(images[0].id, entrypoint=["ls", "-A", "/data", "/data/cats"], remove=True,
                                               volumes={name: {"bind": "/data", "mode": "ro"}}).decode().split()
        assert {docker_volumes.COMPLETE_MARKER, "cats", "1.jpg"} <= set(listing)
        again = ssh.Host(ssh_hosts.urls[0], docker_engine.client_for(ssh_hosts.urls[0]), {}, False, None)
        said.clear()
        assert again.volume(folder, images[0].id, said.append) == name
        assert said == [f"host {again.url}: data {folder} already there (volume {name})"]
    finally:
        for volume in docker_client.volumes.list(filters={"name": name}):
            volume.remove(force=True)


JAX_CELL = """
workloads:
  mnist: {model: mnist, epochs: 2, train_images: 64, validation_images: 32}
repeats: 1
cpu:
  backend: [jax]
build:
  offline_base: true
"""


@pytest.mark.timeout(900)
def test_a_box_without_the_image_is_shipped_it_instead_of_building_it(tmp_path, ssh_hosts, box, docker_client):
    url, engine = box
    (tmp_path / "matrix.yaml").write_text(JAX_CELL)

    shipped = subprocess.run([sys.executable, "-m", "runner", "run", "-f", tmp_path / "matrix.yaml", "--results", tmp_path / "shipped",
                              "--host", url, "--ship-images"], cwd=REPO, capture_output=True, text=True, env=ssh_hosts.environment,
                             timeout=840)

    assert shipped.returncode == 0, shipped.stderr[-3000:]
    (record,) = records_of(tmp_path / "shipped")[1]
    image = record["environment"]["image"]
    assert f"cpu-jax0.10: shipping {image} to host {url}" in shipped.stderr and f"building {image}" not in shipped.stderr
    assert record["status"] == "ok" and record["environment"]["host"] == url and record["environment"]["shipped_from"]
    assert engine.client().images.get(image).id == docker_client.images.get(image).id == record["environment"]["image_id"]
    assert len(engine.client().images.list()) == 1  # the image alone: no base was pulled or made there

