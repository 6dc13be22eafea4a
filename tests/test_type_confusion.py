"""Valid JSON of the wrong types, fed to every reader of a run: report, compare, publish and --resume.

A results line or a manifest may have been edited by hand, written by another tool, or damaged
in ways that keep it JSON. Each reader must cost only that line (or that run's manifest facts),
with a warning naming the file and line, and never stop: one such line in any run used to stop
`publish` for every run.
"""

import copy
import json

import pytest

import measurements
from fake_executor import FakeExecutor, fault_workloads
from measurements import epoch_telemetry, gpu_epoch, run_telemetry
from runner import cli, executors, records, session
from runner.progress import Progress
from runner.site import publish
from workload.contract import MEASUREMENT_SCHEMA

MATRIX = fault_workloads("mnist") + """
cpu:
  tensorflow: ["2.21"]
gpu:
  cuda: ["12.5"]
  cudnn: ["9.3"]
  tensorflow: ["2.21"]
build:
  ca_certificates: []
"""
CPU_CELL, GPU_CELL = "cpu-tf2.21-mnist", "gpu-cuda12.5-cudnn9.3-tf2.21-mnist"


def epoch(seconds):
    gpu = gpu_epoch(sm_clock_mhz_min=1400, sm_clock_mhz_max=1410, energy_joules=50.0)
    return measurements.epoch(seconds, images_per_second=64 / seconds, input_wait_share=0.01, logs={"loss": 0.5},
                              telemetry=epoch_telemetry([gpu], rss_bytes_max=10**9))


def good_record(cell_id, kind, seconds):
    axes = {"kind": kind, "framework": "tensorflow", "framework_version": "2.21"}
    gpu = {}
    if kind == "gpu":
        axes.update(cuda="12.5", cudnn="9.3")
        gpu = {"driver": "550.54", "cudnn": {"version": "9.3.0", "path": "/usr/lib/libcudnn.so.9"}, "cuda_runtime": {"version": "12.5"}}
    measurement = {"schema": MEASUREMENT_SCHEMA, "cell_id": cell_id, "workload": "mnist",
                   "data": {"kind": "synthetic", "train_images": 64, "validation_images": 32}, "warmup_epochs": 1,
                   "epochs": [epoch(seconds * 3), epoch(seconds), epoch(seconds * 1.1)],
                   "versions": {"python": "3.11.9", "tensorflow": "2.21.0", "keras": "3.15.1"}, "host": {}, "settings": {},
                   "devices": [], "gpu": gpu, "telemetry": run_telemetry(), "timeline": {"process_started": 1.0}}
    return {"cell_id": cell_id, "status": "ok", "reason": "", "axes": axes, "workload": "mnist", "executor": "docker",
            "environment": {"image": "cudnn-matrix/x:1", "image_id": "sha256:00", "base_image": "python:3.11-slim"},
            "started": "2026-01-01T00:00:00+00:00", "ended": "2026-01-01T00:01:00+00:00", "measurement": measurement,
            "log_tail": "", "repeat": 0, "launched": 1.0, "schema": records.RESULTS_SCHEMA}


CPU, GPU = good_record(CPU_CELL, "cpu", 1.0), good_record(GPU_CELL, "gpu", 0.5)
GPU_TEXT = json.dumps(GPU)
WRONG = [None, 5, -1, 10**400, 1.5, float("nan"), float("inf"), True, "x", "", [], [1], {}, {"a": 1}]
# Where a wrong value is put: a path into the GPU record (its measurement is the richer one).
# Not the schema: a whole number other than 2 or 3 is a run of another runner, unreadable as a whole (test_records).
PLACES = [(key,) for key in GPU if key != "schema"] + [("axes", key) for key in ("kind", "framework", "framework_version", "cuda", "cudnn")] + [
    ("environment", "isolation"), ("environment", "image")] + [("measurement", key) for key in GPU["measurement"]] + [
    ("measurement", "data", "kind"), ("measurement", "gpu", "cudnn"), ("measurement", "gpu", "cudnn", "version"),
    ("measurement", "gpu", "cuda_runtime"), ("measurement", "gpu", "driver"), ("measurement", "versions", "tensorflow"),
    ("measurement", "versions", "keras"), ("measurement", "epochs", 1), ("measurement", "epochs", 1, "input_wait_share"),
    ("measurement", "epochs", 1, "seconds"), ("measurement", "epochs", 1, "telemetry"), ("measurement", "epochs", 1, "telemetry", "gpus"),
    ("measurement", "epochs", 1, "telemetry", "gpus", 0), ("measurement", "epochs", 1, "telemetry", "gpus", 0, "index"),
    ("measurement", "epochs", 1, "telemetry", "rss_bytes_max"), ("measurement", "epochs", 1, "logs"), ("measurement", "epochs", 1, "logs", "loss"),
    ("measurement", "telemetry", "sampler"), ("measurement", "telemetry", "gpus"),
    ("measurement", "model"), ("measurement", "convolution_ops"), ("measurement", "telemetry")]


def confused(place, value) -> dict:
    record = json.loads(GPU_TEXT)  # a deep copy, ten times as fast as copy.deepcopy: 779 are made as this file is collected
    *path, last = place
    target = record
    for step in path:
        target = target[step]
    target[last] = value
    return record


MUTANTS = {place: [confused(place, value) for value in WRONG] for place in PLACES}
# The ones the issue named, each of which must cost its line.
NAMED = [confused(("axes",), []), confused(("environment",), "x"), confused(("cell_id",), 5), confused(("repeat",), "x"),
         confused(("measurement",), None), {**copy.deepcopy(GPU), "axes": {"kind": "gpu", "framework": "tensorflow", "framework_version": "2.21"}},
         # an ok record without a timed epoch was left out of the report without a word; zero, negative, absurd times read as data
         confused(("measurement", "epochs"), [epoch(1.5)]), confused(("measurement", "epochs", 1, "seconds"), 0),
         confused(("measurement", "epochs", 1, "seconds"), -2.0), confused(("measurement", "epochs", 2, "seconds"), 1e12)]


def lines(*recorded) -> str:
    return "".join(json.dumps(record) + "\n" for record in recorded)


def run_folder(results, name, text, manifest=None):
    folder = results / name
    folder.mkdir(parents=True)
    (folder / records.RESULTS_FILE).write_text(text)
    manifest = {"schema": 3, "runner_version": "0.4.0", "run_id": name, "matrix_file": "m.yaml", "matrix_sha256": "0" * 64,
                "host": {"cpu_model": "x", "cpu_cores": 2, "gpus": []}, "started": "2026-01-01T00:00:00+00:00",
                "ended": "2026-01-01T00:02:00+00:00", "state": "finished"} if manifest is None else manifest
    (folder / records.MANIFEST_FILE).write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("place", PLACES, ids=lambda place: ".".join(map(str, place)))
def test_type_confused_lines_cost_those_lines_in_report_and_compare(tmp_path, capsys, place):
    folder = run_folder(tmp_path, "20260101-000000", lines(CPU, *MUTANTS[place], GPU))

    assert cli.main(["report", str(folder)]) == 0
    assert cli.main(["report", str(folder), "--format", "json"]) == 0
    assert cli.main(["compare", str(folder), str(folder)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    left_out = {f"warning: {folder / records.RESULTS_FILE}:{number}: " for number in range(2, 2 + len(WRONG))}
    assert all(line.startswith(tuple(left_out)) for line in err.splitlines())


@pytest.mark.parametrize("number", range(len(NAMED)))
def test_the_confusions_found_cost_their_line_with_a_warning(tmp_path, capsys, number):
    folder = run_folder(tmp_path, "20260101-000000", lines(CPU, NAMED[number], GPU))

    assert [record.cell_id for record in records.load(folder)] == [CPU_CELL, GPU_CELL]
    (warning,) = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"warning: {folder / records.RESULTS_FILE}:2: not a record of results schema 3")
    assert len(warning) < 400


@pytest.mark.site  # publishes every run: a chart each
def test_publish_and_resume_read_past_every_confused_line(tmp_path, capsys):
    results = tmp_path / "results"
    good = run_folder(results, "20260101-000000", lines(CPU, GPU))
    mixed = run_folder(results, "20260101-000001", lines(CPU, *(mutant for place in PLACES for mutant in MUTANTS[place]), GPU))

    done = publish(results, tmp_path / "site")

    assert set(done.rendered) == {good.name, mixed.name} and not done.unreadable
    assert cli.main(["report", str(mixed), "--by", "host", "--plot", str(tmp_path / "chart.png")]) == 0
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(MATRIX)
    plan = session.plan(matrix, "cpu-tf2.21-mnist")
    resumed = session.run(plan, FakeExecutor(no_gpu="no GPU here"), results, mixed.name, 2, Progress(), force=True)  # a made-up run
    assert [record.cell_id for record in resumed.records if record.status == "ok"].count(CPU_CELL) == 2
    assert "Traceback" not in capsys.readouterr().err


MANIFESTS = [[], "x", 5, None, {"host": "x"}, {"host": []}, {"host": {"gpus": "x"}}, {"host": {"gpus": [5]}}, {"host": {"dispatch": 5}},
             {"state": 5}, {"started": 5}, {"ended": []}, {"schema": "x"}, {"runner_version": []}, {"matrix_file": {}},
             {"host": {"cpu_cores": "x", "memory_gib": [], "executor": 5, "hosts": "x"}}, {"run_id": 5}]


@pytest.mark.site  # publishes every run: a chart each
def test_a_type_confused_manifest_costs_its_facts_only(tmp_path, capsys):
    results = tmp_path / "results"
    folders = [run_folder(results, f"20260101-0000{number:02d}", lines(CPU, GPU), manifest)
               for number, manifest in enumerate(MANIFESTS)]

    done = publish(results, tmp_path / "site")
    assert len(done.rendered) == len(MANIFESTS)
    for folder in folders:
        assert cli.main(["report", str(folder)]) == 0
        assert cli.main(["compare", str(folder), str(folders[0])]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"warning: {folders[0] / records.MANIFEST_FILE}: not a manifest" in err


@pytest.mark.parametrize("manifest", MANIFESTS[:9])
def test_resume_reads_past_a_type_confused_manifest(tmp_path, capsys, monkeypatch, manifest):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(MATRIX)
    folder = run_folder(tmp_path / "results", "20260101-000000", lines(CPU), manifest)
    # The manifest is read before any executor is asked for anything: a fake one keeps the test to the reading.
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor(no_gpu="no GPU here"))
    code = cli.main(["run", "-f", str(matrix), "-k", CPU_CELL, "--resume", folder.name,
                     "--repeats", "2", "--results", str(tmp_path / "results"), "--force"])  # the made-up manifest names no matrix of ours
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
