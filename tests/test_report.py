"""Records -> table: golden checks on hand-built records, and the results folder round trip."""

import json
import os

import pytest

from runner import records
from runner.errors import UserError
from runner.records import RESULTS_FILE, RESULTS_SCHEMA, Record
from runner.report import HEADERS, render


def epoch(seconds, images_per_second, train_seconds=None):
    """One epoch as docker/workload/benchmark.py's timer records it (plus the Keras logs)."""
    return {"seconds": seconds, "train_seconds": train_seconds or seconds * 0.8,
            "images_per_second": images_per_second, "loss": 0.69, "accuracy": 0.5}


def measurement(epochs, warmup=1, data_kind="synthetic", tensorflow="2.21.0"):
    data = {"kind": data_kind, "train_images": 2000, "validation_images": 800}
    if data_kind == "synthetic":
        data["synthetic"] = {"seed": 1}
    return {"schema": 1, "cell_id": "x", "workload": "dogs-vs-cats", "data": data, "warmup_epochs": warmup,
            "epochs": epochs, "versions": {"python": "3.11.9", "tensorflow": tensorflow, "keras": "3.12.0"}}


def record(cell_id="cpu-tf2.21-dogs-vs-cats", status="ok", reason="", measurement=None, **overrides):
    fields = dict(cell_id=cell_id, status=status, reason=reason, kind="cpu", workload="dogs-vs-cats",
                  tensorflow_requested="2.21", cuda_requested="", cudnn_requested="",
                  image="cudnn-matrix/cpu-tf2.21:0123456789abcdef", image_id="sha256:00", base_image="python:3.11-slim",
                  started="2026-01-01T00:00:00+00:00", ended="2026-01-01T00:01:00+00:00", measurement=measurement)
    fields.update(overrides)
    return Record(**fields)


# warm-up 9.50 s; timed 4, 6, 5, 7 -> median 5.50, range 4.00-7.00; timed rates median (300+400)/2 = 350
OK = record(measurement=measurement([epoch(9.5, 50.0), epoch(4.0, 500.0), epoch(6.0, 300.0), epoch(5.0, 400.0), epoch(7.0, 200.0)]))
FAILED = record("cpu-tf2.20-dogs-vs-cats", "failed", "the workload exited with code 137: Killed", tensorflow_requested="2.20")


def table_rows(text):
    """The cells of each row of a github-format table, header first, separator line dropped."""
    lines = [line for line in text.split("\n\n")[0].splitlines() if not set(line) <= set("|-: ")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def test_ok_row_shows_median_and_range_of_timed_epochs_and_the_first_apart():
    rows = table_rows(render([OK, FAILED]))

    assert rows[0] == HEADERS
    assert rows[1] == ["cpu-tf2.21-dogs-vs-cats", "ok", "5.50 (4.00-7.00)", "9.50", "350", "synthetic", "2.21.0", "-"]
    assert rows[2] == ["cpu-tf2.20-dogs-vs-cats", "failed", "-", "-", "-", "-", "-", "-"]
    assert len(rows) == 3


def test_several_warmup_epochs_are_all_shown_apart_and_left_out_of_the_median():
    ok = record(measurement=measurement([epoch(12.0, 10.0), epoch(8.25, 20.0), epoch(3.0, 600.0), epoch(2.0, 700.0)], warmup=2, data_kind="real"))

    rows = table_rows(render([ok]))

    assert rows[1] == ["cpu-tf2.21-dogs-vs-cats", "ok", "2.50 (2.00-3.00)", "12.00, 8.25", "650", "real", "2.21.0", "-"]


def test_failed_cells_are_listed_with_their_reason():
    text = render([OK, FAILED, record("gpu-x", "skipped", "no GPU here")])

    assert "\n\nNot measured:\n" in text
    section = text.split("Not measured:\n")[1].split("\n\n")[0]
    assert section.splitlines() == [
        "- cpu-tf2.20-dogs-vs-cats: failed: the workload exited with code 137: Killed",
        "- gpu-x: skipped: no GPU here",
    ]


def test_synthetic_data_is_noted_once_per_workload():
    text = render([OK, FAILED])

    assert text.endswith(
        "\n\nSynthetic data (no real data was present) for: dogs-vs-cats. Timings are real; accuracy is meaningless."
    )
    assert text.count("Synthetic data") == 1


def test_all_ok_on_real_data_has_neither_section():
    ok = record(measurement=measurement([epoch(3.0, 100.0), epoch(2.0, 200.0)], data_kind="real"))

    text = render([ok])

    assert "Not measured" not in text
    assert "Synthetic" not in text
    assert table_rows(text)[1] == ["cpu-tf2.21-dogs-vs-cats", "ok", "2.00 (2.00-2.00)", "3.00", "200", "real", "2.21.0", "-"]


def test_failed_record_that_kept_its_measurement_still_renders_as_failed():
    evidence = measurement([], data_kind="real")
    evidence["failure"] = "expected a GPU, TensorFlow registered none"
    failed = record("gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats", "failed", evidence["failure"], measurement=evidence)

    text = render([failed])

    assert table_rows(text)[1] == ["gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats", "failed", "-", "-", "-", "-", "-", "-"]
    assert "- gpu-cuda12.5-cudnn9.3-tf2.21-dogs-vs-cats: failed: expected a GPU, TensorFlow registered none" in text


# --- records on disk -----------------------------------------------------------------------


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
    assert f"reads schema {RESULTS_SCHEMA}" in message
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

    assert str(caught.value).startswith(f"{results}: no runs yet")


def test_new_run_folders_are_distinct_and_carry_a_manifest(tmp_path):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("workloads: {}\n")

    first = records.new_run(tmp_path / "results", matrix)
    second = records.new_run(tmp_path / "results", matrix)

    assert first != second and first.parent == second.parent == tmp_path / "results"
    assert sorted([first.name, second.name]) == [first.name, second.name]
    manifest = json.loads((first / records.MANIFEST_FILE).read_text())
    assert manifest["run_id"] == first.name
    assert manifest["schema"] == RESULTS_SCHEMA
    assert manifest["matrix_file"] == str(matrix)
    assert len(manifest["matrix_sha256"]) == 64


def test_gpu_rows_show_the_cudnn_named_beside_the_one_loaded():
    loaded = measurement([epoch(3.0, 900.0), epoch(1.0, 2000.0)], data_kind="real")
    loaded["gpu"] = {"cudnn": {"path": "/opt/venv/.../libcudnn.so.9", "version": "9.5.1"}}
    gpu = record("gpu-cuda12.6-cudnn9.5-tf2.21-dogs-vs-cats", kind="gpu", cuda_requested="12.6", cudnn_requested="9.5", measurement=loaded)
    no_gpu = record("gpu-cuda12.6-cudnn9.3-tf2.21-dogs-vs-cats", "failed", "expected a GPU, TensorFlow registered none",
                    kind="gpu", cuda_requested="12.6", cudnn_requested="9.3")

    rows = table_rows(render([gpu, no_gpu]))

    assert rows[1][-1] == "9.5 / 9.5.1"
    assert rows[2][-1] == "9.3 / -"
