"""The CLI without Docker: list, selection and config errors, in-process and as a user runs it."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_executor import FakeExecutor
from runner import cli, executors, invocation
from runner.cli import main

REPO = Path(__file__).resolve().parent.parent
FIXTURE_RUN = REPO / "tests" / "fixtures" / "runs" / "20261129-012045"  # a CPU cell measured, a GPU cell failed

MATRIX = (
    "workloads: {dogs-vs-cats: {}}\n"
    'cpu: {tensorflow: ["2.20", "2.21"]}\n'
    'gpu: {cuda: ["12.5"], cudnn: ["9.3", "8.9"], tensorflow: ["2.21"]}\n'
    "build: {ca_certificates: []}\n"
)
BROKEN = 'workloads:\n  dogs-vs-cats:\n    epoch: 3\ncpu: {tensorflow: ["2.21"]}\n'


def runner(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def matrix(tmp_path):
    path = tmp_path / "cells.yaml"
    path.write_text(MATRIX)
    return path


def test_list_json_describes_every_cell(matrix, capsys):
    assert main(["list", "--json", "-f", str(matrix)]) == 0

    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert isinstance(rows, list)
    assert [row["id"] for row in rows] == [
        "cpu-tf2.20-dogs-vs-cats",
        "cpu-tf2.21-dogs-vs-cats",
        "gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats",
        "gpu-cuda12.5-cudnn8.9-tf2.21-dogs-vs-cats",
    ]
    for row in rows:
        assert {"id", "kind", "image", "status", "reason"} <= set(row)
    assert [row["kind"] for row in rows] == ["cpu", "cpu", "gpu", "gpu"]
    assert rows[0]["image"] == "cudnn-matrix/cpu-tf2.20"
    assert [(row["status"], row["reason"]) for row in rows[:2]] == [("selected", "")] * 2
    assert rows[2]["status"] == ("selected" if shutil.which("nvidia-smi") else "skipped")  # as a run here would do
    assert rows[3]["status"] == "excluded"
    assert "another major" in rows[3]["reason"]
    assert rows[2]["cudnn"] == "9.3" and rows[2]["base_image"].startswith("nvidia/cuda:12.5")
    assert err == ""


def test_list_json_marks_cells_that_k_leaves_out(matrix, capsys):
    assert main(["list", "--json", "-f", str(matrix), "-k", "cpu-tf2.21"]) == 0

    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["cpu-tf2.21-dogs-vs-cats"]["status"] == "selected"
    assert rows["cpu-tf2.20-dogs-vs-cats"]["status"] == "deselected"
    assert rows["cpu-tf2.20-dogs-vs-cats"]["reason"] == "not matched by -k cpu-tf2.21"
    assert rows["gpu-cuda12.5-cudnn8.9-tf2.21-dogs-vs-cats"]["status"] == "excluded"


def test_list_table_names_cells_and_images(matrix, capsys):
    assert main(["list", "-f", str(matrix)]) == 0

    out = capsys.readouterr().out
    assert out.splitlines()[0].split("|")[1].strip() == "cell"
    assert "| cpu-tf2.20-dogs-vs-cats " in out
    assert "cudnn-matrix/gpu-cuda12.5-cudnn9.3-tf2.21" in out


def test_k_selecting_nothing_is_a_usage_error(matrix, capsys):
    assert main(["list", "--json", "-f", str(matrix), "-k", "mnist"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: {matrix}: -k 'mnist' selects none of the 4 cells")


def test_strict_refuses_selected_excluded_cells(matrix, capsys):
    assert main(["list", "-f", str(matrix), "-k", "cudnn8.9", "--strict"]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "excluded (--strict), first gpu-cuda12.5-cudnn8.9-tf2.21-dogs-vs-cats" in err


def test_broken_matrix_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)

    assert main(["list", "-f", str(path)]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: {path}:3: workloads.dogs-vs-cats.epoch: ")


def test_report_without_runs_is_one_error_line_naming_the_command_as_it_was_typed(tmp_path, monkeypatch, capsys):
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(sys, "argv", [".venv/bin/cudnn-matrix", "report"])
    assert main(["report", "--results", str(tmp_path / "results")]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'results'}: no runs yet: run `.venv/bin/cudnn-matrix run` (or `make matrix`) first")


def test_a_misspelt_results_folder_is_named_as_missing(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path / "resluts")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'resluts'}: no such folder: check --results (default: results)\n"


@pytest.mark.parametrize("typed, said", [
    ("reprot", "error: unknown command 'reprot': did you mean 'report'?\n"),
    ("run-cel", "error: unknown command 'run-cel': did you mean 'run'?\n"),  # the internal run-cell is never suggested
    ("xyz", "error: unknown command 'xyz': expected one of list, build, run, report, compare, bisect, reproduce, doctor, data, clean, publish\n"),
])
def test_a_mistyped_command_gets_the_nearest_one(typed, said, capsys):
    assert main([typed]) == 2
    assert capsys.readouterr().err == said


def test_the_help_lists_no_internal_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "run-cell" not in capsys.readouterr().out


def test_report_k_selects_cells_and_by_must_name_an_axis_the_run_has(capsys):
    assert main(["report", str(FIXTURE_RUN), "-k", "cpu-*", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert rows and all(row.startswith("cpu-") for row in rows)
    assert main(["report", str(FIXTURE_RUN), "-k", "nothing-like-this"]) == 2
    assert "-k 'nothing-like-this' selects none of the 3 cells of run 20261129-012045" in capsys.readouterr().err
    assert main(["report", str(FIXTURE_RUN), "--by", "gpu_typ"]) == 2
    assert capsys.readouterr().err == ("error: --by gpu_typ: expected host or an axis of run 20261129-012045 "
                                       "(cuda, cudnn, framework, framework_version, kind)\n")


def test_report_by_a_key_in_json_or_csv_is_one_document_a_program_can_read(capsys):
    assert main(["report", str(FIXTURE_RUN), "--by", "kind", "--format", "json"]) == 1  # its GPU cell failed
    report = json.loads(capsys.readouterr().out)
    assert report["by"] == "kind" and [group["value"] for group in report["groups"]] == ["cpu", "gpu"]
    assert all(group["cells"] and "schema_version" in group for group in report["groups"])
    assert main(["report", str(FIXTURE_RUN), "--by", "kind", "--format", "csv"]) == 1
    header, *rows = csv.reader(io.StringIO(capsys.readouterr().out))
    assert header[:2] == ["by_kind", "cell_id"] and [row[0] for row in rows] == ["cpu", "gpu", "gpu"]


@pytest.mark.executors  # the runner as a process, as a user starts it
def test_a_report_into_a_pipe_closed_early_ends_quietly():
    # What `report | head` does once head has its lines: the reader is gone before the report is written.
    process = subprocess.Popen([sys.executable, "-m", "runner", "report", str(FIXTURE_RUN), "-k", "cpu-"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=60) == 0 and err == ""


# --- as a user types it ----------------------------------------------------------------------


@pytest.mark.executors  # the runner as a process, as a user starts it
def test_module_lists_the_default_matrix_as_json():
    result = runner("list", "--json")  # the one test of the real entry point: the rest call main() in-process

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert (rows[0]["id"], rows[0]["kind"], rows[0]["image"], rows[0]["status"], rows[0]["reason"]) == (
        "cpu-tf2.21-dogs-vs-cats", "cpu", "cudnn-matrix/cpu-tf2.21", "selected", "",
    )
    gpu = [row for row in rows if row["kind"] == "gpu"]
    here = "selected" if shutil.which("nvidia-smi") else "skipped"  # on a host without a GPU, list says so, as run would
    assert {row["status"] for row in gpu} == {here, "excluded"}
    for row in gpu:
        assert {"cuda", "cudnn", "tensorflow", "base_image"} <= set(row)
        assert row["base_image"].startswith("nvidia/cuda:")
        assert (row["status"] == "selected") != bool(row["reason"])
    if here == "skipped":
        assert {row["reason"] for row in gpu if row["status"] == "skipped"} == {
            "no GPU on this host: nvidia-smi, which comes with the NVIDIA driver, is not installed"}
        assert row["axes"] == {"kind": "gpu", "framework": "tensorflow", "framework_version": row["tensorflow"],
                               "cuda": row["cuda"], "cudnn": row["cudnn"]}
        assert row["environment"]["base"] == row["base_image"]
    assert {row["executor"] for row in rows} == {"docker"}
    assert rows[0]["axes"] == {"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21"}
    assert rows[0]["environment"]["requirements"] == ["tensorflow==2.21.*", "pillow>=10"]


def in_process(capsys, *args):
    """main() as `python -m runner` would call it: exit code, stdout, stderr."""
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_k_selecting_nothing_in_the_default_matrix_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = in_process(capsys, "list", "-k", "no-such-cell", "-f", REPO / "matrix.yaml")

    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ")
    assert "'no-such-cell' selects none of the 24 cells" in err


@pytest.mark.parametrize(
    "name, text",
    [
        ("typo.yaml", BROKEN),
        ("float.yaml", "workloads: {dogs-vs-cats: {}}\ncpu: {tensorflow: [2.10]}\n"),
        ("syntax.yaml", "workloads:\n  dogs-vs-cats: {}\n cpu: x\n"),
        ("list.yaml", "- cpu\n"),
        ("empty.yaml", ""),
    ],
)
def test_broken_matrix_exits_2_with_one_error_line_and_no_traceback(tmp_path, monkeypatch, capsys, name, text):
    (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)

    code, out, err = in_process(capsys, "list", "-f", name)

    assert code == 2
    assert "Traceback" not in out + err
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.endswith("\n")
    assert err.startswith(f"error: {name}")


def test_missing_matrix_exits_2_with_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = in_process(capsys, "run", "-f", "absent.yaml")

    assert code == 2
    assert "Traceback" not in err
    assert err.splitlines() == [err.strip()]
    assert err.startswith("error: absent.yaml: cannot read the matrix file")


FIXTURE_RUN = sorted((REPO / "tests" / "fixtures" / "runs").iterdir())[0]


@pytest.mark.parametrize("option, target, message", [
    ("-o", "missing/report.txt", "-o missing/report.txt: no folder missing to write it in"),
    ("-o", ".", "-o .: is a folder; expected a file name"),
    ("--plot", "chart.xyz", "--plot chart.xyz: expected a file name ending in .png, .svg, .pdf"),
    ("--plot", "/proc/chart.png", "--plot /proc/chart.png: cannot write it"),
    ("-o", "/proc/report.txt", "-o /proc/report.txt: cannot write it"),
])
def test_an_output_path_that_cannot_be_written_is_one_line_and_nothing_half_written(tmp_path, monkeypatch, capsys, option, target, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = in_process(capsys, "report", FIXTURE_RUN, option, target)
    assert code == 2, err
    assert err.splitlines()[-1].startswith(f"error: {message}")
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_outputs_are_written_whole(tmp_path, capsys):
    code, _, _ = in_process(capsys, "report", FIXTURE_RUN, "-o", tmp_path / "report.txt", "--plot", tmp_path / "chart.png")
    assert code in (0, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.png", "report.txt"]
    assert (tmp_path / "report.txt").read_text().startswith(f"run {FIXTURE_RUN.name}\n")


@pytest.mark.parametrize("argv", [["run", "--repeats", "101"], ["run", "--repeats", "0"], ["data", "dogs-vs-cats", "--train-per-class", "12501"],
                                  ["run", "--repeats", "٣"], ["run", "--repeats", "３"], ["run", "--repeats", "²"]])
def test_counts_are_ascii_whole_numbers_with_upper_bounds(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(argv)  # parsed only: a count that passed would not start a run
    assert exited.value.code == 2
    assert "expected a whole number from 1 to" in capsys.readouterr().err


@pytest.mark.parametrize("gpus", ["٠", "０,１", "0,١"])
def test_gpu_indices_in_other_scripts_digits_are_one_line(matrix, monkeypatch, capsys, gpus):
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor(no_gpu="no GPU here"))  # nothing runs either way
    code, out, err = in_process(capsys, "run", "-f", matrix, "--gpus", gpus, "--results", matrix.parent / "results")
    assert code == 2 and out == ""
    assert err == f"error: --gpus: expected all, none, or GPU indices such as [0, 1] or \"0,1\", got {gpus!r}\n"


def test_ctrl_c_raises_in_the_runner_and_not_in_a_child_forked_from_it():
    """A process group's Ctrl-C also reaches a child forked to start ssh, in the moment before its exec."""
    import signal

    from runner import cli

    interrupt = cli.interrupt_for(os.getpid())
    with pytest.raises(KeyboardInterrupt):
        interrupt(signal.SIGINT, None)
    child = os.fork()
    if child == 0:
        try:
            interrupt(signal.SIGINT, None)
            os._exit(0)
        except KeyboardInterrupt:
            os._exit(1)
    assert os.waitpid(child, 0)[1] == 0


@pytest.mark.parametrize("argv0, words", [(".venv/bin/cudnn-matrix", [".venv/bin/cudnn-matrix"]),
                                          ("/x/runner/__main__.py", ["python", "-m", "runner"])])
def test_commands_the_runner_prints_call_it_as_it_was_called(monkeypatch, argv0, words):
    monkeypatch.setattr(sys, "argv", [argv0, "run"])
    assert invocation.program() == words


@pytest.mark.executors  # the runner as a process, as a user starts it
def test_the_console_script_and_python_m_runner_are_one_program():
    script = Path(sys.executable).with_name("cudnn-matrix")  # installed by `pip install -e .`, as the Makefile does
    by_script = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    by_module = runner("--version")
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout and by_script.stdout.startswith("cudnn-matrix ")


def test_compare_fail_on_slower_gates_a_regression(tmp_path, capsys):
    from site_runs import WORKSTATION, host, write_run
    from test_report import repeated

    cell = "cpu-tf2.21-dogs-vs-cats"
    write_run(tmp_path, "20261201-000000", host(WORKSTATION), repeated(cell, 10.0, kind="cpu"))
    write_run(tmp_path, "20261202-000000", host(WORKSTATION), repeated(cell, 12.0, kind="cpu"))  # a fifth slower
    write_run(tmp_path, "20261203-000000", host(WORKSTATION), repeated(cell, 10.0, kind="cpu"))
    gate = ["compare", "--results", str(tmp_path), "--fail-on", "slower"]

    assert main([*gate, "20261201-000000", "20261202-000000"]) == 1
    assert capsys.readouterr().err == f"--fail-on slower: 1 cell(s) slower in 20261202-000000 than in 20261201-000000: {cell}\n"
    assert main([*gate, "20261201-000000", "20261203-000000"]) == 0
    assert main([*gate, "20261202-000000", "20261201-000000"]) == 0  # faster is no regression
    assert main(["compare", "--results", str(tmp_path), "20261201-000000", "20261202-000000"]) == 0  # no gate asked for
    assert main(["compare", "--results", str(FIXTURE_RUN.parent), "--fail-on", "slower", "20261129-012045", "20261129-012103"]) == 0


def grown(results: Path, run_id: str, factor: float) -> None:
    """The stored run FIXTURE_RUN with five repeats of its measured cell (its two again, as repeats 3 to 5) and every epoch
    `factor` times as long; its failed and excluded cells as they were. Two repeats a cell, as stored, can call no difference."""
    shutil.copytree(FIXTURE_RUN, results / run_id)
    lines = [json.loads(line) for line in (FIXTURE_RUN / "results.jsonl").read_text().splitlines()]
    measured = [line for line in lines if line["status"] == "ok"]
    lines += [{**measured[repeat % 2], "repeat": repeat} for repeat in range(2, 5)]
    for line in lines:
        if line["measurement"]:
            line["measurement"] = {**line["measurement"], "epochs": [{**epoch, "seconds": epoch["seconds"] * factor,
                                                                      "train_seconds": epoch["train_seconds"] * factor}
                                                                     for epoch in line["measurement"]["epochs"]]}
    (results / run_id / "results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_compare_fail_on_slower_on_the_stored_run_exits_1_on_a_slower_cell_and_0_otherwise(tmp_path, capsys):
    grown(tmp_path, "20261130-000000", 1.0)
    grown(tmp_path, "20261130-000001", 1.25)  # a fifth slower
    gate = ["compare", "--results", str(tmp_path), "--fail-on", "slower"]

    assert main([*gate, "20261130-000000", "20261130-000001"]) == 1
    assert capsys.readouterr().err.endswith("1 cell(s) slower in 20261130-000001 than in 20261130-000000: cpu-tf2.21-dogs-vs-cats\n")
    assert main([*gate, "20261130-000001", "20261130-000000"]) == 0  # faster is no regression; the failed GPU cell is none either
    assert main([*gate, "20261130-000000", "20261130-000000"]) == 0


def test_report_exits_1_when_a_cell_of_the_run_failed_and_0_when_none_did(tmp_path, capsys):
    assert main(["report", str(FIXTURE_RUN)]) == 1  # its GPU cell failed
    assert main(["report", str(FIXTURE_RUN), "-k", "cpu-*"]) == 0
    assert main(["report", str(FIXTURE_RUN), "--baseline", "no-such-cell"]) == 2  # a usage error, said in one line
    with pytest.raises(SystemExit) as exited:  # argparse's own usage errors exit 2 too
        main(["report", str(FIXTURE_RUN), "--format", "nope"])
    assert exited.value.code == 2
