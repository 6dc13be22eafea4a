"""bench/gpu_check.py's tables, order, archive and exit status, driven by GPU-shaped records made here (no GPU, no runs).

tests/test_gpu_check_runs.py runs the script itself, as the GPU machine would, on this host's CPU.
"""

import dataclasses
import sys
import tarfile
from pathlib import Path

import pytest

import measurements
from runner.records import Record
from workload.contract import KERNEL_CLASSES, MEASUREMENT_SCHEMA, KernelTime, Measurement

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import gpu_check  # noqa: E402

VERSIONS = {"torch": "2.11", "jax": "0.11", "cuda": "13.0", "cudnn": "9.19"}
CPU_DOGS = "cpu-torch2.11-baseline-dogs-vs-cats"
TORCH_DOGS = "gpu-cuda13.0-cudnn9.19-torch2.11-dogs-vs-cats"
JAX_DOGS = "gpu-cuda13.0-cudnn9.19-jax0.11-dogs-vs-cats"
NO_CUDNN_DOGS = "gpu-cuda13.0-cudnn9.19-torch2.11-nocudnn-dogs-vs-cats"
NOT_REACHED = "not reached: the run's budget of 6.5 min (--budget-minutes) was spent on the cells before it"


def record(cell: str, status: str = "ok", reason: str = "", seconds: float = 1.0, repeat: int = 0, gpus: list | None = None,
           validation: float | None = None) -> Record:
    """A record as the local executor writes it; an ok one has a warm-up epoch and two timed epochs of `seconds` (0.8 of it training)."""
    kind, framework = cell.split("-")[0], "jax" if "-jax" in cell else "torch"
    axes = {"kind": kind, "framework": framework, "framework_version": VERSIONS[framework]}
    if kind == "gpu":
        axes.update(cuda="13.0", cudnn="9.19")
    measurement = None
    if status == "ok":
        epoch = measurements.epoch(seconds, validation_seconds=validation,
                                   telemetry=measurements.epoch_telemetry([measurements.gpu_epoch(**gpu) for gpu in gpus or []]))
        measurement = Measurement.from_dict({
            "schema": MEASUREMENT_SCHEMA, "cell_id": cell, "workload": "dogs-vs-cats", "data": {"kind": "synthetic"},
            "warmup_epochs": 1, "epochs": [dict(epoch, seconds=seconds * 3), epoch, epoch],
            "versions": {"python": "3.12.3", framework: "x", "keras": "3.15.1"}, "host": {}, "settings": {}, "devices": [],
            "gpu": {"registered": ["cuda:0"] if kind == "gpu" else []}})
    return Record(cell_id=cell, status=status, reason=reason, axes=axes, workload=cell.split(VERSIONS[framework] + "-")[1],
                  executor="local", environment={}, started="2026-12-07T09:00:00+00:00", ended="2026-12-07T09:00:10+00:00",
                  measurement=measurement, repeat=repeat)


def test_the_gpu_cells_come_by_value_the_seed_rows_first_then_resnet50_then_what_the_ratios_need():
    order = gpu_check.gpu_order(VERSIONS)
    assert order[:6] == [
        "gpu-cuda13.0-cudnn9.19-torch2.11-dogs-vs-cats", "gpu-cuda13.0-cudnn9.19-torch2.11-mnist",
        "gpu-cuda13.0-cudnn9.19-torch2.11-nocudnn-dogs-vs-cats", "gpu-cuda13.0-cudnn9.19-torch2.11-nocudnn-mnist",
        "gpu-cuda13.0-cudnn9.19-jax0.11-dogs-vs-cats", "gpu-cuda13.0-cudnn9.19-jax0.11-mnist"]
    assert order[6:8] == ["gpu-cuda13.0-cudnn9.19-torch2.11-resnet50", "gpu-cuda13.0-cudnn9.19-jax0.11-resnet50"]
    assert order[8:] == [f"gpu-cuda13.0-cudnn9.19-{backend}-{workload}" for backend, workload in [
        ("torch2.11", "cached-dogs-vs-cats"), ("jax0.11", "cached-dogs-vs-cats"), ("torch2.11", "tf32-dogs-vs-cats"),
        ("torch2.11", "bf16-dogs-vs-cats"), ("jax0.11", "tf32-dogs-vs-cats"), ("jax0.11", "bf16-dogs-vs-cats"),
        ("torch2.11", "autotune-dogs-vs-cats")]]


def test_every_cell_the_check_orders_is_a_cell_of_the_matrix_it_writes(tmp_path):
    from runner import session
    import yaml

    path = tmp_path / "gpu_check.yaml"
    path.write_text(yaml.safe_dump(gpu_check.matrix(VERSIONS, gpu_check.SIZES["full"], tmp_path / "data")))
    cells = {cell.id: cell for cell in session.plan(path, installs=False).cells}
    ordered = [cells[cell] for cell in [gpu_check.cpu_cell(VERSIONS, model) for model in gpu_check.MODELS] + gpu_check.gpu_order(VERSIONS)]
    assert {cell.workload.timeout_minutes for cell in ordered} == {2.0}  # one hung cell cannot take the lease
    assert [cell.excluded for cell in ordered] == [""] * len(ordered)
    assert {cell.workload.jit_compile for cell in ordered} == {"auto"}  # jax cells jitted, as jax runs


def test_the_seed_table_sets_gpu_rows_against_the_cpu_and_names_what_was_not_measured():
    loaded = [record(CPU_DOGS, seconds=40.0), record(TORCH_DOGS, seconds=2.0), record(TORCH_DOGS, seconds=2.0, repeat=1),
              record(JAX_DOGS, "failed", "expected a GPU, jax registered none"), record(NO_CUDNN_DOGS, "skipped", NOT_REACHED)]
    table = gpu_check.seed_table(loaded, VERSIONS)
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in table.splitlines()}
    torch = rows[("dogs-vs-cats", "GPU, torch with cuDNN")]
    assert "| 20.00x no difference shown (needs ~3 repeats) |" in torch and torch.endswith(" 2 |")  # one CPU repeat: a ratio, no verdict
    assert "failed: expected a GPU, jax registered none" in rows[("dogs-vs-cats", "GPU, jax")]
    assert "not reached (budget)" in rows[("dogs-vs-cats", "GPU, torch without cuDNN")]
    assert "not run" in rows[("mnist", "CPU (torch)")]


def test_the_seed_table_gives_training_time_and_validation_apart():
    loaded = [record(CPU_DOGS, seconds=40.0, validation=7.0), record(TORCH_DOGS, seconds=2.0, validation=0.3), record(JAX_DOGS, seconds=2.5)]
    table = gpu_check.seed_table(loaded, VERSIONS)
    assert [cell.strip() for cell in table.splitlines()[0].split("|")[3:5]] == ["train s (median repeat)", "validation s"]
    rows = {tuple(cell.strip() for cell in line.split("|")[2:5]) for line in table.splitlines()[2:]}
    assert {("CPU (torch)", "32.00", "7.00"), ("GPU, torch with cuDNN", "1.60", "0.30"), ("GPU, jax", "2.00", "-")} <= rows


def test_resnet50_gets_a_row_per_backend_with_its_rates_or_why_not():
    loaded = [record("gpu-cuda13.0-cudnn9.19-torch2.11-resnet50", seconds=0.5),
              record("gpu-cuda13.0-cudnn9.19-jax0.11-resnet50", "failed", "out of GPU memory")]
    rows = {line.split("|")[1].strip(): line for line in gpu_check.resnet50_table(loaded, VERSIONS).splitlines()[2:]}
    assert "| 0.40 " in rows["torch"] and "| 5000 " in rows["torch"]  # the fixture epoch: 2000 images in 0.4 s of training
    assert "failed: out of GPU memory" in rows["jax"]


def test_the_ratios_say_why_a_side_is_missing_once():
    cached = "gpu-cuda13.0-cudnn9.19-torch2.11-cached-dogs-vs-cats"
    loaded = [record(TORCH_DOGS, seconds=2.0), record(cached, seconds=1.0),
              record("gpu-cuda13.0-cudnn9.19-jax0.11-cached-dogs-vs-cats", "skipped", NOT_REACHED), record(JAX_DOGS, "skipped", NOT_REACHED)]
    table = gpu_check.ratios_table(loaded, VERSIONS).splitlines()
    assert "2.00x" in next(line for line in table if "cached / JPEG input, torch" in line)
    jax = next(line for line in table if "cached / JPEG input, jax" in line)
    assert jax.count("not reached (budget)") == 1
    assert "not run" in next(line for line in table if "TF32 / fp32, torch" in line)


def test_the_machine_table_shows_what_each_measured_gpu_did():
    gpus = [{"sm_clock_mhz_min": 1755, "sm_clock_mhz_max": 1980, "temperature_c_max": 61, "clock_event_reasons": ["sw_power_cap"]}]
    table = gpu_check.machine_table([record(TORCH_DOGS, seconds=2.0, gpus=gpus), record(CPU_DOGS, seconds=40.0)])
    (row,) = [line for line in table.splitlines() if TORCH_DOGS in line]
    assert "1755-1980" in row and "61" in row and "sw_power_cap" in row
    assert CPU_DOGS not in table


def test_the_kernel_table_shows_each_profiled_gpu_cells_convolution_share_and_kernels():
    seconds = dict.fromkeys(KERNEL_CLASSES, 0.0)
    seconds.update(convolution_forward=0.002, convolution_backward_data=0.001, convolution_backward_filter=0.001, elementwise=0.004)
    kernels = KernelTime("torch.profiler", "gpu", 3, seconds, {"sm90_xmma_fprop_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nhwc": 0.002,
                                                               "void cudnn::detail::dgrad_engine<float, 128, 6, 7, 3, 3, 5, false>": 0.001})
    profiled = dataclasses.replace(record(TORCH_DOGS), measurement=dataclasses.replace(record(TORCH_DOGS).measurement, kernel_time=kernels))
    table = gpu_check.kernels_table([profiled, record(JAX_DOGS)])
    row = next(line for line in table.splitlines() if TORCH_DOGS in line)
    assert [cell.strip() for cell in row.split("|")[2:7]] == ["50%", "2.00", "1.00", "1.00", "0.00"]
    assert "sm90_xmma_fprop_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nhwc (2.00 ms)" in row
    assert JAX_DOGS not in table  # not profiled
    assert gpu_check.kernels_table([record(JAX_DOGS)]) == "No GPU cell was profiled."


def test_the_exit_status_fails_a_check_that_measured_no_gpu():
    failed = [record(CPU_DOGS), record(TORCH_DOGS, "failed", "expected a GPU, torch registered none"),
              record(JAX_DOGS, "failed", "expected a GPU, jax registered none"), record(NO_CUDNN_DOGS, "skipped", NOT_REACHED)]
    code, line = gpu_check.outcome(failed)
    assert code == gpu_check.EXIT_NO_GPU_MEASURED == 3
    assert line.startswith("NO GPU CELL WAS MEASURED (1 x failed: expected a GPU, torch registered none; ")
    assert f"1 x skipped: {NOT_REACHED}" in line

    code, line = gpu_check.outcome(failed + [record(TORCH_DOGS, seconds=2.0, repeat=1)])
    assert (code, line) == (0, "GPU cells measured: 1 of 3")
    assert gpu_check.outcome([record(CPU_DOGS)]) == (3, "NO GPU CELL WAS MEASURED (no GPU cell came up)")


def test_the_archive_holds_the_run_and_the_checks_files_but_not_the_data_or_wheels(tmp_path):
    run = tmp_path / "runs" / "20261207-090000"
    run.mkdir(parents=True)
    for name in ("manifest.json", "results.jsonl", ".lock"):
        (run / name).write_text("{}")
    (run / "logs").mkdir()
    (run / "logs" / "cpu-torch2.11-baseline-mnist.1.log").write_text("epoch 1/2: 1.00 s\n")
    (tmp_path / "data" / "synthetic").mkdir(parents=True)
    (tmp_path / "data" / "synthetic" / "cat.1.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "site").mkdir()
    (tmp_path / "report.txt").write_text("report")
    path = gpu_check.archive(tmp_path, run, ["report.txt", "epochs.png"])  # no chart: nothing was measured
    with tarfile.open(path) as tar:
        assert sorted(tar.getnames()) == ["gpu_check/report.txt", "gpu_check/run/logs", "gpu_check/run/logs/cpu-torch2.11-baseline-mnist.1.log",
                                          "gpu_check/run/manifest.json", "gpu_check/run/results.jsonl"]


@pytest.mark.parametrize("options", [["--budget-minutes", "0.5"], ["--repeats", "0"]])
def test_a_budget_under_a_minute_or_no_repeats_is_refused_before_anything_runs(tmp_path, options, capsys):
    with pytest.raises(SystemExit) as exit:
        gpu_check.main(["--results", str(tmp_path), *options])
    assert exit.value.code == 2
    assert "--budget-minutes: from 1 to 600; --repeats: from 1 to 100" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
