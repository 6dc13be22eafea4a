"""Failures are data, interrupts lose nothing, containers hold no privileges: shown with real containers."""

import io
import json
import signal
import subprocess
import sys
import time

import docker.errors
import pytest

from conftest import REPO, runner, seed_for_matrix_order
from fake_executor import fault_workloads
from runner.config import Limits
from runner.executors.docker_run import hardening

pytestmark = pytest.mark.docker

SMALL = "model: mnist, epochs: 2, train_images: 64, validation_images: 32"

FAULTS_MATRIX = fault_workloads("mnist") + """
repeats: 1
cpu:
  tensorflow: ["2.21", "2.999"]
limits:
  memory: 1500m
build:
  offline_base: true
"""


def records_of(results):
    (run_folder,) = results.iterdir()
    lines = (run_folder / "results.jsonl").read_text().splitlines()
    return run_folder, {record["cell_id"]: record for record in map(json.loads, lines)}


def test_each_failure_becomes_a_record_and_the_other_cells_still_run(tmp_path, docker_client):
    (tmp_path / "matrix.yaml").write_text(FAULTS_MATRIX)
    run = runner("run", "-f", tmp_path / "matrix.yaml", "--results", tmp_path / "results")
    assert run.returncode == 1, run.stderr[-3000:]
    run_folder, records = records_of(tmp_path / "results")
    assert len(records) == 10

    assert records["cpu-tf2.21-mnist"]["status"] == "ok"
    reasons = {cell: record["reason"] for cell, record in records.items() if record["status"] == "failed"}
    assert reasons["cpu-tf2.21-crash"] == "the workload exited with code 1: injected fault: crash"
    assert reasons["cpu-tf2.21-garbage"] == "the workload printed no readable result record"
    assert reasons["cpu-tf2.21-hang"] == "exceeded its time limit of 0.1 min (workloads.hang.timeout_minutes)"
    assert reasons["cpu-tf2.21-memory"] == "killed for running out of memory (limit 1500m, limits.memory)"
    for workload in ("mnist", "crash", "garbage", "hang", "memory"):
        assert reasons[f"cpu-tf2.999-{workload}"].startswith("image build failed: ")
    assert "tensorflow==2.999" in records["cpu-tf2.999-crash"]["log_tail"]
    assert "injected fault: crash" in records["cpu-tf2.21-crash"]["log_tail"]
    assert docker_client.containers.list(all=True, filters={"label": f"io.cudnn-matrix.run-id={run_folder.name}"}) == []


INTERRUPT_MATRIX = f"""
workloads:
  mnist: {{{SMALL}}}
  stuck: {{{SMALL}, fault: hang}}
repeats: 1
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
"""


def test_sigint_removes_containers_keeps_finished_records_and_resume_runs_the_rest(tmp_path, docker_client):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(INTERRUPT_MATRIX)
    results = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "-f", str(matrix), "--results", str(results), "--seed", seed_for_matrix_order(matrix)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # the seed runs mnist first, then the cell that hangs
    deadline = time.monotonic() + 600
    for line in process.stderr:
        if line.startswith("[2/2] cpu-tf2.21-stuck") or time.monotonic() > deadline:
            break
    for _ in range(60):  # until the hanging container is really there
        if docker_client.containers.list(filters={"label": "io.cudnn-matrix.cell=cpu-tf2.21-stuck"}):
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "interrupted: finished cells are in" in stderr

    run_folder, records = records_of(results)
    assert list(records) == ["cpu-tf2.21-mnist"] and records["cpu-tf2.21-mnist"]["status"] == "ok"
    assert json.loads((run_folder / "manifest.json").read_text())["state"] == "interrupted"
    assert docker_client.containers.list(all=True, filters={"label": f"io.cudnn-matrix.run-id={run_folder.name}"}) == []

    matrix.write_text(INTERRUPT_MATRIX.replace("fault: hang", "fault: crash"))
    resumed = runner("run", "-f", matrix, "--results", results, "--resume", run_folder.name, "--force")  # the matrix changed
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    assert "1 cell(s) to run, 1 already done" in resumed.stderr
    _, records = records_of(results)
    assert [records[cell]["status"] for cell in ("cpu-tf2.21-mnist", "cpu-tf2.21-stuck")] == ["ok", "failed"]
    assert json.loads((run_folder / "manifest.json").read_text())["state"] == "finished"


PROBE = """
import json, os, socket
facts = {"uid": os.getuid()}
try:
    open("/opt/written-by-benchmark", "w")
    facts["root_writable"] = True
except OSError:
    facts["root_writable"] = False
try:
    socket.create_connection(("1.1.1.1", 80), timeout=3)
    facts["network"] = True
except OSError:
    facts["network"] = False
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
facts["cap_eff"] = status["CapEff"].strip()
facts["no_new_privs"] = status["NoNewPrivs"].strip()
open("/tmp/scratch", "w").write("ok")
try:
    open("/home/bench/.keras-cache", "w").write("ok")
    facts["home_writable"] = True
except OSError:
    facts["home_writable"] = False
try:
    open("/data/new", "w")
    facts["data_writable"] = True
except OSError:
    facts["data_writable"] = False
print(json.dumps(facts))
"""


def test_the_benchmark_container_is_unprivileged_offline_and_read_only(tmp_path, docker_client):
    (tmp_path / "matrix.yaml").write_text(INTERRUPT_MATRIX)
    built = runner("build", "-f", tmp_path / "matrix.yaml")
    assert built.returncode == 0, built.stderr[-3000:]
    image = docker_client.images.list("cudnn-matrix/cpu-tf2.21")[0]
    data = tmp_path / "data"
    data.mkdir()
    options = hardening(str(data), Limits(memory="1g", pids=256))
    output = docker_client.containers.run(image.id, entrypoint=["python", "-c", PROBE], remove=True, **options)
    facts = json.loads(output.decode().strip().splitlines()[-1])
    assert facts == {
        "uid": 10001,
        "root_writable": False,
        "network": False,
        "cap_eff": "0000000000000000",
        "no_new_privs": "1",
        "data_writable": False,
        "home_writable": True,
    }


def test_clean_removes_what_cudnn_matrix_left_under_its_results_and_nothing_else(tmp_path, docker_client):
    (tmp_path / "matrix.yaml").write_text(INTERRUPT_MATRIX)
    assert runner("build", "-f", tmp_path / "matrix.yaml").returncode == 0
    image = docker_client.images.list("cudnn-matrix/cpu-tf2.21")[0]

    def left_by_a_run_in(results):
        return docker_client.containers.create(image.id, labels={"io.cudnn-matrix.run-id": "20260101-000000",
                                                                 "io.cudnn-matrix.run-folder": str(results / "20260101-000000")})

    leftover = left_by_a_run_in(tmp_path / "results")
    another_users = left_by_a_run_in(tmp_path / "someone-else" / "results")  # the same engine, another results folder
    stranger = docker_client.containers.create(image.id)
    try:
        cleaned = runner("clean", "--results", tmp_path / "results")
        assert cleaned.returncode == 0, cleaned.stderr
        remaining = {container.id for container in docker_client.containers.list(all=True)}
        assert leftover.id not in remaining
        assert another_users.id in remaining and stranger.id in remaining
        assert "removed 1 container(s)" in cleaned.stderr and "container(s) of runs outside" in cleaned.stderr
    finally:
        for container in (leftover, another_users, stranger):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


def test_clean_images_removes_only_the_images_of_the_matrixs_cells(tmp_path, docker_client):
    bases = docker_client.images.list("cudnn-matrix/base")
    if not bases:
        pytest.skip("no cudnn-matrix base image on this engine to label test images with")

    def image_of(environment):  # made in a moment: the base with an environment's labels, never pip
        dockerfile = f"FROM {bases[0].id}\nLABEL io.cudnn-matrix.kind=cpu io.cudnn-matrix.environment={environment}\n"
        image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"cudnn-matrix-test/{environment}:clean", rm=True)
        return image

    mine, another_matrixs = image_of("cpu-tf2.998"), image_of("cpu-tf2.997")
    (tmp_path / "matrix.yaml").write_text('workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: ["2.998"]}\nbuild: {ca_certificates: []}\n')
    try:
        cleaned = runner("clean", "--images", "-f", tmp_path / "matrix.yaml", "--results", tmp_path / "results")
        assert cleaned.returncode == 0, cleaned.stderr
        remaining = {image.id for image in docker_client.images.list()}
        assert mine.id not in remaining and another_matrixs.id in remaining and bases[0].id in remaining
        assert "and 1 image(s) made by cudnn-matrix" in cleaned.stderr
    finally:
        for image in (mine, another_matrixs):
            try:
                docker_client.images.remove(image.id, force=True)
            except docker.errors.ImageNotFound:
                pass


LIFECYCLE_MATRIX = f"""
workloads:
  stuck: {{{SMALL}, fault: hang, timeout_minutes: 10}}
  mnist: {{{SMALL}}}
repeats: 1
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
"""


def start_run(matrix, results, *extra):
    return subprocess.Popen([sys.executable, "-m", "runner", "run", "-f", str(matrix), "--results", str(results), *extra],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def container_of(docker_client, results, cell_id, deadline_seconds=600):
    """The running container of this cell in the one run under `results`: never another run's on the same engine."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        runs = [folder.name for folder in results.iterdir()] if results.is_dir() else []
        labels = [f"io.cudnn-matrix.cell={cell_id}"] + [f"io.cudnn-matrix.run-id={run}" for run in runs]
        found = docker_client.containers.list(filters={"label": labels}) if len(runs) == 1 else []
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no container for {cell_id} within {deadline_seconds} s")


def test_a_run_stopped_in_its_first_cell_is_resumable_and_clean_spares_live_runs(tmp_path, docker_client):
    matrix, results = tmp_path / "matrix.yaml", tmp_path / "results"
    matrix.write_text(LIFECYCLE_MATRIX)
    process = start_run(matrix, results, "--seed", seed_for_matrix_order(matrix))  # the cell that hangs first: its first cell
    stuck = container_of(docker_client, results, "cpu-tf2.21-stuck")

    cleaned = runner("clean", "--results", results)  # the run is alive: its container stays
    (run_folder,) = results.iterdir()
    assert cleaned.returncode == 0 and "left the containers of" in cleaned.stderr and run_folder.name in cleaned.stderr
    stuck.reload()
    assert stuck.status == "running"

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert f"`python -m runner run -f {matrix} --results {results} --resume {run_folder.name}` runs the rest" in stderr
    assert (run_folder / "results.jsonl").read_text() == ""
    assert json.loads((run_folder / "manifest.json").read_text())["state"] == "interrupted"

    killed = start_run(matrix, results, "--resume", run_folder.name)
    orphan = container_of(docker_client, results, "cpu-tf2.21-stuck")
    killed.kill()  # kill -9: no handler runs, the container is left behind
    killed.communicate(timeout=60)
    cleaned = runner("clean", "--results", results)
    assert cleaned.returncode == 0 and "removed 1 container(s)" in cleaned.stderr
    assert orphan.id not in {container.id for container in docker_client.containers.list(all=True)}

    matrix.write_text(LIFECYCLE_MATRIX.replace("fault: hang", "fault: crash"))
    resumed = runner("run", "-f", matrix, "--results", results, "--resume", run_folder.name, "--force")  # the matrix changed
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    _, records = records_of(results)
    assert {cell: record["status"] for cell, record in records.items()} == {"cpu-tf2.21-stuck": "failed", "cpu-tf2.21-mnist": "ok"}
    assert json.loads((run_folder / "manifest.json").read_text())["state"] == "finished"


ORPHAN_MATRIX = f"""
workloads:
  stuck: {{{SMALL}, fault: hang, timeout_minutes: 10}}
repeats: 1
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
"""


@pytest.mark.timeout(900)
def test_a_resume_after_kill_9_removes_the_dead_runners_container_before_measuring(tmp_path, docker_client):
    matrix, results, log = tmp_path / "matrix.yaml", tmp_path / "results", tmp_path / "resumed.log"
    matrix.write_text(ORPHAN_MATRIX)
    assert runner("build", "-f", matrix).returncode == 0
    killed = start_run(matrix, results)
    orphan = container_of(docker_client, results, "cpu-tf2.21-stuck")
    resumed = None
    try:
        killed.kill()  # kill -9: no handler runs, the container trains on
        killed.communicate(timeout=60)
        (run_folder,) = results.iterdir()
        orphan.reload()
        assert orphan.status == "running"

        matrix.write_text(ORPHAN_MATRIX.replace(", fault: hang, timeout_minutes: 10", ""))  # the cell now trains and ends
        with open(log, "w") as stderr:
            resumed = subprocess.Popen([sys.executable, "-m", "runner", "run", "-f", str(matrix), "--results", str(results),
                                        "--resume", run_folder.name, "--force"],  # the matrix changed: the cell now ends
                                       cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
        label = f"io.cudnn-matrix.run-folder={run_folder.resolve()}"
        running_beside_the_timed_one = []  # the run's running containers, each time the resumed cell's own was one of them
        while resumed.poll() is None:
            running = docker_client.containers.list(filters={"label": label, "status": "running"}, ignore_removed=True)
            if any(container.id != orphan.id for container in running):
                running_beside_the_timed_one.append(len(running))
            time.sleep(0.2)

        said = log.read_text()
        assert resumed.returncode == 0, said[-3000:]
        assert running_beside_the_timed_one and set(running_beside_the_timed_one) == {1}
        assert (f"run {run_folder.name}: stopped and removed 1 container(s) that its earlier runner left running, before measuring"
                in said)
        with pytest.raises(docker.errors.NotFound):
            orphan.reload()
        assert records_of(results)[1]["cpu-tf2.21-stuck"]["status"] == "ok"
    finally:
        if resumed and resumed.poll() is None:
            resumed.kill()
        mine = str(results.resolve())
        for container in docker_client.containers.list(all=True, filters={"label": "io.cudnn-matrix.run-folder"}, ignore_removed=True):
            if container.labels["io.cudnn-matrix.run-folder"].startswith(mine):
                container.remove(force=True)


def test_a_container_removed_from_under_a_run_fails_only_its_cell(tmp_path, docker_client):
    matrix, results = tmp_path / "matrix.yaml", tmp_path / "results"
    matrix.write_text(LIFECYCLE_MATRIX)
    process = start_run(matrix, results)
    container_of(docker_client, results, "cpu-tf2.21-stuck").remove(force=True)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    _, records = records_of(results)
    assert records["cpu-tf2.21-stuck"]["status"] == "failed"
    assert records["cpu-tf2.21-stuck"]["reason"] == "its container was removed while it ran (by docker rm or `clean --force`)"
    assert records["cpu-tf2.21-mnist"]["status"] == "ok"


def test_a_runs_clean_up_spares_a_run_of_the_same_name_in_another_results_folder(tmp_path, docker_client):
    """Run ids are start times: two runs into different results folders can share one, on one engine."""
    import io
    import tarfile

    from runner.executors.docker_run import remove_run, run_labels

    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    docker_client.api.import_image_from_data(empty.getvalue(), repository="cudnn-matrix-test/empty", tag="1")
    mine, theirs = tmp_path / "a" / "20261129-120000", tmp_path / "b" / "20261129-120000"
    created = {folder: docker_client.containers.create("cudnn-matrix-test/empty:1", entrypoint=["true"],
                                                       labels=run_labels(folder, "cpu-tf2.21-mnist")) for folder in (mine, theirs)}
    try:
        remove_run(docker_client, mine)
        left = {container.id for container in docker_client.containers.list(all=True, filters={"label": "io.cudnn-matrix.run-id=20261129-120000"})}
        assert created[mine].id not in left and created[theirs].id in left
    finally:
        for container in created.values():
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        docker_client.images.remove("cudnn-matrix-test/empty:1", force=True)
