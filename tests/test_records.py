"""The results folder: records appended and loaded, schema versions, run folders and manifests."""

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import measurements
from runner import records
from runner.errors import UserError
from runner.records import RESULTS_FILE, RESULTS_SCHEMA, Record
from workload.contract import MEASUREMENT_SCHEMA, Measurement


def epoch(seconds, images_per_second, train_seconds=None):
    """One epoch as workload/benchmark.py's timer records it, with the Keras logs: training `seconds` of it unless told otherwise."""
    return measurements.epoch(seconds, train_seconds or seconds, images_per_second, logs={"loss": 0.69, "accuracy": 0.5})


def measurement(epochs, warmup=1, data_kind="synthetic", tensorflow="2.21.0"):
    """A measurement as the workload prints it, as a dict (record() makes it typed)."""
    data = {"kind": data_kind, "train_images": 2000, "validation_images": 800}
    if data_kind == "synthetic":
        data["synthetic"] = {"seed": 1}
    return {"schema": MEASUREMENT_SCHEMA, "cell_id": "x", "workload": "dogs-vs-cats", "data": data, "warmup_epochs": warmup,
            "epochs": epochs, "versions": {"python": "3.11.9", "tensorflow": tensorflow, "keras": "3.12.0"},
            "host": {}, "settings": {}, "devices": [], "gpu": {}}


def record(cell_id="cpu-tf2.21-dogs-vs-cats", status="ok", reason="", measurement=None, kind="cpu", cuda="", cudnn="", **overrides):
    axes = {"kind": kind, "framework": "tensorflow", "framework_version": "2.21"}
    axes.update({axis: value for axis, value in (("cuda", cuda), ("cudnn", cudnn)) if value})
    fields = dict(cell_id=cell_id, status=status, reason=reason, axes=axes, workload="dogs-vs-cats", executor="docker",
                  environment={"image": "cudnn-matrix/cpu-tf2.21:0123456789abcdef", "image_id": "sha256:00", "base_image": "python:3.11-slim"},
                  started="2026-01-01T00:00:00+00:00", ended="2026-01-01T00:01:00+00:00",
                  measurement=Measurement.from_dict(measurement) if measurement else None)
    fields.update(overrides)
    return Record(**fields)


# warm-up 9.50 s; timed 4, 6, 5, 7 -> median 5.50, range 4.00-7.00; timed rates median (300+400)/2 = 350
OK = record(measurement=measurement([epoch(9.5, 50.0), epoch(4.0, 500.0), epoch(6.0, 300.0), epoch(5.0, 400.0), epoch(7.0, 200.0)]))
FAILED = record("cpu-tf2.20-dogs-vs-cats", "failed", "the workload exited with code 137: Killed")


def test_append_then_load_gives_the_same_records(tmp_path):
    records.append(tmp_path, OK)
    records.append(tmp_path, FAILED)

    lines = (tmp_path / RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["schema"] == RESULTS_SCHEMA
    assert records.load(tmp_path) == [OK, FAILED]


def test_load_skips_blank_lines(tmp_path):
    (tmp_path / RESULTS_FILE).write_text(OK.to_json() + "\n\n" + FAILED.to_json() + "\n")

    assert [r.cell_id for r in records.load(tmp_path)] == ["cpu-tf2.21-dogs-vs-cats", "cpu-tf2.20-dogs-vs-cats"]


def test_other_schema_is_a_user_error_naming_the_line(tmp_path):
    newer = json.loads(FAILED.to_json())
    newer["schema"] = RESULTS_SCHEMA + 1
    (tmp_path / RESULTS_FILE).write_text(OK.to_json() + "\n" + json.dumps(newer) + "\n")

    with pytest.raises(UserError) as caught:
        records.load(tmp_path)

    message = str(caught.value)
    assert message.startswith(f"{tmp_path / RESULTS_FILE}:2: ")
    assert f"results schema {RESULTS_SCHEMA + 1}" in message
    assert f"is newer than this runner reads (2, {RESULTS_SCHEMA})" in message
    assert "\n" not in message


def test_load_of_a_folder_without_results_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no results.jsonl here"):
        records.load(tmp_path)


def test_latest_run_is_the_newest_folder_with_results(tmp_path):
    for name in ["20260101-120000", "20260102-090000", "20260102-090000-2", "20251231-235959"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / RESULTS_FILE).write_text("")
    (tmp_path / "20260103-000000").mkdir()  # started, nothing recorded yet
    (tmp_path / "20260104-000000").write_text("a file, not a run")
    os.utime(tmp_path / "20251231-235959", (2_000_000_000, 2_000_000_000))  # newest by mtime, oldest by name

    assert records.latest_run(tmp_path) == tmp_path / "20260102-090000-2"


@pytest.mark.parametrize("layout", ["missing", "empty", "no-results"])
def test_latest_run_without_runs_is_a_user_error(tmp_path, layout):
    results = tmp_path / "results"
    if layout != "missing":
        results.mkdir()
    if layout == "no-results":
        (results / "20260101-000000").mkdir()

    with pytest.raises(UserError) as caught:
        records.latest_run(results)

    # A folder that is not there is a misspelt --results more often than a project without runs.
    expected = "no such folder: check --results" if layout == "missing" else "no runs yet"
    assert str(caught.value).startswith(f"{results}: {expected}")


def test_new_run_folders_are_distinct_and_carry_a_manifest(tmp_path):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("workloads: {}\n")

    host = {"cpu_model": "Test CPU", "cpu_cores": 2, "docker_engine": "20.10.24"}
    first = records.new_run(tmp_path / "results", matrix, host)
    second = records.new_run(tmp_path / "results", matrix, host)

    assert first != second and first.parent == second.parent == tmp_path / "results"
    assert sorted([first.name, second.name]) == [first.name, second.name]
    manifest = json.loads((first / records.MANIFEST_FILE).read_text())
    assert manifest["run_id"] == first.name
    assert manifest["schema"] == RESULTS_SCHEMA
    assert manifest["matrix_file"] == str(matrix)
    assert len(manifest["matrix_sha256"]) == 64
    assert manifest["host"] == host
    assert manifest["started"]


def test_finish_run_notes_how_the_run_ended(tmp_path):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("workloads: {}\n")
    folder = records.new_run(tmp_path / "results", matrix, {})
    records.finish_run(folder, "interrupted")
    manifest = json.loads((folder / records.MANIFEST_FILE).read_text())
    assert manifest["state"] == "interrupted" and manifest["ended"] >= manifest["started"]


def test_schema_2_runs_are_converted_as_they_are_read_and_never_rewritten(capsys):
    from runner.cli import main

    for folder in sorted((Path(__file__).parent / "fixtures" / "runs").iterdir()):
        before = (folder / RESULTS_FILE).read_bytes()
        assert {json.loads(line)["schema"] for line in before.splitlines()} == {2}
        loaded = records.load(folder)
        assert loaded and all(record.schema == RESULTS_SCHEMA and record.executor == "docker" for record in loaded)
        for record in loaded:
            gpu_axes = {"cuda", "cudnn"} if record.kind == "gpu" else set()
            assert set(record.axes) == {"kind", "framework", "framework_version"} | gpu_axes
        assert all(record.environment["image"].startswith("cudnn-matrix/") for record in loaded)
        assert main(["report", str(folder), "--format", "json"]) in (0, 1)
        assert json.loads(capsys.readouterr().out)["cells"]
        assert (folder / RESULTS_FILE).read_bytes() == before


def test_schema_1_measurements_are_converted_as_they_are_read(tmp_path):
    """Keras' figures beside the timer's in each epoch, figures of later workloads missing, a GPU's not_sampled only where it left some out."""
    gpu = measurements.gpu_epoch(energy_joules=300.0)
    old = dict(measurement([]), schema=1, epochs=[
        {"seconds": 9.5, "train_seconds": 8.0, "images_per_second": 250.0, "loss": 0.69, "val_accuracy": 0.5},
        {"seconds": 4.0, "train_seconds": 3.0, "images_per_second": 600.0, "steps": 63, "input_wait_share": 0.1, "loss": 0.6,
         "telemetry": measurements.epoch_telemetry([gpu])}],
        telemetry=dict(measurements.run_telemetry([{k: v for k, v in measurements.gpu_run_facts().items() if k != "not_sampled"}])))
    line = json.loads(OK.to_json())
    line["measurement"] = old
    (tmp_path / RESULTS_FILE).write_text(json.dumps(line) + "\n")

    (converted,) = records.load(tmp_path)

    warmup, timed = converted.measurement.epochs
    assert converted.measurement.schema == MEASUREMENT_SCHEMA
    assert (warmup.logs, warmup.steps, warmup.telemetry) == ({"loss": 0.69, "val_accuracy": 0.5}, None, None)
    assert (timed.logs, timed.steps, timed.input_wait_share, timed.telemetry.gpus[0].energy_joules) == ({"loss": 0.6}, 63, 0.1, 300.0)
    assert converted.measurement.telemetry.gpus[0].not_sampled == {}
    assert (warmup.validation_seconds, timed.validation_seconds) == (None, None)
    assert json.loads((tmp_path / RESULTS_FILE).read_text())["measurement"]["schema"] == 1  # never rewritten


def test_schema_2_measurements_read_without_validation_timed_apart(tmp_path):
    epochs = [{key: value for key, value in measurements.epoch(4.0, 3.0).items() if key != "validation_seconds"}] * 2
    line = json.loads(OK.to_json())
    line["measurement"] = dict(measurement([]), schema=2, epochs=epochs)
    (tmp_path / RESULTS_FILE).write_text(json.dumps(line) + "\n")

    (converted,) = records.load(tmp_path)

    assert [(epoch.seconds, epoch.train_seconds, epoch.validation_seconds) for epoch in converted.measurement.epochs] == [(4.0, 3.0, None)] * 2


def test_an_older_schema_says_which_runner_wrote_it(tmp_path):
    folder = tmp_path / "old-run"
    folder.mkdir()
    (folder / records.MANIFEST_FILE).write_text(json.dumps({"runner_version": "0.0.9"}))
    old = json.loads(OK.to_json())
    old["schema"] = 1
    (folder / RESULTS_FILE).write_text(json.dumps(old) + "\n")
    with pytest.raises(UserError, match=r"results.jsonl:1: results schema 1 is older than this runner reads \(2, 3\): render it with cudnn-matrix 0.0.9"):
        records.load(folder)


def test_runs_started_in_the_same_second_get_distinct_folders_atomically(tmp_path, monkeypatch):
    class Frozen(records.datetime):
        @classmethod
        def now(cls, tz=None):
            return records.datetime(2026, 11, 29, 12, 0, 0, tzinfo=tz)

    monkeypatch.setattr(records, "datetime", Frozen)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("workloads: {}\n")
    (tmp_path / "results" / "20261129-120000").mkdir(parents=True)  # another runner's, made a moment ago
    barrier = threading.Barrier(8)

    def start():
        barrier.wait()
        return records.new_run(tmp_path / "results", matrix, {})

    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: start(), range(8)))

    assert len(set(folders)) == 8
    assert sorted(folder.name for folder in folders) == sorted(f"20261129-120000-{n}" for n in range(2, 10))


def test_a_run_exists_and_can_be_found_from_the_moment_it_starts(tmp_path):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("workloads: {}\n")
    folder = records.new_run(tmp_path / "results", matrix, {})
    assert records.latest_run(tmp_path / "results") == folder
    assert records.load(folder) == []
    assert json.loads((folder / records.MANIFEST_FILE).read_text())["state"] == "running"


def test_a_held_run_is_in_progress_and_cannot_be_held_twice(tmp_path):
    assert not records.in_progress(tmp_path)
    with records.hold(tmp_path):
        assert records.in_progress(tmp_path)
        with pytest.raises(UserError, match="another runner is working on this run right now"):
            with records.hold(tmp_path):
                pass
    assert not records.in_progress(tmp_path)
