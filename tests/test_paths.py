"""Paths that are not what they claim: each is one line and exit 2 before anything runs, never a traceback.

A matrix's data: and ca_certificates:, and run --results, may name a symlink loop, a file where a
folder is wanted (or a folder where a file is), a device, a FIFO, a name too long for the kernel,
or start with ~; a results disk may be full from the start.
"""

import os
import shutil

import pytest

from conftest import small_disk
from fake_executor import FakeExecutor
from runner import cli, executors
from runner.config import load_matrix

TEST_CA = "tests/fixtures/test-ca.pem"


def hostile_paths(tmp_path):
    """name -> a path that is not a plain folder or file, made for real under tmp_path."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"symlink-loop": str(loop), "symlink-loop-inside": str(loop / "below"), "file": str(plain), "under-a-file": str(plain / "below"),
            "device": "/dev/null", "fifo": str(fifo), "too-long": str(tmp_path / ("x" * 300)), "nested-too-long": "/".join(["y" * 200] * 30)}


def one_line(capsys, *argv):
    code = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert code == 2, err
    (line,) = err.splitlines()
    assert len(line) <= 300, line
    return line


@pytest.mark.parametrize("kind", ["symlink-loop", "symlink-loop-inside", "file", "under-a-file", "device", "fifo", "too-long", "nested-too-long"])
def test_a_data_path_that_is_no_folder_is_one_line_at_list(tmp_path, capsys, kind):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(f'workloads:\n  dogs-vs-cats: {{data: "{hostile_paths(tmp_path)[kind]}"}}\ncpu: {{tensorflow: ["2.21"]}}\nbuild: {{ca_certificates: []}}\n')
    line = one_line(capsys, "list", "-f", matrix)
    assert line.startswith(f"error: {matrix}:2: workloads.dogs-vs-cats.data: expected a folder path"), line


@pytest.mark.parametrize("kind", ["symlink-loop", "symlink-loop-inside", "under-a-file", "device", "fifo", "too-long", "nested-too-long"])
def test_a_certificate_path_that_is_no_file_is_one_line_at_list(tmp_path, capsys, kind):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(f'workloads: {{dogs-vs-cats: {{}}}}\ncpu: {{tensorflow: ["2.21"]}}\nbuild: {{ca_certificates: ["{hostile_paths(tmp_path)[kind]}"]}}\n')
    line = one_line(capsys, "list", "-f", matrix)
    assert line.startswith(f"error: {matrix}:3: build.ca_certificates[0]: expected a readable PEM certificate file"), line


def test_a_tilde_means_the_home_folder_as_in_a_shell(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "certificates").mkdir(parents=True)
    shutil.copy(TEST_CA, home / "certificates" / "ca.pem")
    monkeypatch.setenv("HOME", str(home))
    matrix = tmp_path / "project" / "matrix.yaml"
    matrix.parent.mkdir()
    matrix.write_text('workloads:\n  dogs-vs-cats: {data: "~/cats"}\ncpu: {tensorflow: ["2.21"]}\n'
                      'build: {ca_certificates: ["~/certificates/ca.pem"]}\n')

    loaded = load_matrix(matrix)

    assert loaded.workloads[0].data_dir == home / "cats"
    assert loaded.build.ca_certificates == (home / "certificates" / "ca.pem",)


@pytest.mark.parametrize("kind", ["file", "under-a-file", "symlink-loop", "device", "too-long", "nested-too-long"])
def test_results_that_cannot_hold_runs_are_one_line_before_anything_runs(tmp_path, capsys, run_of_one_cell, kind):
    matrix, executor = run_of_one_cell
    results = hostile_paths(tmp_path)[kind]
    line = one_line(capsys, "run", "-f", matrix, "--results", results)
    assert line.startswith(f"error: --results {results[:40]!r}"[:-1]), line
    assert line.endswith((": not a folder", "(Not a directory)", "(File name too long)", "(Too many levels of symbolic links)")), line
    assert executor.jobs == []


@pytest.fixture
def full_disk(tmp_path):
    """A real 64 KiB filesystem, filled before the run starts."""
    with small_disk(tmp_path, "64k") as folder:
        try:
            with open(folder / "filler", "wb") as filler:
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        except OSError:
            pass
        yield folder


@pytest.fixture
def run_of_one_cell(tmp_path, monkeypatch):
    """A matrix of one tiny cell, and the fake executor a run of it would use: its jobs say whether anything ran."""
    executor = FakeExecutor(no_gpu="no GPU here")
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: executor)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text('workloads: {mnist: {epochs: 2, train_images: 64, validation_images: 32}}\ncpu: {tensorflow: ["2.21"]}\n'
                      'build: {ca_certificates: []}\n')
    return matrix, executor


def test_a_results_disk_full_from_the_start_is_one_line_and_leaves_no_run(capsys, run_of_one_cell, full_disk):
    matrix, executor = run_of_one_cell
    line = one_line(capsys, "run", "-f", matrix, "--results", full_disk / "results")
    assert line.startswith(f"error: {full_disk / 'results'}: cannot start a run there"), line
    assert [path.name for path in (full_disk / "results").iterdir()] == [] if (full_disk / "results").exists() else True
    assert executor.jobs == []
