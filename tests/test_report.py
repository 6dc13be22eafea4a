"""Reports: golden output from stored real runs, and noise marking on constructed cases."""

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from runner import records
from runner.errors import UserError
from runner.plot import plot
from runner.report import COLUMNS, compare, render
from runner.stats import Summary, speedup, summarize
from test_records import epoch, measurement, record

FIXTURES = Path(__file__).parent / "fixtures"
RUN_A, RUN_B = sorted((FIXTURES / "runs").iterdir())


def test_stored_run_renders_to_the_golden_report():
    assert render(records.load(RUN_A)) + "\n" == (FIXTURES / f"report-{RUN_A.name}.txt").read_text()


def test_two_stored_runs_compare_to_the_golden_table():
    compared = compare(records.load(RUN_A), records.load(RUN_B), RUN_A.name, RUN_B.name)
    assert compared + "\n" == (FIXTURES / "compare.txt").read_text()


def timed(cell_id, seconds, kind="gpu", cudnn="", repeat=0, cuda="12.6"):
    """A measured record whose timed epochs are `seconds`, after one 5 s warm-up epoch."""
    data = measurement([epoch(5.0, 10.0)] + [epoch(s, 2000 / s) for s in seconds], data_kind="real")
    if kind == "gpu":
        data["gpu"] = {"cudnn": {"path": "/x/libcudnn.so.9", "version": f"{cudnn}.0"}}
    return record(cell_id, measurement=data, kind=kind, cudnn=cudnn, cuda=cuda if kind == "gpu" else "", repeat=repeat)


CPU = timed("cpu-tf2.21-dogs-vs-cats", [10.0, 10.2, 9.9], kind="cpu")
GPU_93 = timed("gpu-cuda12.6-cudnn9.3-tf2.21-dogs-vs-cats", [1.00, 1.02, 0.98], cudnn="9.3")
GPU_95 = timed("gpu-cuda12.6-cudnn9.5-tf2.21-dogs-vs-cats", [0.99, 1.01, 1.00], cudnn="9.5")
GPU_98 = timed("gpu-cuda12.6-cudnn9.8-tf2.21-dogs-vs-cats", [0.80, 0.81, 0.79], cudnn="9.8")


def test_ratios_carry_min_max_bounds_and_overlap_is_noise():
    ratio = speedup(summarize([10.0, 10.2, 9.9]), summarize([0.80, 0.81, 0.79]))
    assert (round(ratio.value, 3), round(ratio.low, 3), round(ratio.high, 3)) == (12.5, 12.222, 12.911)
    assert not ratio.within_noise
    assert speedup(summarize([1.00, 1.02, 0.98]), summarize([0.99, 1.01, 1.00])).within_noise
    assert Summary(2.0, 1.0, 3.0, 3).spread == 1.0


def test_sentences_say_gpu_vs_cpu_and_each_cudnn_vs_the_previous_marking_noise():
    text = render([CPU, GPU_95, GPU_93, GPU_98])
    said = text.split("\n\n")[1].splitlines()
    assert said == [
        "dogs-vs-cats: the GPU (gpu-cuda12.6-cudnn9.8-tf2.21-dogs-vs-cats) is 12.5x the CPU (bounds 12.2-12.9x).",
        "dogs-vs-cats: cuDNN 9.5 vs 9.3 (CUDA 12.6, TF/Keras 2.21.0 / 3.12.0): +0.0% (-3.0% to +3.0%, within noise).",
        "dogs-vs-cats: cuDNN 9.8 vs 9.5 (CUDA 12.6, TF/Keras 2.21.0 / 3.12.0): +25.0% (+22.2% to +27.8%).",
        "~ within noise: the min-max bounds of the speed-up include 1.0x.",
    ]


def test_rows_show_speed_up_against_the_cpu_and_the_cudnn_named_and_loaded():
    rows = list(csv.DictReader(io.StringIO(render([CPU, GPU_93, GPU_98], "csv"))))
    assert list(rows[0]) == COLUMNS
    assert [row["speed-up"] for row in rows] == ["baseline", "10.00x (9.71-10.41)", "12.50x (12.22-12.91)"]
    assert [row["cuDNN named / loaded"] for row in rows] == ["-", "9.3 / 9.3.0", "9.8 / 9.8.0"]
    assert rows[1]["epoch s median (min-max)"] == "1.00 (0.98-1.02)"
    assert rows[1]["first epoch s"] == "5.00"


def test_a_named_baseline_replaces_the_cpu_and_noise_is_marked_in_the_table():
    rows = json.loads(render([CPU, GPU_93, GPU_95], "json", baseline=GPU_93.cell_id))["cells"]
    assert [row["speed-up"] for row in rows] == ["0.10x (0.10-0.10)", "baseline", "1.00x (0.97-1.03) ~"]


def test_repeats_are_pooled_into_one_row():
    again = timed(GPU_93.cell_id, [1.10, 1.12], cudnn="9.3", repeat=1)
    rows = json.loads(render([CPU, GPU_93, again], "json"))["cells"]
    assert len(rows) == 2
    assert rows[1]["epoch s median (min-max)"] == "1.02 (0.98-1.12)"  # median of 0.98, 1.00, 1.02, 1.10, 1.12
    assert rows[1]["first epoch s"] == "5.00, 5.00"


def test_markdown_and_plain_formats():
    assert render([CPU], "markdown").splitlines()[1].startswith("|:---")
    assert not render([CPU], "plain").startswith("|")


def test_cells_without_numbers_are_listed_and_shared_reasons_grouped():
    skipped = [record(f"gpu-{n}", "skipped", "no GPU here", kind="gpu") for n in (1, 2)]
    failed = record("cpu-x", "failed", "the workload exited with code 137: Killed")
    section = render([CPU, *skipped, failed]).split("Not measured:\n")[1].split("\n\n")[0]
    assert section.splitlines() == [
        "- 2 cells skipped: no GPU here: gpu-1, gpu-2",
        "- cpu-x: failed: the workload exited with code 137: Killed",
    ]


def test_synthetic_data_is_said_under_the_table():
    text = render([record(measurement=measurement([epoch(2.0, 1.0), epoch(1.0, 2.0)]))])
    assert text.endswith("Synthetic data (no real data was present) for: dogs-vs-cats. Timings are real; accuracy is meaningless.")


def test_the_chart_is_a_real_png_with_something_drawn(tmp_path):
    path = plot([CPU, GPU_93, GPU_98], tmp_path / "epochs.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.width >= 800 and image.height >= 200
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert len(colours) > 50  # bars, error bars, labels: not a blank canvas


def test_a_chart_needs_a_measured_cell(tmp_path):
    with pytest.raises(UserError, match="no measured cell in this run"):
        plot([record("cpu-x", "failed", "x")], tmp_path / "none.png")


def test_a_failed_repeat_is_counted_and_a_resumed_skip_is_not():
    failed_repeat = record(GPU_93.cell_id, "failed", "the workload exited with code 137: Killed", kind="gpu", cudnn="9.3", cuda="12.6", repeat=1)
    skipped_before_resume = record(GPU_95.cell_id, "skipped", "no GPU here", kind="gpu", cudnn="9.5", cuda="12.6")
    rows = json.loads(render([CPU, GPU_93, failed_repeat, skipped_before_resume, GPU_95], "json"))
    statuses = {row["cell"]: row["status"] for row in rows["cells"]}
    assert statuses[GPU_93.cell_id] == "ok (1 of 2 failed)"
    assert statuses[GPU_95.cell_id] == "ok"
    assert rows["not_measured"] == [f"- {GPU_93.cell_id}: ok (1 of 2 failed): the workload exited with code 137: Killed"]
