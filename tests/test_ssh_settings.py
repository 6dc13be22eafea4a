"""Remote hosts without a remote: hosts: in the matrix, --host, and what is refused before anything connects."""

import _thread
import dataclasses
import hashlib
import io
import json
import tarfile
import threading
import time
from pathlib import Path

import docker.errors
import pytest

from runner import cli
from runner.config import load_matrix
from runner.dispatch import ssh
from runner.executors import docker_engine, docker_volumes

MATRIX = 'workloads: {mnist: {}}\ncpu: {tensorflow: ["2.21"]}\n'


@pytest.fixture
def matrix(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(MATRIX)
    return path


def test_hosts_are_read_as_written(matrix):
    assert load_matrix(matrix).hosts == ()
    matrix.write_text(MATRIX + "hosts: [ssh://me@box1, 'ssh://root@10.0.0.2:2222', 'tcp://box3:2376', my-context]\n")
    assert load_matrix(matrix).hosts == ("ssh://me@box1", "ssh://root@10.0.0.2:2222", "tcp://box3:2376", "my-context")


@pytest.mark.parametrize("hosts, message", [
    ("ssh://box1", "hosts: expected a list"),
    ("['ssh://me@box1; rm -rf /']", "hosts[0]: expected ssh://user@host[:port], tcp://host:port (a port from 1 to 65535) or a Docker context name"),
    ("['tcp://box3']", "hosts[0]: expected ssh://user@host[:port]"),
    ("['tcp://box3:99999']", "hosts[0]: expected ssh://user@host[:port]"),
    ("['ssh://me@box3:0']", "hosts[0]: expected ssh://user@host[:port]"),
    ("['tcp://[::1']", "hosts[0]: expected ssh://user@host[:port]"),
    ("['ssh://-oProxyCommand@box3']", "hosts[0]: expected ssh://user@host[:port]"),
    ("['ssh://me@-oProxyCommand']", "hosts[0]: expected ssh://user@host[:port]"),
    ("[ssh://me@box1, ssh://me@box1]", "hosts[1]: expected each host once, got 'ssh://me@box1' a second time"),
])
def test_bad_hosts_are_one_line_naming_the_key(matrix, capsys, hosts, message):
    matrix.write_text(MATRIX + f"hosts: {hosts}\n")
    assert cli.main(["list", "-f", str(matrix)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--dispatch", "ssh"], "--dispatch ssh: no hosts: list them under hosts: in"),
    (["--dispatch", "slurm", "--host", "ssh://me@box1"], "--host: remote Docker hosts are --dispatch ssh"),
    (["--host", "ssh://me@box1", "--executor", "venv"], "--executor venv: remote hosts run their cells with Docker"),
    (["--host", "ssh://me@box1", "--gpus", "0"], "--gpus: with --dispatch ssh"),
])
def test_refused_before_anything_connects(matrix, tmp_path, capsys, arguments, message):
    assert cli.main(["run", "-f", str(matrix), "--results", str(tmp_path / "results"), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


# Loopback addresses only: on a runner that did not check --host, these would have been tried.
@pytest.mark.parametrize("hosts, shown", [
    (["tcp://127.0.0.4:99999"], "the text 'tcp://127.0.0.4:99999'"),
    (["ssh://me@127.0.0.4:0"], "the text 'ssh://me@127.0.0.4:0'"),
    (["tcp://[::1"], "the text 'tcp://[::1'"),
    (["ssh://-oStrictHostKeyChecking@127.0.0.4"], "the text 'ssh://-oStrictHostKeyChecking@127.0.0.4'"),
    (["ssh://me@127.0.0.4:٢٢"], "the text 'ssh://me@127.0.0.4:٢٢'"),
    (["ssh://me@127.0.0.4 -p 22"], "the text 'ssh://me@127.0.0.4 -p 22'"),
])
def test_host_on_the_command_line_is_checked_as_hosts_are(matrix, tmp_path, capsys, hosts, shown):
    arguments = [part for url in hosts for part in ("--host", url)]
    assert cli.main(["run", "-f", str(matrix), "--results", str(tmp_path / "results"), *arguments]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --host: expected ssh://user@host[:port], tcp://host:port (a port from 1 to 65535) or a Docker context name, got {shown}\n"
    assert not (tmp_path / "results").exists()


def test_a_host_given_twice_on_the_command_line_is_refused(matrix, tmp_path, capsys):
    assert cli.main(["run", "-f", str(matrix), "--results", str(tmp_path / "results"), "--host", "ssh://me@box1", "--host", "ssh://me@box1"]) == 2
    assert capsys.readouterr().err == "error: --host: expected each host once, got 'ssh://me@box1' a second time\n"


def test_no_host_answering_is_one_line_and_no_run(matrix, tmp_path, capsys):
    # Nothing listens on this loopback port: refused at once, without ssh.
    assert cli.main(["run", "-f", str(matrix), "--results", str(tmp_path / "results"), "--host", "tcp://127.0.0.4:9"]) == 2
    err = capsys.readouterr().err
    assert "host tcp://127.0.0.4:9: unreachable, its cells go to the other hosts" in err
    assert "error: none of the 1 host(s) can be reached: tcp://127.0.0.4:9" in err
    assert not (tmp_path / "results").exists()


def test_gpu_cells_go_only_to_hosts_with_the_nvidia_runtime_with_their_whole_round(tmp_path):
    from fake_executor import FakeExecutor
    from runner import session

    (tmp_path / "matrix.yaml").write_text(GPU_MATRIX.replace("workloads: {", "workloads: {other: {model: mnist, epochs: 2}, "))
    selected = session.plan(tmp_path / "matrix.yaml").selected
    gpu, cpu, other = (next(c for c in selected if (c.kind, c.workload.name) == which)
                       for which in (("gpu", "mnist"), ("cpu", "mnist"), ("cpu", "other")))
    runs = ssh.Runs([(gpu, 0), (cpu, 0), (other, 0)], tmp_path, print)
    # mnist's round has a GPU cell: a host without a GPU takes the other workload's round, and not mnist's CPU cell.
    assert runs.take(fake_host("ssh://a", False, FakeExecutor()))[0] is other
    assert runs.take(fake_host("ssh://b", False, FakeExecutor())) is None  # mnist's round waits for a host that can run it all
    with_gpu = fake_host("ssh://c", True, FakeExecutor())
    assert [runs.take(with_gpu)[0], runs.take(with_gpu)[0]] == [gpu, cpu]


def test_a_host_with_nothing_to_take_waits_while_a_gpu_cell_may_yet_be_given_back(tmp_path):
    import threading

    from fake_executor import FakeExecutor
    from runner import session

    (tmp_path / "matrix.yaml").write_text(GPU_MATRIX)
    gpu = next(cell for cell in session.plan(tmp_path / "matrix.yaml").selected if cell.kind == "gpu")
    runs = ssh.Runs([(gpu, 0)], tmp_path, print)
    looking, other = fake_host("ssh://a", True, FakeExecutor()), fake_host("ssh://b", True, FakeExecutor())
    assert runs.take(looking)[0] is gpu  # its GPUs not yet looked at: the run is unsettled
    taken = []
    waiting = threading.Thread(target=lambda: taken.append(runs.take(other)))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive(), "the other host must not give up while the run may come back"
    runs.give_back(looking, gpu, 0)
    waiting.join(5)
    assert taken and taken[0][0] is gpu


def test_the_data_checksum_follows_content_and_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"one")
    first = docker_volumes.checksum(tmp_path / "a")
    assert docker_volumes.checksum(tmp_path / "a") == first
    (tmp_path / "a" / "x.bin").write_bytes(b"two")
    assert docker_volumes.checksum(tmp_path / "a") != first
    (tmp_path / "a" / "x.bin").rename(tmp_path / "a" / "y.bin")
    assert len({first, docker_volumes.checksum(tmp_path / "a")}) == 2


def test_tcp_hosts_take_the_docker_clis_certificates(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    assert docker_engine.tls_config() is True  # no client certificate: plain TLS
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("-")
    config = docker_engine.tls_config()
    assert config.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")) and config.ca_cert == str(tmp_path / "ca.pem")
    assert config.verify is True


def test_a_ca_alone_checks_the_engine_without_a_client_certificate(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    (tmp_path / "ca.pem").write_text("-")
    config = docker_engine.tls_config()
    assert config.cert is None and config.ca_cert == str(tmp_path / "ca.pem") and config.verify is True


def write_context(config: Path, name: str, host: str, skip_verify: bool = False) -> Path:
    """A context as `docker context create NAME --docker host=HOST` writes it (docker CLI 20 to 28)."""
    identity = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / identity
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {},
                                                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_verify}}}))
    return config / "contexts" / "tls" / identity / "docker"


def test_a_docker_context_is_found_in_docker_config_without_a_config_json(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # docker-py's own ContextAPI would look in ./contexts here, and miss
    write_context(tmp_path, "box1", "ssh://me@box1:2222")
    assert docker_engine.context_endpoint("box1") == ("ssh://me@box1:2222", False)
    write_context(tmp_path, "plain", "tcp://box2:2375")
    assert docker_engine.context_endpoint("plain") == ("tcp://box2:2375", False)  # no TLS material: plain HTTP, as the CLI
    certificates = write_context(tmp_path, "tls", "tcp://box3:2376")
    certificates.mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (certificates / name).write_text("-")
    host, tls = docker_engine.context_endpoint("tls")
    assert host == "tcp://box3:2376" and tls.cert == (str(certificates / "cert.pem"), str(certificates / "key.pem"))
    assert tls.ca_cert == str(certificates / "ca.pem") and tls.verify is True


def test_an_unknown_context_is_one_line(matrix, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    assert cli.main(["run", "-f", str(matrix), "--results", str(tmp_path / "results"), "--host", "no-such-box"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: --host no-such-box: not ssh://user@host[:port], tcp://host:port, nor a Docker context "
                                f"in {tmp_path / 'docker' / 'contexts'} (docker context ls)"]
    assert not (tmp_path / "results").exists()


class FillClient:
    """An engine that takes the data's tar as a request body would: read in blocks until it ends."""

    def __init__(self, read_before=None, keep=True):
        self.read_before = read_before or (lambda: None)  # called before each block is read
        self.received = b""
        self.sent = 0
        self.removed = []
        self.marker = None
        client = self

        class Container:
            def put_archive(self, path, data):
                if isinstance(data, bytes):  # the completion marker, a few hundred bytes, after the data
                    client.marker = tarfile.open(fileobj=io.BytesIO(data)).getnames()
                    return True
                assert path == docker_volumes.FILL_MOUNT and len(data) > 0  # a stream with a length
                client.read_before()
                while block := data.read(1 << 16):
                    client.sent += len(block)
                    client.received += block if keep else b""
                    client.read_before()
                return True

            def remove(self, force):
                client.removed.append("container")

        class Volume:
            def remove(self, force):
                client.removed.append("volume")

        class Containers:
            def create(self, image, **settings):
                return Container()

        class Volumes:
            def get(self, name):
                raise docker.errors.NotFound("no such volume")

            def create(self, name, labels):
                return Volume()

        self.containers, self.volumes = Containers(), Volumes()


def data_folder(tmp_path):
    folder = tmp_path / "data"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "1.jpg").write_bytes(bytes(range(256)) * 100)
    (folder / "marker.json").write_text("{}")
    return folder


def test_the_data_goes_to_the_volume_as_a_stream(tmp_path):
    folder = data_folder(tmp_path)
    client = FillClient()
    host = ssh.Host("ssh://a", client, {}, False, None)
    assert host.volume(folder, "image", print).startswith(docker_volumes.VOLUME_PREFIX)
    with tarfile.open(fileobj=io.BytesIO(client.received)) as tar:
        assert sorted(tar.getnames()) == ["cats", "cats/1.jpg", "marker.json"]
        assert tar.extractfile("cats/1.jpg").read() == bytes(range(256)) * 100
    assert client.marker == [docker_volumes.COMPLETE_MARKER]  # sent once the data was all in
    assert client.removed == ["container"]


def test_the_data_copy_holds_no_copy_of_the_data_in_memory(tmp_path):
    import tracemalloc

    folder = tmp_path / "data"
    folder.mkdir()
    for number in range(4):
        (folder / f"{number}.bin").write_bytes(bytes(8 << 20))
    client = FillClient(keep=False)
    tracemalloc.start()
    try:
        docker_volumes.data_volume(client, folder, "image", print)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.sent > 32 << 20 and peak < 4 << 20, f"{peak / 2**20:.1f} MiB held to send {client.sent / 2**20:.0f} MiB"


def test_an_interrupt_during_the_data_copy_takes_the_volume_with_it(tmp_path):
    stop = threading.Event()
    client = FillClient(read_before=lambda: stop.set() if len(client.received) >= 4096 else None)
    host = ssh.Host("ssh://a", client, {}, False, None)
    with pytest.raises(docker_volumes.Stopped):
        host.volume(data_folder(tmp_path), "image", print, stop)
    assert client.removed == ["container", "volume"] and not host.volumes and client.marker is None


class FakeClient:
    """Just enough of an engine for the host threads: it answers, and every data volume is already there, whole."""

    class volumes:
        @staticmethod
        def get(name):
            return name

    class containers:
        class Container:
            def get_archive(self, path):
                assert path == f"{docker_volumes.FILL_MOUNT}/{docker_volumes.COMPLETE_MARKER}"
                return iter([b""]), {}

            def remove(self, force):
                pass

        @classmethod
        def create(cls, image, **settings):
            return cls.Container()

    def ping(self):
        return True


def fake_host(url, gpu, executor):
    facts = {"host": url, "host_cpu_cores": "4"}
    return ssh.Host(url, FakeClient(), facts, gpu, executor, no_gpu="" if gpu else f"host {url}: no nvidia runtime in its Docker engine")


GPU_MATRIX = """
workloads: {mnist: {epochs: 2, train_images: 64, validation_images: 32}}
cpu: {tensorflow: ["2.21"]}
gpu: {cuda: ["12.5"], cudnn: ["9.3"], tensorflow: ["2.21"]}
build: {ca_certificates: []}
"""


def test_a_gpu_host_whose_containers_get_no_gpu_gives_its_gpu_cells_up(tmp_path):
    from fake_executor import FakeExecutor
    from runner import records, session
    from runner.progress import Progress

    (tmp_path / "matrix.yaml").write_text(GPU_MATRIX)
    plan = session.plan(tmp_path / "matrix.yaml")
    hosts = [fake_host("ssh://a", True, FakeExecutor(no_gpu="could not select device driver")), fake_host("ssh://b", False, FakeExecutor())]
    run_folder = records.new_run(tmp_path / "results", plan.matrix.path, {})
    assert ssh.run_on(hosts, plan, run_folder, 2, Progress()) == 0
    loaded = records.load(run_folder)
    assert sorted((r.cell_id, r.repeat, r.status) for r in loaded) == [
        ("cpu-tf2.21-mnist", 0, "ok"), ("cpu-tf2.21-mnist", 1, "ok"),
        ("gpu-cuda12.5-cudnn9.3-tf2.21-mnist", 0, "skipped"), ("gpu-cuda12.5-cudnn9.3-tf2.21-mnist", 1, "skipped")]
    skipped = [r for r in loaded if r.status == "skipped"]
    assert skipped[0].reason == ("no host can run GPU cells: host ssh://a: could not select device driver; "
                                 "host ssh://b: no nvidia runtime in its Docker engine")
    assert {r.environment["host"] for r in loaded if r.status == "ok"} <= {"ssh://a", "ssh://b"}
    assert all(r.environment["host_cpu_cores"] == "4" for r in loaded if r.status == "ok")


def gpu_host(url, names, devices="all"):
    """A host whose containers see these GPUs (nvidia-smi's names): a fake at the executor seam, as FakeExecutor is."""
    from fake_executor import FakeExecutor
    from runner.executors import Prepared

    class Executor(FakeExecutor):
        gpu_devices = devices
        given: list[tuple[str, str]] = []  # (cell, GPUs), shared by every copy on_devices makes

        def gpu_inventory(self, probe: Prepared):
            return None, [{"index": str(index), "name": name, "driver": "580.65.06", "memory": "81559 MiB"} for index, name in enumerate(names)]

        def on_devices(self, chosen):
            copy = Executor()
            copy.gpu_devices, copy.jobs = chosen, self.jobs
            return copy

        def run(self, cell, job, prepared, limits, run_folder):
            self.given.append((cell.id, self.gpu_devices))
            return super().run(cell, dataclasses.replace(job, expect_gpu=False), prepared, limits, run_folder)

    Executor.given = []
    return fake_host(url, bool(names), Executor())


TYPED_MATRIX = GPU_MATRIX.replace('tensorflow: ["2.21"]}\nbuild', 'tensorflow: ["2.21"], gpu_type: [TYPES]}\nbuild')


def run_typed(tmp_path, types, hosts):
    from runner import records, session
    from runner.progress import Progress

    (tmp_path / "matrix.yaml").write_text(TYPED_MATRIX.replace("TYPES", types))
    plan = session.plan(tmp_path / "matrix.yaml")
    run_folder = records.new_run(tmp_path / "results", plan.matrix.path, {})
    failed = ssh.run_on(hosts, plan, run_folder, 1, Progress())
    return failed, {record.cell_id: record for record in records.load(run_folder)}


def test_a_cell_of_a_gpu_type_runs_only_on_a_host_with_that_gpu_and_only_on_that_gpu(tmp_path):
    mixed = gpu_host("ssh://mixed", ["NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"])
    h200 = gpu_host("ssh://h200", ["NVIDIA H200"])
    failed, loaded = run_typed(tmp_path, "h100, h200", [h200, mixed, gpu_host("ssh://cpu", [])])
    assert failed == 0
    h100_cell, h200_cell = loaded["gpu-h100-cuda12.5-cudnn9.3-tf2.21-mnist"], loaded["gpu-h200-cuda12.5-cudnn9.3-tf2.21-mnist"]
    assert (h100_cell.status, h100_cell.environment["host"], h100_cell.environment["gpu_devices"]) == ("ok", "ssh://mixed", "1")
    assert (h200_cell.status, h200_cell.environment["host"], h200_cell.environment["gpu_devices"]) == ("ok", "ssh://h200", "0")
    assert h100_cell.environment["host_gpus"] == ("0: NVIDIA A100-SXM4-80GB (driver 580.65.06); "
                                                  "1: NVIDIA H100 80GB HBM3 (driver 580.65.06)")
    assert h100_cell.environment["host_gpu_count"] == "2"
    assert ("gpu-h100-cuda12.5-cudnn9.3-tf2.21-mnist", "1") in mixed.executor.given  # the H100, not the A100 beside it
    assert loaded["cpu-tf2.21-mnist"].status == "ok"


def test_a_gpu_type_no_host_has_is_skipped_naming_what_each_host_has(tmp_path):
    hosts = [gpu_host("ssh://a100", ["NVIDIA A100-SXM4-80GB"]), gpu_host("ssh://cpu", [])]
    failed, loaded = run_typed(tmp_path, "a100, b200", hosts)
    assert failed == 0
    assert loaded["gpu-a100-cuda12.5-cudnn9.3-tf2.21-mnist"].status == "ok"
    skipped = loaded["gpu-b200-cuda12.5-cudnn9.3-tf2.21-mnist"]
    assert skipped.status == "skipped"
    assert skipped.reason == ("no host has a GPU of type b200: host ssh://a100: 0: NVIDIA A100-SXM4-80GB (driver 580.65.06); "
                              "host ssh://cpu: no nvidia runtime in its Docker engine")


def test_gpu_devices_limit_which_gpus_a_typed_cell_may_be_given(tmp_path):
    pinned = gpu_host("ssh://pinned", ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"], devices="0,2")
    _, loaded = run_typed(tmp_path, "h100", [pinned])
    assert loaded["gpu-h100-cuda12.5-cudnn9.3-tf2.21-mnist"].environment["gpu_devices"] == "0,2"


def test_nvidia_smis_rows_are_read_and_anything_else_is_left_out():
    from runner.host import describe_gpus, parse_gpus

    output = "0, NVIDIA H200, 580.65.06, 143771 MiB\n1, NVIDIA H200, 580.65.06, 143771 MiB\nsh: 1: nvidia-smi: not found\n"
    found = parse_gpus(output)
    assert [gpu["name"] for gpu in found] == ["NVIDIA H200", "NVIDIA H200"] and found[1]["memory"] == "143771 MiB"
    assert describe_gpus(found) == "0: NVIDIA H200 (driver 580.65.06); 1: NVIDIA H200 (driver 580.65.06)"
    assert parse_gpus("") == [] and describe_gpus([]) == "none"


class InterruptedExecutor:
    """Its first run interrupts the runner (Ctrl-C reaches the main thread) and ends only when its container is removed."""

    def __init__(self, base):
        self.base = base
        self.started = []
        self.cleaned = threading.Event()

    def __getattr__(self, name):
        return getattr(self.base, name)

    def run(self, cell, job, prepared, limits, run_folder):
        from runner.outcome import RawRun

        self.started.append(cell.id)
        if len(self.started) == 1:
            return self.base.run(cell, job, prepared, limits, run_folder)
        _thread.interrupt_main()
        assert self.cleaned.wait(30), "the interrupted run never removed this run's containers"
        return RawRun(None, "", error="its container was removed while it ran (by docker rm or `clean --force`)")

    def cleanup(self, run_folder):
        self.cleaned.set()


def test_an_interrupt_ends_every_hosts_thread_and_keeps_only_finished_runs(tmp_path):
    from fake_executor import FakeExecutor
    from runner import records, session
    from runner.progress import Progress

    (tmp_path / "matrix.yaml").write_text(GPU_MATRIX.replace("gpu: {", "#"))
    plan = session.plan(tmp_path / "matrix.yaml")
    executor = InterruptedExecutor(FakeExecutor())
    hosts = [fake_host("ssh://a", False, executor)]
    run_folder = records.new_run(tmp_path / "results", plan.matrix.path, {})
    with pytest.raises(KeyboardInterrupt):
        ssh.run_on(hosts, plan, run_folder, 3, Progress())
    for _ in range(200):  # listed until it has really ended (is_alive() may lie after an interrupted join: see ssh.Worker)
        if not [thread for thread in threading.enumerate() if thread.name.startswith("host ")]:
            break
        time.sleep(0.01)
    else:
        pytest.fail("a host's thread outlived the run")
    assert executor.started == ["cpu-tf2.21-mnist"] * 2, "no run started after the interrupt"
    assert [(r.cell_id, r.repeat, r.status) for r in records.load(run_folder)] == [("cpu-tf2.21-mnist", 0, "ok")]


def test_resume_runs_the_repeats_left_by_number(tmp_path):
    """Hosts finish out of order: an interrupted run may hold repeat 1 of a cell and not repeat 0."""
    from fake_executor import FakeExecutor
    from runner import records, session
    from runner.progress import Progress

    (tmp_path / "matrix.yaml").write_text(GPU_MATRIX.replace("gpu: {", "#"))
    plan = session.plan(tmp_path / "matrix.yaml")
    hosts = [fake_host("ssh://a", False, FakeExecutor())]
    run_folder = records.new_run(tmp_path / "results", plan.matrix.path, {})
    assert ssh.run_on(hosts, plan, run_folder, 1, Progress()) == 0
    (only,) = records.load(run_folder)
    (run_folder / "results.jsonl").write_text(only.to_json().replace('"repeat": 0', '"repeat": 1') + "\n")
    assert ssh.run_on(hosts, plan, run_folder, 3, Progress()) == 0
    assert sorted(record.repeat for record in records.load(run_folder)) == [0, 1, 2]


def test_a_resume_first_removes_what_the_dead_runner_left_on_every_host(tmp_path, monkeypatch, capsys):
    """Whoever holds a run owns its containers on every host: an orphan of a kill -9 would train beside the timed cells."""
    from fake_executor import FakeExecutor
    from runner import records, session
    from runner.progress import Progress

    class Orphaned(FakeExecutor):
        def cleanup(self, run_folder):
            super().cleanup(run_folder)
            return 0 if self.jobs else 1  # one container left running, found before any cell of the resume runs

    (tmp_path / "matrix.yaml").write_text(GPU_MATRIX.replace("gpu: {", "#"))
    executors = {"ssh://a": Orphaned(), "ssh://b": Orphaned()}
    monkeypatch.setattr(ssh, "connect_all", lambda urls, matrix, progress, ship_images: [fake_host(url, False, executors[url]) for url in urls])
    plan = session.plan(tmp_path / "matrix.yaml")
    run_folder = records.new_run(tmp_path / "results", plan.matrix.path, {"dispatch": "ssh"})

    ssh.run(plan, ["ssh://a", "ssh://b"], tmp_path / "results", run_folder.name, 1, Progress())

    err = capsys.readouterr().err
    for url, executor in executors.items():
        assert executor.cleaned == [run_folder.name]
        assert f"run {run_folder.name}: stopped and removed 1 container(s) on host {url} that its earlier runner left running" in err


def test_hosts_taking_runs_in_turn_run_every_cell_of_a_group_as_often(tmp_path):
    """Before, two hosts taking an interleaved A B A B ... in turn ran one cell each: the hosts' difference read as the cells'."""
    from collections import Counter

    from fake_executor import FakeExecutor
    from runner import run_plan, session

    (tmp_path / "matrix.yaml").write_text(GPU_MATRIX.replace('"2.21"]}\ngpu', '"2.20", "2.21"]}\ngpu'))
    cells = [cell for cell in session.plan(tmp_path / "matrix.yaml").selected if cell.kind == "cpu"]
    runs = ssh.Runs(run_plan.interleaved(cells, {cell.id: range(6) for cell in cells}, seed=4), tmp_path, print)
    hosts = [fake_host(url, False, FakeExecutor()) for url in ("ssh://a", "ssh://b")]
    ran = {host.url: Counter() for host in hosts}
    for turn in range(12):
        cell, _, _ = runs.take(hosts[turn % 2])
        ran[hosts[turn % 2].url][cell.id] += 1
    assert [sorted(counts.values()) for counts in ran.values()] == [[3, 3], [3, 3]]
    assert runs.take(hosts[0]) is None


def test_placement_same_node_keeps_each_comparison_group_on_the_host_that_took_it_first(tmp_path):
    from fake_executor import FakeExecutor
    from runner import run_plan, session

    (tmp_path / "matrix.yaml").write_text(GPU_MATRIX.replace("workloads: {", "workloads: {other: {model: mnist, epochs: 2}, "))
    cells = [cell for cell in session.plan(tmp_path / "matrix.yaml").selected if cell.kind == "cpu"]
    hosts = [fake_host(url, False, FakeExecutor()) for url in ("ssh://a", "ssh://b")]
    runs = ssh.Runs(run_plan.interleaved(cells, {cell.id: range(3) for cell in cells}, seed=2), tmp_path, print, hosts=hosts, same_node=True)
    ran = {host.url: set() for host in hosts}
    for turn in range(6):
        ran[hosts[turn % 2].url].add(runs.take(hosts[turn % 2])[0].workload.name)
    assert sorted(map(sorted, ran.values())) == [["mnist"], ["other"]]
    hosts[0].dead = "host ssh://a: gone"  # a dead host's groups go to the others
    runs = ssh.Runs([(cell, 0) for cell in cells], tmp_path, print, hosts=hosts, same_node=True)
    runs.pinned = {run_plan.group_of(cells[0]): "ssh://a"}
    assert runs.take(hosts[1]) is not None
