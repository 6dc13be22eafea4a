"""What a run says it will do before it does anything (run --dry-run, and the first lines of every run)."""

import random
import socket

import pytest

from fake_executor import FakeExecutor
from runner import cli, executors, preflight, session
from site_runs import measured, write_run

SMALL = "epochs: 2, train_images: 64, validation_images: 32"
MATRIX = f"""workloads:
  dogs-vs-cats: {{{SMALL}}}
  mnist: {{{SMALL}}}
repeats: 3
cpu: {{tensorflow: ["2.21"]}}
gpu:
  cuda: ["12.5"]
  cudnn: ["9.3", "9.2"]
  tensorflow: ["2.21"]
build: {{ca_certificates: []}}
"""


@pytest.fixture
def matrix(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(MATRIX)
    return path


def earlier_run(results, hostname, cell_id):
    """A finished run on `hostname` in which the cell took a repeat of 180 s (site_runs' records start and end 3 minutes apart)."""
    write_run(results, "20261201-120000", {"hostname": hostname}, [measured(cell_id, "cpu", 1.0, 0, random.Random(1))])


def test_the_outlook_names_each_reason_once_and_the_environments_to_make(matrix, tmp_path):
    plan = session.plan(matrix)
    seen = preflight.outlook(plan.selected, FakeExecutor(no_gpu="no GPU on this host: nvidia-smi is not installed"), 3, tmp_path / "results")

    assert [cell.id for cell in seen.to_run] == ["cpu-tf2.21-dogs-vs-cats", "cpu-tf2.21-mnist"]
    assert seen.not_run == {
        "skipped: no GPU on this host: nvidia-smi is not installed": ("gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats", "gpu-cuda12.5-cudnn9.3-tf2.21-mnist"),
        "excluded: TensorFlow 2.21 was built with cuDNN 9.3; cuDNN 9.2 is an older minor and fails with "
        '"DNN library initialization failed"': ("gpu-cuda12.5-cudnn9.2-tf2.21-dogs-vs-cats", "gpu-cuda12.5-cudnn9.2-tf2.21-mnist"),
    }
    assert seen.environments == (("cpu-tf2.21", "fake: built on demand"),)
    text = seen.render()
    assert text.startswith("2 cell(s) to run, 3 repeat(s) each:\n  cpu-tf2.21-dogs-vs-cats\n  cpu-tf2.21-mnist\n")
    assert text.count("skipped: no GPU") == 1 and "environments:\n  cpu-tf2.21: fake: built on demand" in text


def test_the_estimate_takes_this_hosts_earlier_runs_and_models_the_rest(matrix, tmp_path):
    results = tmp_path / "results"
    earlier_run(results, socket.gethostname(), "cpu-tf2.21-dogs-vs-cats")
    plan = session.plan(matrix, "cpu-")
    seen = preflight.outlook(plan.selected, FakeExecutor(), 3, results)

    mnist = plan.selected[1]
    assert seen.estimate == preflight.Estimate(measured_seconds=3 * 180.0, measured_cells=1,
                                               modelled_seconds=3 * preflight.modelled_seconds(mnist), modelled_cells=1)
    assert preflight.modelled_seconds(mnist) == 20 + 2 * (64 + 32) / 2500
    assert seen.estimate.words().startswith("about 9 min for 1 cell(s) from their earlier runs here; about 60 s for 1 cell(s) never run here")


def test_another_hosts_runs_say_nothing_of_this_ones_times(tmp_path):
    earlier_run(tmp_path, "another-box", "cpu-tf2.21-dogs-vs-cats")
    assert preflight.history(tmp_path, socket.gethostname()) == {}
    assert preflight.history(tmp_path, "another-box") == {"cpu-tf2.21-dogs-vs-cats": [180.0]}


def test_dry_run_prints_the_plan_and_starts_nothing(matrix, monkeypatch, capsys):
    executor = FakeExecutor(no_gpu="no GPU here")
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: executor)
    assert cli.main(["run", "-f", str(matrix), "--results", str(matrix.parent / "results"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("2 cell(s) to run, 3 repeat(s) each:") and "estimated: about " in err
    assert executor.jobs == [] and executor.prepared == [] and not (matrix.parent / "results").exists()


def test_every_run_says_its_plan_first(matrix, monkeypatch, capsys):
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor(no_gpu="no GPU here"))
    assert cli.main(["run", "-f", str(matrix), "-k", "cpu-tf2.21-mnist", "--results", str(matrix.parent / "results")]) == 0
    assert capsys.readouterr().err.startswith("1 cell(s) to run, 3 repeat(s) each:\n  cpu-tf2.21-mnist\n")


def test_a_resumed_dry_run_leaves_out_the_cells_measured_enough(matrix, monkeypatch, capsys):
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor(no_gpu="no GPU here"))
    results = str(matrix.parent / "results")
    assert cli.main(["run", "-f", str(matrix), "-k", "cpu-tf2.21-mnist", "--results", results]) == 0
    capsys.readouterr()
    assert cli.main(["run", "-f", str(matrix), "-k", "cpu-", "--results", results, "--resume", "--dry-run"]) == 0
    assert capsys.readouterr().err.startswith("1 cell(s) to run, 3 repeat(s) each:\n  cpu-tf2.21-dogs-vs-cats\n")


def test_dry_run_is_for_runs_on_this_machine(matrix, capsys):
    assert cli.main(["run", "-f", str(matrix), "--dry-run", "--dispatch", "slurm"]) == 2
    assert capsys.readouterr().err == ("error: --dry-run: only for runs on this machine (--dispatch local), "
                                       "whose cells run one after another\n")


def test_the_local_executor_says_before_anything_which_environments_its_interpreter_cannot_run(matrix, capsys):
    # The real executor and this interpreter, which has no TensorFlow: its cells are excluded, said once.
    assert cli.main(["run", "-f", str(matrix), "-k", "cpu-", "--executor", "local", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("0 cell(s) to run, 3 repeat(s) each:\n2 cell(s) not run: excluded: ")
    assert "has no tensorflow (tensorflow==2.21.* asked for): the local executor installs nothing" in err


def test_the_model_scales_a_keras_applications_rate_with_the_images_area(tmp_path):
    (tmp_path / "matrix.yaml").write_text('workloads:\n  resnet50: {train_images: 64, validation_images: 64}\n'
                                          '  small: {model: resnet50, image_size: 112, train_images: 64, validation_images: 64}\n'
                                          'cpu: {tensorflow: ["2.21"]}\n')
    default, small = session.plan(tmp_path / "matrix.yaml", "cpu-").selected
    assert preflight.modelled_seconds(default) == 20 + 3 * 128 / 0.6
    assert preflight.modelled_seconds(small) == pytest.approx(20 + 3 * 128 / (0.6 * 4))  # a quarter of the pixels
