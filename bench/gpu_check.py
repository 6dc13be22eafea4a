"""The seed's table on a GPU machine with PyTorch and JAX but no Docker, within a lease: run by bench/gpu_check.sh.

It writes a matrix for the versions this interpreter has (torch, jax, the CUDA and cuDNN torch
was built with) and runs it with the local executor, within --budget-minutes: first the CPU
baseline (one repeat of each seed model), then the GPU cells in the order of what they answer —
the seed's rows (GPU torch with cuDNN, without it, GPU jax), Keras' ResNet-50 on each backend (224x224,
batch 64, synthetic images cached on the device, a few steps), then the ratios (cached input
against JPEG decoding, TF32 and bf16 against fp32, cuDNN autotuning on against off) — one repeat of
each before any second one. Every cell has a time limit; what the budget did not reach is named
in the tables. It prints the runner's report, then the seed's table, ResNet-50's, the ratios and what each GPU
cell's GPU did (energy per epoch, images per joule, SM clocks, temperature, clocks event
reasons), and writes RESULTS/gpu_check.tgz: records, manifest, report, chart and the machine's
facts, a few hundred kB to bring back from a machine that returns only a few files.

Exit status: 0 when some GPU cell was measured; 3 when none was (no GPU seen, every GPU cell
failed or was not reached): a GPU check that measured no GPU must not pass for one that did.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import yaml
from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from runner import datasets, records, session, telemetry  # noqa: E402
from runner.analysis import analyze, cell_results  # noqa: E402
from runner.cells import cell_id  # noqa: E402
from runner.compatibility import load_table  # noqa: E402
from runner.executors.local_executor import LocalExecutor  # noqa: E402
from runner.progress import Progress  # noqa: E402
from runner.report import render  # noqa: E402
from runner.site.charts import run_chart  # noqa: E402
from runner.stats import compare_repeats  # noqa: E402
from workload.contract import CONVOLUTION_CLASSES  # noqa: E402

EXIT_NO_GPU_MEASURED = 3
ARCHIVE = "gpu_check.tgz"
# Kept back from the budget for the report, the chart and the archive, so that they are written within it.
RESERVE_MINUTES = 0.5
DISTRIBUTIONS = ("torch", "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "keras", "numpy", "nvidia-cudnn-cu13",
                 "nvidia-cudnn-cu12", "nvidia-ml-py", "optree", "pillow")


@dataclass(frozen=True)
class Size:
    dogs: tuple[int, int]  # training and validation images
    mnist: tuple[int, int]
    epochs: int  # the first is the warm-up
    cpu_epochs: int  # the CPU baseline's: the same images per epoch, fewer epochs
    cpu_minutes: float | None  # the CPU baseline's share of the budget at most: on a slow CPU it is cut short, not the GPU cells
    repeats: int  # of each GPU cell, as the budget allows; the CPU baseline runs once
    cell_minutes: float  # every cell's time limit: one hung cell must not take the lease
    resnet50: tuple[int, int, int]  # training and validation images, image size: a few steps, GPU cells only


# Full size: the seed's Dogs vs Cats; MNIST cut to 12000 images, and the CPU baseline to two epochs, so that it fits in about a minute.
SIZES = {"full": Size(dogs=(2000, 800), mnist=(12000, 2000), epochs=3, cpu_epochs=2, cpu_minutes=1.5, repeats=3, cell_minutes=2.0,
                      resnet50=(640, 128, 224)),
         "quick": Size(dogs=(64, 32), mnist=(512, 128), epochs=2, cpu_epochs=2, cpu_minutes=None, repeats=1, cell_minutes=2.0,
                       resnet50=(64, 32, 64))}
# The seed's rows, per model: (label, the workload's prefix, backend); the CPU row is the baseline.
SEED_ROWS = [("GPU, torch with cuDNN", "", "torch"), ("GPU, torch without cuDNN", "nocudnn-", "torch"), ("GPU, jax", "", "jax")]
# (label, backend, baseline workload, other workload): GPU ratios on Dogs vs Cats, cached input unless the question is the input.
RATIOS = [
    ("cached / JPEG input, torch", "torch", "dogs-vs-cats", "cached-dogs-vs-cats"),
    ("cached / JPEG input, jax", "jax", "dogs-vs-cats", "cached-dogs-vs-cats"),
    ("TF32 / fp32, torch", "torch", "cached-dogs-vs-cats", "tf32-dogs-vs-cats"),
    ("bf16 / fp32, torch", "torch", "cached-dogs-vs-cats", "bf16-dogs-vs-cats"),
    ("TF32 / fp32, jax", "jax", "cached-dogs-vs-cats", "tf32-dogs-vs-cats"),
    ("bf16 / fp32, jax", "jax", "cached-dogs-vs-cats", "bf16-dogs-vs-cats"),
    ("cuDNN autotuning on / off (torch's default), torch", "torch", "cached-dogs-vs-cats", "autotune-dogs-vs-cats"),
]
MODELS = ("dogs-vs-cats", "mnist")
# Keras' ResNet-50 at the published tables' batch of 64 on synthetic images cached on the device, after the seed's rows:
# the model cuDNN upgrades are usually judged on, once per backend.
RESNET50 = "resnet50"
BACKENDS = ("torch", "jax")


def installed() -> dict[str, str]:
    """major.minor of torch and jax, and the CUDA and cuDNN torch was built with."""
    import jax
    import torch

    cudnn = torch.backends.cudnn.version() or 0  # 91900 -> 9.19
    version = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    # A CPU-only torch names no CUDA or cuDNN: those of the same release's CUDA wheels, so that the GPU cells exist all the same.
    table = load_table()
    wheels = table.releases["torch"].get(version) or table.releases["torch"][table.newest("torch")]
    return {"torch": version, "jax": ".".join(jax.__version__.split(".")[:2]), "cuda": torch.version.cuda or wheels.cuda,
            "cudnn": f"{cudnn // 10000}.{cudnn % 10000 // 100}" if cudnn else wheels.cudnn}


def gpu_axes(versions: dict[str, str], backend: str) -> dict[str, str]:
    return {"kind": "gpu", "cuda": versions["cuda"], "cudnn": versions["cudnn"], "framework": backend, "framework_version": versions[backend]}


def cpu_cell(versions: dict[str, str], model: str) -> str:
    """The CPU baseline of a model: its own workload, of the same images per epoch as the GPU cells' and fewer epochs."""
    return cell_id({"kind": "cpu", "framework": "torch", "framework_version": versions["torch"]}, f"baseline-{model}")


def matrix(versions: dict[str, str], size: Size, data: Path) -> dict:
    common = {"epochs": size.epochs, "data": str(data), "timeout_minutes": size.cell_minutes}
    dogs = {**common, "model": "dogs-vs-cats", "train_images": size.dogs[0], "validation_images": size.dogs[1],
            "parallel_calls": 8, "prefetch_batches": 4}
    mnist = {**common, "model": "mnist", "train_images": size.mnist[0], "validation_images": size.mnist[1]}
    cached = dict(dogs, input="cached")
    axes = gpu_axes(versions, "torch")
    return {
        "workloads": {
            "baseline-dogs-vs-cats": dict(dogs, epochs=size.cpu_epochs), "baseline-mnist": dict(mnist, epochs=size.cpu_epochs),
            "dogs-vs-cats": dogs, "mnist": mnist,
            "nocudnn-dogs-vs-cats": dict(dogs, cudnn=False), "nocudnn-mnist": dict(mnist, cudnn=False),
            "cached-dogs-vs-cats": cached, "tf32-dogs-vs-cats": dict(cached, precision="tf32"),
            "bf16-dogs-vs-cats": dict(cached, precision="bf16"), "autotune-dogs-vs-cats": dict(cached, conv_autotune=True),
            RESNET50: {"epochs": size.epochs, "timeout_minutes": size.cell_minutes, "batch_size": min(64, size.resnet50[0]),
                       "train_images": size.resnet50[0], "validation_images": size.resnet50[1], "image_size": size.resnet50[2]},
        },
        "repeats": size.repeats,
        "cpu": {"torch": [versions["torch"]]},
        "gpu": {"cuda": [axes["cuda"]], "cudnn": [axes["cudnn"]], "backend": ["torch", "jax"],
                "torch": [versions["torch"]], "jax": [versions["jax"]]},
    }


def gpu_order(versions: dict[str, str]) -> list[str]:
    """The GPU cells by what they answer: the seed's rows for both models, ResNet-50, then the cells the ratios need."""
    seed = [cell_id(gpu_axes(versions, backend), prefix + model) for _, prefix, backend in SEED_ROWS for model in MODELS]
    resnet50 = [cell_id(gpu_axes(versions, backend), RESNET50) for backend in BACKENDS]
    ratios = [cell_id(gpu_axes(versions, backend), workload) for _, backend, *workloads in RATIOS for workload in workloads]
    return list(dict.fromkeys(seed + resnet50 + ratios))


def per_repeat(loaded: list, cell: str, figure: str = "train_seconds") -> list[float]:
    """One number per measured repeat: the median of its timed epochs' training time (as the report's verdicts), or of
    another of their figures; repeats whose epochs lack it (validation_seconds before it was timed apart) give none."""
    timed = [[getattr(e, figure) for e in r.measurement.epochs[r.measurement.warmup_epochs:]]
             for r in loaded if r.cell_id == cell and r.status == "ok"]
    return [median(figures) for figures in timed if figures and None not in figures]


def seconds_cell(seconds: list[float], loaded: list, cell: str) -> str:
    return f"{median(seconds):.2f}" if seconds else why_not(loaded, cell)


def median_or_dash(seconds: list[float]) -> str:
    return f"{median(seconds):.2f}" if seconds else "-"


def why_not(loaded: list, cell: str) -> str:
    """What the tables say of a cell without a measurement: its last record's status and reason, or that it never came up."""
    last = next((record for record in reversed(loaded) if record.cell_id == cell), None)
    if last is None:
        return "not run"
    if last.reason.startswith("not reached"):
        return "not reached (budget)"
    return textwrap.shorten(f"{last.status}: {last.reason}", 90, placeholder=" ...")


def seed_table(loaded: list, versions: dict[str, str]) -> str:
    rows = []
    for model in MODELS:
        cpu = cpu_cell(versions, model)
        baseline = per_repeat(loaded, cpu)
        validation = per_repeat(loaded, cpu, "validation_seconds")
        rows.append([model, "CPU (torch)", seconds_cell(baseline, loaded, cpu), median_or_dash(validation), "-", len(baseline)])
        for label, prefix, backend in SEED_ROWS:
            cell = cell_id(gpu_axes(versions, backend), prefix + model)
            seconds, validation = per_repeat(loaded, cell), per_repeat(loaded, cell, "validation_seconds")
            versus = compare_repeats(baseline, seconds).as_times() if baseline and seconds else "-"
            rows.append([model, label, seconds_cell(seconds, loaded, cell), median_or_dash(validation), versus, len(seconds)])
    # The speed is on training time, as the report's verdicts are; validation, timed apart, is shown beside it.
    return tabulate(rows, headers=["model", "row", "train s (median repeat)", "validation s", "speed against the CPU", "repeats"],
                    tablefmt="github")


def resnet50_table(loaded: list, versions: dict[str, str]) -> str:
    rows = []
    for backend in BACKENDS:
        cell = cell_id(gpu_axes(versions, backend), RESNET50)
        seconds = per_repeat(loaded, cell)
        rates = [per_repeat(loaded, cell, figure) for figure in ("images_per_second", "model_gflops_per_second")]
        rows.append([backend, seconds_cell(seconds, loaded, cell), *(f"{median(figures):.0f}" if figures else "-" for figures in rates),
                     len(seconds)])
    return tabulate(rows, headers=["ResNet-50 (synthetic, cached)", "train s (median repeat)", "images/s", "model GFLOP/s", "repeats"],
                    tablefmt="github")


def ratios_table(loaded: list, versions: dict[str, str]) -> str:
    rows = []
    for label, backend, *workloads in RATIOS:
        cells = [cell_id(gpu_axes(versions, backend), workload) for workload in workloads]
        baseline, other = (per_repeat(loaded, cell) for cell in cells)
        missing = "; ".join(dict.fromkeys(why_not(loaded, cell) for cell, seconds in zip(cells, (baseline, other)) if not seconds))
        rows.append([label, compare_repeats(baseline, other).as_times() if baseline and other else missing,
                     f"{len(baseline)} / {len(other)}"])
    return tabulate(rows, headers=["question (above 1.00x: the second is faster)", "ratio", "repeats"], tablefmt="github")


def machine_table(loaded: list) -> str:
    """Per measured GPU cell, from its records' telemetry: what its GPU did during the timed epochs."""
    rows = []
    for result in cell_results(loaded):
        if result.kind != "gpu" or not result.timed:
            continue
        gpus = [gpu for r in loaded if r.cell_id == result.cell_id and r.status == "ok"
                for epoch in r.measurement.epochs[r.measurement.warmup_epochs:]
                if epoch.telemetry and isinstance(epoch.telemetry.gpus, list) for gpu in epoch.telemetry.gpus]
        numbers = lambda figures: [figure for figure in figures if isinstance(figure, (int, float))]  # noqa: E731
        low, high = numbers(gpu.sm_clock_mhz_min for gpu in gpus), numbers(gpu.sm_clock_mhz_max for gpu in gpus)
        hottest = numbers(gpu.temperature_c_max for gpu in gpus)
        reasons = sorted({reason for gpu in gpus if isinstance(gpu.clock_event_reasons, list) for reason in gpu.clock_event_reasons})
        figures = result.telemetry
        energy = figures.energy_joules if figures else None
        rows.append([result.cell_id,
                     telemetry.joules(energy) + "*" * figures.energy_estimated if energy is not None else "not measured",
                     f"{figures.images_per_joule:.3g}" if figures and figures.images_per_joule is not None else "-",
                     f"{min(low):.0f}-{max(high):.0f}" if low and high else "-", f"{max(hottest):.0f}" if hottest else "-",
                     ", ".join(reasons) or "none"])
    return tabulate(rows, headers=["GPU cell", "GPU energy/epoch", "images/J", "SM clock MHz (min-max)", "max °C",
                                   "clocks event reasons seen"], tablefmt="github")


def kernels_table(loaded: list) -> str:
    """Per profiled GPU cell: the convolutions' share of the device's kernel time, by direction, and the longest
    convolution kernels by name (cuDNN's names say the algorithm or engine: implicit_gemm, winograd, fft ...)."""
    rows = []
    for result in cell_results(loaded):
        kernels = result.kernels
        if result.kind != "gpu" or not kernels or kernels.device != "gpu":
            continue
        milliseconds = lambda name: f"{kernels.seconds_per_step[name] * 1000:.2f}"  # noqa: E731
        rows.append([result.cell_id, f"{kernels.convolution_share:.0%}" if kernels.convolution_share is not None else "-",
                     *(milliseconds(name) for name in CONVOLUTION_CLASSES),
                     "\n".join(f"{name[:90]} ({seconds * 1000:.2f} ms)" for name, seconds in list(kernels.convolutions.items())[:3])])
    if not rows:
        return "No GPU cell was profiled."
    return tabulate(rows, headers=["GPU cell", "conv share", "fwd ms", "bwd data ms", "bwd filter ms", "bwd ms",
                                   "longest convolution kernels (per step)"], tablefmt="github", disable_numparse=True)


def outcome(loaded: list) -> tuple[int, str]:
    """The exit status and the last line: whether any GPU cell was measured, and if not, why not."""
    gpu = [record for record in loaded if record.kind == "gpu"]
    measured = sorted({record.cell_id for record in gpu if record.status == "ok"})
    if measured:
        return 0, f"GPU cells measured: {len(measured)} of {len({record.cell_id for record in gpu})}"
    reasons: dict[str, int] = {}
    for record in gpu:
        said = f"{record.status}: {record.reason}"[:200]
        reasons[said] = reasons.get(said, 0) + 1
    why = "; ".join(f"{count} x {said}" for said, count in reasons.items()) or "no GPU cell came up"
    return EXIT_NO_GPU_MEASURED, f"NO GPU CELL WAS MEASURED ({why})"


def facts(versions: dict[str, str]) -> dict:
    """What the machine was, for the archive: what nvidia-smi says, the distributions that matter, and the variables that steer them."""
    smi = shutil.which("nvidia-smi")
    query = [smi, "--query-gpu=index,name,driver_version,memory.total,clocks.max.sm,power.limit", "--format=csv"] if smi else None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "hostname": platform.node(), "python": sys.version, "platform": platform.platform(), "cpus": os.cpu_count(),
        "versions_in_the_matrix": versions,
        "distributions": {name: _version(name) for name in DISTRIBUTIONS},
        "nvidia_smi": _output(query) if query else "not installed",
        "variables": {name: value for name, value in os.environ.items() if name.startswith(("CUDA_", "XLA_", "NVIDIA_", "TF_", "KERAS_"))},
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"failed: {error}"


def archive(results: Path, run_folder: Path, names: list[str]) -> Path:
    """RESULTS/gpu_check.tgz: the run's own files and logs and the check's, without the data set and the installed wheels."""
    path = results / ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            if (results / name).exists():
                tar.add(results / name, arcname=f"gpu_check/{name}")
        for member in sorted(run_folder.iterdir()):
            if not member.name.startswith("."):  # the run's files, and its logs/: each repeat's own output
                tar.add(member, arcname=f"gpu_check/run/{member.name}")
    return path


class Tee:
    """Progress to the terminal and to the log the archive keeps."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> None:
        for stream in self.streams:
            stream.write(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


def measure(results: Path, versions: dict[str, str], size: Size, budget_minutes: float, repeats: int, progress: Progress) -> Path:
    """The CPU baseline, then the GPU cells by value, within the budget; returns the run folder."""
    matrix_path = results / "gpu_check.yaml"
    matrix_path.write_text(yaml.safe_dump(matrix(versions, size, results / "data"), sort_keys=False))
    budget = session.Budget.starting_now(budget_minutes - RESERVE_MINUTES)
    plan = session.plan(matrix_path, installs=False)  # the local executor: this interpreter's torch and jax, as they are
    for workload in plan.matrix.workloads:  # (synthetic) data first: the CPU baseline's share is for its cells
        datasets.prepare(workload, progress)
    by_id = {cell.id: cell for cell in plan.cells}
    executor = LocalExecutor(sys.executable, "all", progress)
    cpu = [by_id[cpu_cell(versions, model)] for model in MODELS]
    cpu_budget = session.Budget.starting_now(min(size.cpu_minutes or budget.minutes, budget.seconds_left() / 60))
    first = session.run(session.Plan(plan.matrix, plan.cells, cpu), executor, results / "runs", None, 1, progress, cpu_budget)
    gpu = [by_id[cell] for cell in gpu_order(versions)]
    session.run(session.Plan(plan.matrix, plan.cells, gpu), executor, results / "runs", first.folder.name, repeats, progress, budget)
    return first.folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="tiny cells: a smoke test of the script itself")
    parser.add_argument("--budget-minutes", type=float, default=7.0, metavar="M",
                        help="end within M minutes, the report and archive included (default: %(default)g; at least 1)")
    parser.add_argument("--repeats", type=int, metavar="N", help="of each GPU cell, as the budget allows (default: 3, --quick 1)")
    args = parser.parse_args(argv)
    if not 1 <= args.budget_minutes <= 600 or (args.repeats is not None and not 1 <= args.repeats <= 100):
        parser.error("--budget-minutes: from 1 to 600; --repeats: from 1 to 100")
    size = SIZES["quick" if args.quick else "full"]
    args.results.mkdir(parents=True, exist_ok=True)
    with open(args.results / "gpu_check.log", "w") as log:
        progress = Progress(Tee(sys.stderr, log))
        versions = installed()
        (args.results / "environment.json").write_text(json.dumps(facts(versions), indent=2))
        run_folder = measure(args.results, versions, size, args.budget_minutes, args.repeats or size.repeats, progress)
        loaded = records.load(run_folder)
        report = render(loaded)
        analysis = analyze(loaded)
        if analysis.measured:
            run_chart(analysis, args.results / "epochs.png")
        code, last_line = outcome(loaded)
        tables = (f"versions: {versions}\n\n{seed_table(loaded, versions)}\n\n{resnet50_table(loaded, versions)}\n\n"
                  f"{ratios_table(loaded, versions)}\n\n"
                  f"What the GPU did in the timed epochs (* energy integrated from power samples):\n\n{machine_table(loaded)}\n\n"
                  f"Where a step's device time went (profiled after the timed epochs):\n\n{kernels_table(loaded)}\n")
        (args.results / "report.txt").write_text(report + "\n")
        (args.results / "gpu_check.txt").write_text(tables + "\n" + last_line + "\n")
        progress(f"run {run_folder}")
    path = archive(args.results, run_folder, ["gpu_check.yaml", "environment.json", "report.txt", "gpu_check.txt", "epochs.png", "gpu_check.log"])
    print(report)
    print()
    print(tables)
    print(f"archive: {path} ({path.stat().st_size / 1024:.0f} kB)")
    print(last_line)
    return code


if __name__ == "__main__":
    sys.exit(main())
