"""Reports: golden output from stored real runs, and intervals and verdicts on constructed repeats."""

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from measurements import gpu_run_facts, run_telemetry
from runner import records
from runner.errors import UserError
from runner.analysis import analyze
from runner.report import CELL_KEYS, COLUMNS, COMPARE_KEYS, OUTLIER_NOTE, SCHEMA_VERSION, compare, render
from runner.site.charts import run_chart
from runner.stats import VERDICTS
from test_records import epoch, measurement, record
from workload.contract import Measurement

FIXTURES = Path(__file__).parent / "fixtures"
RUN_A, RUN_B = sorted((FIXTURES / "runs").iterdir())


def test_stored_run_renders_to_the_golden_report():
    assert render(records.load(RUN_A)) + "\n" == (FIXTURES / f"report-{RUN_A.name}.txt").read_text()


def test_stored_run_renders_to_the_golden_wide_report():
    assert render(records.load(RUN_A), wide=True) + "\n" == (FIXTURES / f"report-{RUN_A.name}-wide.txt").read_text()


def test_the_default_table_fits_100_columns_and_names_its_verdicts_basis():
    as_slow = repeated("gpu-cuda12.6-cudnn9.2-tf2.21-dogs-vs-cats", 10.0, cudnn="9.2")  # the same within 5%
    on_the_edge = repeated("gpu-cuda12.6-cudnn9.1-tf2.21-dogs-vs-cats", 10.0 / 1.05, cudnn="9.1")  # the widest verdict
    text = render(CPU + GPU_95 + GPU_93 + GPU_98 + [timed("gpu-cuda12.6-cudnn9.9-tf2.21-dogs-vs-cats", [1.0], cudnn="9.9")] + as_slow
                  + on_the_edge)
    table = text.split("\n\n")[0].splitlines()
    assert table[0] == f"dogs-vs-cats (speed-ups against {CPU_ID}):"
    assert max(map(len, table)) <= 100
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table[3:] if line.startswith("|")]
    assert rows == [["cpu-tf2.21", "ok", "10.00", "baseline", "-"],
                    ["gpu-cuda12.6-cudnn9.5-tf2.21", "ok", "1.00", "10.0x (9.71-10.3)", "faster"],
                    ["gpu-cuda12.6-cudnn9.3-tf2.21", "ok", "1.00", "10.0x (9.71-10.3)", "faster"],
                    ["gpu-cuda12.6-cudnn9.8-tf2.21", "ok", "0.80", "12.5x (12.1-12.9)", "faster"],
                    ["gpu-cuda12.6-cudnn9.9-tf2.21", "ok", "1.00", "10.0x", "needs ~3 repeats"],
                    ["gpu-cuda12.6-cudnn9.2-tf2.21", "ok", "10.00", "1.00x (0.97-1.03)", "same within 5%"],
                    ["gpu-cuda12.6-cudnn9.1-tf2.21", "ok", "9.52", "1.05x (1.02-1.08)", "needs over 100 repeats"]]
    assert "train s: the median repeat's timed epochs, training only (validation is timed apart); the speed-up" in text
    wide = render(CPU + GPU_93, wide=True)
    assert "as images/s is" in wide


def test_two_stored_runs_compare_to_the_golden_table():
    compared = compare(records.load(RUN_A), records.load(RUN_B), RUN_A.name, RUN_B.name)
    assert compared + "\n" == (FIXTURES / "compare.txt").read_text()


def timed(cell_id, seconds, kind="gpu", cudnn="", repeat=0, cuda="12.6"):
    """A measured record whose timed epochs are `seconds`, after one 5 s warm-up epoch."""
    data = measurement([epoch(5.0, 10.0)] + [epoch(s, 2000 / s) for s in seconds], data_kind="real")
    if kind == "gpu":
        data["gpu"] = {"cudnn": {"path": "/x/libcudnn.so.9", "version": f"{cudnn}.0"}}
    return record(cell_id, measurement=data, kind=kind, cudnn=cudnn, cuda=cuda if kind == "gpu" else "", repeat=repeat)


JITTER = (1.00, 1.01, 0.99, 1.02, 0.98)  # one factor per repeat: repeats on a quiet host differ by a percent or two


def repeated(cell_id, seconds, kind="gpu", cudnn="", order=JITTER):
    """Five repeats of a cell whose epochs take about `seconds`, each repeat's three timed epochs a little apart."""
    return [timed(cell_id, [seconds * factor * spread for spread in (1.0, 1.005, 0.995)], kind, cudnn, repeat)
            for repeat, factor in enumerate(order)]


CPU_ID, GPU_93_ID, GPU_95_ID, GPU_98_ID = ("cpu-tf2.21-dogs-vs-cats", "gpu-cuda12.6-cudnn9.3-tf2.21-dogs-vs-cats",
                                           "gpu-cuda12.6-cudnn9.5-tf2.21-dogs-vs-cats", "gpu-cuda12.6-cudnn9.8-tf2.21-dogs-vs-cats")
CPU = repeated(CPU_ID, 10.0, kind="cpu")
GPU_93 = repeated(GPU_93_ID, 1.00, cudnn="9.3")
GPU_95 = repeated(GPU_95_ID, 1.00, cudnn="9.5", order=JITTER[::-1])  # the same speed as 9.3: no difference to find
GPU_98 = repeated(GPU_98_ID, 0.80, cudnn="9.8")


def test_sentences_say_gpu_vs_cpu_and_each_cudnn_vs_the_previous_with_interval_and_verdict():
    text = render(CPU + GPU_95 + GPU_93 + GPU_98)
    said = text.split("\n\n")[1].splitlines()
    assert said == [
        f"dogs-vs-cats: the GPU ({GPU_98_ID}) is 12.5x the CPU (12.1-12.9x): faster.",
        "dogs-vs-cats: cuDNN 9.5 vs 9.3 (CUDA 12.6, tf 2.21.0, Keras 3.12.0): +0.0% (-2.9% to +3.0%): same within 5%.",
        "dogs-vs-cats: cuDNN 9.8 vs 9.5 (CUDA 12.6, tf 2.21.0, Keras 3.12.0): +25.0% (+21.3% to +28.8%): faster.",
        "Speed-ups: ratios of the median repeat (one fresh process; its number is the median of its timed epochs), "
        "with a 95% bootstrap interval.",
        "With 3 repeats or more a cell, faster or slower only when Welch's t-test on log seconds, Holm-corrected over the 5 "
        "comparisons here, gives p < 0.05 and the whole interval is more than 5% from 1.00x; same within 5% when the whole "
        "interval is inside it; otherwise no difference is shown, with about how many repeats would decide.",
    ]


def wide_rows(records):
    """The wide text table's rows, as dicts by column."""
    lines = render(records, wide=True).split("\n\n")[0].splitlines()
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines if line.startswith("|") and not line.startswith("|-")]
    return [dict(zip(cells[0], row)) for row in cells[1:]]


def test_rows_show_repeats_and_the_speed_up_against_the_cpu_and_the_cudnn_named_and_loaded():
    rows = wide_rows(CPU + GPU_93 + GPU_98)
    assert list(rows[0]) == COLUMNS
    assert [row["speed-up"] for row in rows] == ["baseline", "10.00x (9.71-10.30) faster", "12.50x (12.13-12.88) faster"]
    assert [row["cuDNN named / loaded"] for row in rows] == ["-", "9.3 / 9.3.0", "9.8 / 9.8.0"]
    assert [row["repeats"] for row in rows] == ["5", "5", "5"]
    assert rows[1]["train s median (repeat range)"] == "1.00 (0.98-1.02)"
    assert rows[1]["first epoch train s"] == "5.00 (5.00-5.00)"
    assert rows[1]["outlier epochs"] == "0"


def test_csv_is_one_row_of_numbers_per_cell_under_the_documented_keys():
    rows = list(csv.DictReader(io.StringIO(render(CPU + GPU_93 + GPU_98, "csv"))))
    assert list(rows[0]) == CELL_KEYS
    assert [(row["cell_id"], row["is_baseline"], row["baseline"]) for row in rows] == [
        (CPU_ID, "true", ""), (GPU_93_ID, "false", CPU_ID), (GPU_98_ID, "false", CPU_ID)]
    assert [round(float(row["speedup"]), 2) if row["speedup"] else None for row in rows] == [None, 10.0, 12.5]
    assert [row["speedup_verdict"] for row in rows] == ["", "faster", "faster"]
    assert [(row["cudnn_named"], row["cudnn_loaded"], row["repeats"]) for row in rows] == [("", "", "5"), ("9.3", "9.3.0", "5"), ("9.8", "9.8.0", "5")]
    assert float(rows[1]["train_seconds_low"]) == pytest.approx(0.98) and float(rows[1]["first_train_seconds_median"]) == 5.0


def test_json_cells_are_numbers_under_the_documented_keys():
    report = json.loads(render(CPU + GPU_93, "json"))
    assert report["schema_version"] == SCHEMA_VERSION and report["min_effect"] == 0.05
    cpu, gpu = report["cells"]
    assert list(gpu) == CELL_KEYS + ["first_train_seconds", "train_seconds_per_repeat", "kernel_time"]
    assert gpu["kernel_time"] is None and gpu["convolution_share"] is None  # not profiled
    assert (gpu["repeats"], gpu["outlier_epochs"], gpu["framework_version"], gpu["keras_version"]) == (5, 0, "2.21.0", "3.12.0")
    assert gpu["train_seconds_median"] == pytest.approx(1.0) and gpu["speedup"] == pytest.approx(10.0, rel=0.01)
    assert gpu["first_train_seconds"] == [5.0] * 5 and len(gpu["train_seconds_per_repeat"]) == 5
    assert (cpu["is_baseline"], cpu["speedup"], cpu["gpu_type"], cpu["peak_rss_bytes"]) == (True, None, None, None)


def test_a_named_baseline_replaces_the_cpu():
    rows = json.loads(render(CPU + GPU_93 + GPU_95, "json", baseline=GPU_93_ID))["cells"]
    assert [row["is_baseline"] for row in rows] == [False, True, False]
    assert [row["speedup_verdict"] for row in rows] == ["slower", None, "same"]
    assert [round(row["speedup"], 2) if row["speedup"] else None for row in rows] == [0.1, None, 1.0]


def test_json_gives_every_compared_pair_with_its_statistics():
    report = json.loads(render(CPU + GPU_93 + GPU_95 + GPU_98, "json"))
    assert set(report) == {"schema_version", "min_effect", "alpha", "test", "correction", "interval", "verdict_rule", "cells",
                           "comparisons", "sentences", "notes"}
    assert (report["correction"], report["test"]) == ("holm", "welch_t_log_seconds")
    assert set(report["notes"]) == {"outlier_epochs", "input_bound", "compiled_while_timed", "telemetry_warnings", "not_measured",
                                    "synthetic_data", "unisolated_executors"}
    asked = [(c["question"], c["baseline"], c["other"], c["verdict"]) for c in report["comparisons"]]
    assert asked == [
        ("speed-up", CPU_ID, GPU_93_ID, "faster"), ("speed-up", CPU_ID, GPU_95_ID, "faster"), ("speed-up", CPU_ID, GPU_98_ID, "faster"),
        ("GPU vs CPU", CPU_ID, GPU_98_ID, "faster"),
        ("cuDNN step", GPU_93_ID, GPU_95_ID, "same"), ("cuDNN step", GPU_95_ID, GPU_98_ID, "faster"),
    ]
    for compared in report["comparisons"]:
        assert all(isinstance(compared[key], float) for key in ("ratio", "ci_low", "ci_high", "p_value", "p_adjusted"))
        assert compared["p_value"] <= compared["p_adjusted"] and compared["family"] == 5  # the GPU vs CPU pair is a speed-up too
        assert compared["ci_low"] <= compared["ratio"] <= compared["ci_high"]
        assert (compared["repeats_baseline"], compared["repeats_other"], compared["repeats_needed"]) == (5, 5, None)
        assert compared["not_comparable"] == []
        assert compared["verdict"] in VERDICTS


def test_one_repeat_per_cell_says_how_many_are_needed():
    report = json.loads(render([CPU[0], GPU_98[0]], "json"))
    (speedup, gpu_vs_cpu) = report["comparisons"]
    assert (speedup["verdict"], speedup["repeats_needed"], speedup["ci_low"], speedup["repeats_baseline"]) == ("no_difference", 3, None, 1)
    assert (report["cells"][1]["speedup_repeats_needed"], report["cells"][1]["speedup_ci_low"]) == (3, None)
    assert report["sentences"] == [
        f"dogs-vs-cats: the GPU ({GPU_98_ID}) is 12.5x the CPU: no difference shown (needs ~3 repeats)."]


def test_each_record_is_one_repeat_and_its_number_is_the_median_of_its_epochs():
    again = timed(GPU_93_ID, [1.10, 1.12], cudnn="9.3", repeat=1)
    rows = json.loads(render([*CPU, GPU_93[0], again], "json"))["cells"]
    assert len(rows) == 2
    assert rows[1]["repeats"] == 2
    assert rows[1]["train_seconds_per_repeat"] == [1.0, 1.11] and rows[1]["train_seconds_median"] == pytest.approx(1.055)
    assert rows[1]["first_train_seconds"] == [5.0, 5.0]


def test_a_stalled_epoch_is_flagged_and_counted_and_the_verdict_stands():
    stalled = repeated(GPU_98_ID, 0.80, cudnn="9.8")
    stalled[2] = timed(GPU_98_ID, [0.79, 3.20, 0.80], cudnn="9.8", repeat=2)
    text = render(CPU + stalled)
    rows = wide_rows(CPU + stalled)
    assert [row["outlier epochs"] for row in rows] == ["0", "1"]
    assert rows[1]["speed-up"] == "12.50x (12.13-12.76) faster"  # the stalled repeat's median is still 0.80
    assert text.split("\n\n")[2].splitlines() == [OUTLIER_NOTE, f"- {GPU_98_ID}: repeat 3, epoch 3: 3.20 s"]
    assert json.loads(render(CPU + stalled, "json"))["notes"]["outlier_epochs"] == [{"cell_id": GPU_98_ID, "repeat": 3, "epoch": 3, "seconds": 3.2}]


def test_compare_judges_each_cell_as_the_report_does():
    b = [timed(r.cell_id, [s / 2 for s in (e.seconds for e in r.measurement.epochs[1:])], "gpu", "9.3", r.repeat) for r in GPU_93]
    report = json.loads(compare(GPU_93, b, "before", "after", "json"))
    (compared,) = report["cells"]
    assert list(compared) == COMPARE_KEYS and (report["schema_version"], report["run_a"], report["run_b"]) == (SCHEMA_VERSION, "before", "after")
    assert compared["cell_id"] == GPU_93_ID and (compared["repeats_a"], compared["repeats_b"]) == (5, 5)
    assert compared["verdict"] == "faster" and compared["ci_low"] < 2.0 < compared["ci_high"] and compared["ratio"] == pytest.approx(2.0)
    assert (report["only_in_a"], report["only_in_b"]) == ([], [])
    assert list(csv.DictReader(io.StringIO(compare(GPU_93, b, "before", "after", "csv"))))[0]["verdict"] == "faster"


def test_markdown_and_plain_formats():
    assert render(CPU, "markdown").splitlines()[2].startswith("|:---")
    assert not render(CPU, "plain").splitlines()[1].startswith("|")


def test_cells_without_numbers_are_listed_and_shared_reasons_grouped():
    skipped = [record(f"gpu-{n}", "skipped", "no GPU here", kind="gpu") for n in (1, 2)]
    failed = record("cpu-x", "failed", "the workload exited with code 137: Killed")
    section = render([*CPU, *skipped, failed]).split("Not measured:\n")[1].split("\n\n")[0]
    assert section.splitlines() == [
        "- 2 cells skipped: no GPU here: gpu-1, gpu-2",
        "- cpu-x: failed: the workload exited with code 137: Killed",
    ]


def test_synthetic_data_is_said_under_the_table():
    text = render([record(measurement=measurement([epoch(2.0, 1.0), epoch(1.0, 2.0)]))])
    assert text.endswith("Synthetic data (no real data was present) for: dogs-vs-cats. Timings are real; accuracy is meaningless.")


def test_the_chart_is_a_real_png_with_something_drawn(tmp_path):
    path = run_chart(analyze(CPU + GPU_93 + GPU_98 + [timed("gpu-cuda12.6-cudnn9.5-tf2.21-dogs-vs-cats", [0.9], cudnn="9.5")]), tmp_path / "epochs.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.width >= 800 and image.height >= 200
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert len(colours) > 50  # bars, error bars, intervals, labels: not a blank canvas


def test_a_chart_needs_a_measured_cell(tmp_path):
    with pytest.raises(UserError, match="no measured cell in this run"):
        run_chart(analyze([record("cpu-x", "failed", "x")]), tmp_path / "none.png")


def test_a_failed_repeat_is_counted_and_a_resumed_skip_is_not():
    failed_repeat = record(GPU_93_ID, "failed", "the workload exited with code 137: Killed", kind="gpu", cudnn="9.3", cuda="12.6", repeat=1)
    skipped_before_resume = record(GPU_95_ID, "skipped", "no GPU here", kind="gpu", cudnn="9.5", cuda="12.6")
    rows = json.loads(render([*CPU, GPU_93[0], failed_repeat, skipped_before_resume, GPU_95[0]], "json"))
    statuses = {row["cell_id"]: row["status"] for row in rows["cells"]}
    assert statuses[GPU_93_ID] == "ok (1 of 2 failed)"
    assert statuses[GPU_95_ID] == "ok"
    assert rows["notes"]["not_measured"] == [{"status": "ok (1 of 2 failed)", "reason": "the workload exited with code 137: Killed", "cells": [GPU_93_ID]}]


def test_cudnn_steps_compare_within_one_gpu_model_never_across_two():
    def typed(gpu_type, cudnn, seconds):
        cell = timed(f"gpu-{gpu_type}-cuda12.6-cudnn{cudnn}-tf2.21-dogs-vs-cats", seconds, cudnn=cudnn)
        return dataclasses.replace(cell, axes={**cell.axes, "gpu_type": gpu_type})

    said = json.loads(render([typed("h100", "9.8", [1.0, 1.1]), typed("h200", "9.8", [0.6, 0.7]),
                              typed("h200", "9.5", [0.8, 0.9])], "json"))["sentences"]
    steps = [line for line in said if "cuDNN 9.8 vs" in line]
    assert len(steps) == 1 and "cuDNN 9.8 vs 9.5" in steps[0]


def test_a_cell_that_waits_for_input_is_marked_input_bound_with_the_advice():
    def waiting(cell_id, share):
        data = measurement([epoch(5.0, 10.0)] + [dict(epoch(1.0, 2000.0), input_wait_share=share) for _ in range(2)], data_kind="real")
        return record(cell_id, measurement=data)

    text = render([waiting("cpu-tf2.21-dogs-vs-cats", 0.05), waiting("cpu-tf2.21-fast", 0.35)])
    section = text.split("Input-bound cells:")[1].split("\n\n")[0]
    assert "compare devices on `input: cached`, or raise parallel_calls" in section
    assert section.strip().splitlines()[1:] == ["- cpu-tf2.21-fast: 35% of each step waiting for input"]
    assert json.loads(render([waiting("cpu-tf2.21-fast", 0.35)], "json"))["notes"]["input_bound"] == [{"cell_id": "cpu-tf2.21-fast", "input_wait_share": 0.35}]


def test_a_jax_cell_that_compiled_in_a_timed_epoch_is_named_with_how_many_repeats_did():
    def compiled(cell_id, compiles, repeat):
        data = measurement([epoch(5.0, 10.0), epoch(1.0, 2000.0), epoch(1.0, 2000.0)])
        data["model"] = {"compiles_in_timed_epochs": compiles}
        return record(cell_id, measurement=data, repeat=repeat)

    loaded = [compiled("cpu-jax0.10-mnist", 1, 0), compiled("cpu-jax0.10-mnist", 0, 1), compiled("cpu-jax0.10-dogs-vs-cats", 0, 0),
              compiled("cpu-torch2.11-mnist", "not applicable (counted for jax)", 0)]
    section = render(loaded).split("Compiled while timed:")[1].split("\n\n")[0]
    assert "one more warm-up epoch, warmup_epochs, keeps it out" in section
    assert section.strip().splitlines()[1:] == ["- cpu-jax0.10-mnist: in 1 of 2 repeat(s)"]
    assert json.loads(render(loaded, "json"))["notes"]["compiled_while_timed"] == [{"cell_id": "cpu-jax0.10-mnist", "repeats": 1}]


# --- telemetry: what the machine did, on constructed records ---------------------------------------


def gpu_figures(energy=300.0, sm=(1980, 1980), reasons=(), source="counter"):
    """One GPU's figures for one epoch, as workload/telemetry_sampler.py records them."""
    return {"index": 0, "samples": 8, "busy_samples": 8, "energy_joules": energy, "energy_source": source,
            "power_watts_mean": 300.0, "power_watts_max": 310.0, "sm_clock_mhz_min": sm[0], "sm_clock_mhz_max": sm[1],
            "memory_clock_mhz_min": 2619, "memory_clock_mhz_max": 2619, "temperature_c_max": 70, "utilisation_percent_mean": 97.0,
            "memory_used_bytes_max": 12 * 2**30, "clock_event_reasons": list(reasons)}


def observed(cell_id, seconds, gpus, kind="gpu", cudnn="9.3", repeat=0, applications=(1980, 1980)):
    """A record like timed(), each epoch with telemetry: `gpus(number)` gives epoch `number`'s GPU list (or a string)."""
    made = timed(cell_id, seconds, kind, cudnn, repeat)
    data = dataclasses.asdict(made.measurement)
    for number, entry in enumerate(data["epochs"], 1):
        entry["telemetry"] = {"samples": 8, "rss_bytes_max": 900 * 2**20, "process_peak_rss_bytes": (900 + number) * 2**20,
                              "children_peak_rss_bytes": 0, "cpu_seconds": 1.5, "cpu_utilisation": 0.4, "gpus": gpus(number)}
    facts = [gpu_run_facts(applications_sm_clock_mhz=applications[0], default_applications_sm_clock_mhz=applications[1])]
    data["telemetry"] = run_telemetry(gpus(1) if isinstance(gpus(1), str) else facts)
    return dataclasses.replace(made, measurement=Measurement.from_dict(data))


STEADY_GPU = lambda number: [gpu_figures()]  # noqa: E731
NO_DRIVER = "not available: no NVIDIA driver (libnvidia-ml.so.1 not found)"


def test_telemetry_adds_peak_memory_energy_and_images_per_joule_columns():
    cpu = [observed(CPU_ID, [10.0, 10.1, 9.9], lambda n: NO_DRIVER, kind="cpu", repeat=r) for r in range(2)]
    gpu = [observed(GPU_93_ID, [1.0, 1.01, 0.99], lambda n: [gpu_figures(energy=300.0 + n)], repeat=r) for r in range(2)]
    rows = wide_rows(cpu + gpu)
    assert list(rows[0]) == COLUMNS + ["peak RSS", "GPU memory peak", "GPU energy/epoch", "images/J"]
    assert [row["peak RSS"] for row in rows] == ["904 MiB", "904 MiB"]  # the highest of any epoch: the last, the 4th
    assert [row["GPU memory peak"] for row in rows] == ["-", "12.00 GiB"]
    assert [row["GPU energy/epoch"] for row in rows] == ["-", "303 J"]  # median of the timed epochs' 302, 303, 304 J
    assert rows[1]["images/J"] == "6.6"  # 2000/s x 1.0 s of training = 2000 images over 303 J
    numbers = list(csv.DictReader(io.StringIO(render(cpu + gpu, "csv"))))
    assert [(row["peak_rss_bytes"], row["gpu_memory_bytes"]) for row in numbers] == [(str(904 * 2**20), ""), (str(904 * 2**20), str(12 * 2**30))]
    assert float(numbers[1]["gpu_energy_joules_per_epoch"]) == 303.0 and round(float(numbers[1]["images_per_joule"]), 2) == 6.6
    assert list(wide_rows(cpu)[0]) == COLUMNS + ["peak RSS"]
    assert "Telemetry" not in render(cpu)  # a CPU cell has no GPU to warn about


def test_energy_integrated_from_power_samples_is_marked():
    gpu = [observed(GPU_93_ID, [1.0, 1.0], lambda n: [gpu_figures(energy=250.0, source="power samples")])]
    text = render(gpu, wide=True)
    assert "| 250 J*" in text
    assert "* GPU energy integrated from power samples: the GPU has no energy counter." in text


def test_throttling_in_timed_epochs_is_said_in_words_and_the_warm_up_is_not_judged():
    def hot(number):
        return [gpu_figures(sm=(1410, 1980), reasons=["hw_thermal_slowdown"] if number in (1, 3, 4, 5) else [])]

    def capped(number):
        return [gpu_figures(sm=(1900, 1980), reasons=["sw_power_cap"] if number == 4 else [])]

    records = [observed(GPU_93_ID, [1.0] * 5, hot), observed(GPU_93_ID, [1.0] * 5, capped, repeat=1)]
    report = json.loads(render(records, "json"))
    assert report["notes"]["telemetry_warnings"][0]["subject"] == GPU_93_ID
    assert report["notes"]["telemetry_warnings"][0]["message"] == (
        "thermal throttling (hw_thermal_slowdown) in epochs 3-5 of repeat 1; "
        "power capping (sw_power_cap) in epoch 4 of repeat 2: its timing is not comparable.")


def test_a_cudnn_step_with_a_throttled_cell_says_it_is_not_comparable():
    throttled = [observed(GPU_95_ID, [1.25] * 3, lambda n: [gpu_figures(reasons=["sw_thermal_slowdown"])], cudnn="9.5", repeat=r)
                 for r in range(5)]
    steady = [observed(GPU_93_ID, [1.0] * 3, STEADY_GPU, repeat=r) for r in range(5)]
    said = json.loads(render(steady + throttled, "json"))["sentences"]
    assert said == [
        "dogs-vs-cats: cuDNN 9.5 vs 9.3 (CUDA 12.6, tf 2.21.0, Keras 3.12.0): -20.0% (-20.0% to -20.0%): slower "
        f"(not comparable: {GPU_95_ID} ran throttled or on moving clocks, see below)."]


def test_clocks_that_moved_or_that_nothing_locked_are_warned_about_with_how_to_lock_them():
    moving = observed(GPU_93_ID, [1.0] * 4, lambda n: [gpu_figures(sm=(1755, 1980) if n == 3 else (1980, 1980))])
    steady = observed(GPU_95_ID, [1.0] * 4, STEADY_GPU, cudnn="9.5")
    locked = observed(GPU_98_ID, [1.0] * 4, lambda n: [gpu_figures(sm=(1500, 1500))], cudnn="9.8", applications=(1500, 1980))
    lines = render([moving, steady, locked]).split("\n\n")[-1].splitlines()[1:]
    assert lines == [
        f"- {GPU_93_ID}: SM clock moved between 1755 and 1980 MHz in timed epochs (more than 2% below its highest in epoch 3): "
        "clocks were not locked; lock them for comparable timings, e.g. `sudo nvidia-smi -lgc 1755,1755` (the lowest SM clock seen while busy).",
        f"- {GPU_95_ID}: SM clock held at 1980 MHz, but NVML shows no locked clocks, so a warmer room or another job could move them; "
        "lock them for comparable timings, e.g. `sudo nvidia-smi -lgc 1980,1980` (the lowest SM clock seen while busy).",
    ]
    text = render([moving, steady, locked])
    assert "cudnn-matrix reads clocks and never sets them; `sudo nvidia-smi -rgc` unlocks clocks locked with -lgc" in text


def test_a_gpu_cell_without_gpu_figures_says_why_and_that_nothing_was_checked():
    blind = observed(GPU_93_ID, [1.0, 1.0], lambda n: "not available: the nvidia-ml-py package is not installed (import pynvml failed)")
    assert json.loads(render([blind], "json"))["notes"]["telemetry_warnings"] == [{"subject": GPU_93_ID, "message":
        "no GPU telemetry (not available: the nvidia-ml-py package is not installed (import pynvml failed)): "
        "its clocks and throttling were not checked."}]
    off = dataclasses.replace(blind, measurement=dataclasses.replace(blind.measurement, telemetry="off: CUDNN_MATRIX_TELEMETRY=off"))
    assert "no GPU telemetry (off: CUDNN_MATRIX_TELEMETRY=off)" in render([off])


def test_compare_shows_energy_beside_time_where_both_runs_have_it_and_each_runs_warnings():
    before = [observed(GPU_93_ID, [1.0] * 3, STEADY_GPU, repeat=r) for r in range(2)]
    after = [observed(GPU_93_ID, [1.0] * 3, lambda n: [gpu_figures(energy=240.0, reasons=["sw_power_cap"])], repeat=r) for r in range(2)]
    report = json.loads(compare(before, after, "before", "after", "json"))
    row = report["cells"][0]
    assert (row["gpu_energy_joules_per_epoch_a"], row["gpu_energy_joules_per_epoch_b"], row["energy_ratio"]) == (300.0, 240.0, 0.8)
    assert report["telemetry_warnings_b"] == [
        {"subject": GPU_93_ID, "message": "power capping (sw_power_cap) in epochs 2-4 of repeats 1-2: its timing is not comparable."}]
    assert "| 300 J                | 240 J                | 0.80" in compare(before, after, "before", "after")
    text = compare(before, after, "before", "after")
    assert "energy B / A below 1.00: B used less GPU energy per epoch." in text
    assert "\n\nB (after): telemetry, during timed epochs" in text
    assert "energy" not in compare(GPU_93, GPU_93, "a", "b")  # no telemetry in either: the table as it was
