"""Engine failures while a cell runs, at the Docker SDK seam: each is a RawRun with the reason, never a traceback.

The real side of the same paths runs in tests/test_docker_failures.py (a container removed from under a run).
"""

from pathlib import Path

import docker.errors
import requests

from runner.config import Limits
from runner.executors.docker_run import run_container
from runner.progress import Progress
from workload.contract import JobSpec, Pipeline

JOB = JobSpec(cell_id="cpu-tf2.21-mnist", framework="tensorflow", model="mnist", data_dir="/tmp", epochs=2, warmup_epochs=1, batch_size=128,
              train_images=64, validation_images=32, image_size=28, classes=10, data_format="channels_last", jit_compile=False, intra_op_threads=0, inter_op_threads=0, fault="none",
              pipeline=Pipeline("jpeg", False, 2, 2), loader="tfdata", precision="fp32", cudnn=True, conv_autotune="default", kernel_time="auto",
              expect_gpu=False, expect_cudnn="")


class Container:
    def __init__(self, wait_error=None):
        self.wait_error = wait_error
        self.removed = False

    def logs(self, stream=False, follow=False, **_):
        return iter([b"epoch 1/2: 1.00 s\n"]) if stream else b""

    def wait(self):
        raise self.wait_error

    def kill(self):
        pass

    def remove(self, force=False):
        self.removed = True
        raise docker.errors.NotFound("gone already")


class Engine:
    def __init__(self, container=None, refuse=None):
        self.container, self.refuse = container, refuse

    @property
    def containers(self):
        return self

    def run(self, *args, **kwargs):
        if self.refuse:
            raise self.refuse
        return self.container


def run_with(engine):
    return run_container(engine, "image", JOB, {}, [], Limits("1g", 256), 60.0, {}, Progress())


def test_the_engine_refusing_the_container_is_the_cells_failure():
    raw = run_with(Engine(refuse=docker.errors.APIError("500", explanation="invalid mount config")))
    assert raw.error == "the Docker engine refused to start its container: invalid mount config"
    assert raw.exit_code is None


def test_a_container_removed_while_it_ran_keeps_the_output_seen():
    container = Container(wait_error=docker.errors.NotFound("No such container"))
    raw = run_with(Engine(container))
    assert raw.error == "its container was removed while it ran (by docker rm or `clean --force`)"
    assert "epoch 1/2" in raw.output
    assert container.removed


def test_the_engine_going_away_while_it_ran_is_the_cells_failure():
    raw = run_with(Engine(Container(wait_error=requests.exceptions.ConnectionError("Connection aborted"))))
    assert raw.error.startswith("the Docker engine failed while it ran: Connection aborted")


def test_a_container_caught_half_way_through_its_removal_counts_as_removed():
    conflict = docker.errors.APIError("409", explanation="can not get logs from container which is dead or marked for removal")
    raw = run_with(Engine(Container(wait_error=conflict)))
    assert raw.error == "its container was removed while it ran (by docker rm or `clean --force`)"


def test_a_runs_clean_up_lists_containers_without_failing_on_one_being_removed():
    from runner.executors.docker_run import remove_run

    class Listing:
        def __init__(self):
            self.asked = {}

        @property
        def containers(self):
            return self

        def list(self, **options):
            self.asked = options
            return [Container()]  # its remove() says it is gone already: that is not an error either

    engine = Listing()
    remove_run(engine, Path("/results/20261129-120000"))
    assert engine.asked == {"all": True, "filters": {"label": "io.cudnn-matrix.run-folder=/results/20261129-120000"}, "ignore_removed": True}
