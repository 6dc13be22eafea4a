"""The seed's table on a GPU machine with PyTorch and JAX but no Docker: run by bench/gpu_check.sh.

It writes a matrix for the versions this interpreter has (torch, jax, the CUDA and cuDNN torch
was built with), runs it with the local executor, and prints the runner's report, the seed's table
(CPU, GPU without cuDNN, GPU with cuDNN, GPU jax, per model) and the ratios: cached input against
JPEG decoding per backend, TF32 and bf16 against fp32, cuDNN autotuning on against off; and what
each GPU cell's GPU did in its timed epochs: energy per epoch, images per joule, SM clocks,
temperature and the clocks event reasons NVML gave.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from statistics import median

import yaml
from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from runner import records, telemetry  # noqa: E402
from runner.cells import cell_id  # noqa: E402
from runner.report import cell_results  # noqa: E402
from runner.stats import compare_repeats  # noqa: E402

# Full sizes: the seed's Dogs vs Cats; MNIST cut to 12000 images so that the CPU row fits the time.
SIZES = {
    "full": {"dogs": (2000, 800, 4), "mnist": (12000, 2000, 3), "repeats": 3, "cpu_repeats": 2},
    "quick": {"dogs": (64, 32, 2), "mnist": (512, 128, 2), "repeats": 1, "cpu_repeats": 1},
}
# (label, baseline workload, other workload): GPU ratios on Dogs vs Cats, cached input unless the question is the input.
RATIOS = [
    ("cached / JPEG input, torch", "torch", "dogs-vs-cats", "cached-dogs-vs-cats"),
    ("cached / JPEG input, jax", "jax", "dogs-vs-cats", "cached-dogs-vs-cats"),
    ("TF32 / fp32, torch", "torch", "cached-dogs-vs-cats", "tf32-dogs-vs-cats"),
    ("bf16 / fp32, torch", "torch", "cached-dogs-vs-cats", "bf16-dogs-vs-cats"),
    ("TF32 / fp32, jax", "jax", "cached-dogs-vs-cats", "tf32-dogs-vs-cats"),
    ("bf16 / fp32, jax", "jax", "cached-dogs-vs-cats", "bf16-dogs-vs-cats"),
    ("cuDNN autotuning on / off, torch", "torch", "cached-dogs-vs-cats", "autotune-dogs-vs-cats"),
]


def installed() -> dict[str, str]:
    """major.minor of torch, jax, and the CUDA and cuDNN torch was built with."""
    import jax
    import torch

    cudnn = torch.backends.cudnn.version() or 0  # 91900 -> 9.19
    return {"torch": ".".join(torch.__version__.split("+")[0].split(".")[:2]), "jax": ".".join(jax.__version__.split(".")[:2]),
            "cuda": torch.version.cuda or "", "cudnn": f"{cudnn // 10000}.{cudnn % 10000 // 100}" if cudnn else ""}


def matrix(versions: dict[str, str], size: dict, data: Path) -> dict:
    dogs_train, dogs_validation, dogs_epochs = size["dogs"]
    mnist_train, mnist_validation, mnist_epochs = size["mnist"]
    dogs = {"model": "dogs-vs-cats", "epochs": dogs_epochs, "train_images": dogs_train, "validation_images": dogs_validation,
            "data": str(data), "parallel_calls": 8, "prefetch_batches": 4}
    mnist = {"model": "mnist", "epochs": mnist_epochs, "train_images": mnist_train, "validation_images": mnist_validation,
             "data": str(data)}
    cached = dict(dogs, input="cached")
    return {
        "workloads": {
            "dogs-vs-cats": dogs, "mnist": mnist,
            "nocudnn-dogs-vs-cats": dict(dogs, cudnn=False), "nocudnn-mnist": dict(mnist, cudnn=False),
            "cached-dogs-vs-cats": cached, "tf32-dogs-vs-cats": dict(cached, precision="tf32"),
            "bf16-dogs-vs-cats": dict(cached, precision="bf16"), "autotune-dogs-vs-cats": dict(cached, conv_autotune=True),
        },
        "repeats": size["repeats"],
        "cpu": {"torch": [versions["torch"]]},
        "gpu": {"cuda": [versions["cuda"] or "13.0"], "cudnn": [versions["cudnn"] or "9.19"],
                "backend": ["torch", "jax"], "torch": [versions["torch"]], "jax": [versions["jax"]]},
    }


def run(results: Path, matrix_path: Path, *options: str) -> None:
    command = [sys.executable, "-m", "runner", "run", "-f", str(matrix_path), "--results", str(results),
               "--executor", "local", *options]
    subprocess.run(command, cwd=BENCH.parent, check=False)


def per_repeat(loaded: list, cell: str) -> list[float]:
    """One number per repeat: the median of its timed epochs."""
    return [median(e["seconds"] for e in r.measurement.epochs[r.measurement.warmup_epochs:])
            for r in loaded if r.cell_id == cell and r.status == "ok"]


def seed_table(loaded: list, versions: dict[str, str]) -> str:
    gpu = {"kind": "gpu", "cuda": versions["cuda"] or "13.0", "cudnn": versions["cudnn"] or "9.19"}
    rows = []
    for model in ("dogs-vs-cats", "mnist"):
        cpu = cell_id({"kind": "cpu", "framework": "torch", "framework_version": versions["torch"]}, model)
        torch_gpu = {**gpu, "framework": "torch", "framework_version": versions["torch"]}
        jax_gpu = {**gpu, "framework": "jax", "framework_version": versions["jax"]}
        cells = [("CPU (torch)", cpu), ("GPU, torch without cuDNN", cell_id(torch_gpu, f"nocudnn-{model}")),
                 ("GPU, torch with cuDNN", cell_id(torch_gpu, model)), ("GPU, jax", cell_id(jax_gpu, model))]
        baseline = per_repeat(loaded, cpu)
        for label, cell in cells:
            seconds = per_repeat(loaded, cell)
            versus = compare_repeats(baseline, seconds).as_times() if baseline and seconds and cell != cpu else "-"
            rows.append([model, label, f"{median(seconds):.2f}" if seconds else "not measured", versus])
    return tabulate(rows, headers=["model", "row", "epoch s (median repeat)", "speed against the CPU"], tablefmt="github")


def ratios_table(loaded: list, versions: dict[str, str]) -> str:
    gpu = {"kind": "gpu", "cuda": versions["cuda"] or "13.0", "cudnn": versions["cudnn"] or "9.19"}
    rows = []
    for label, backend, baseline_workload, other_workload in RATIOS:
        axes = {**gpu, "framework": backend, "framework_version": versions[backend]}
        baseline, other = per_repeat(loaded, cell_id(axes, baseline_workload)), per_repeat(loaded, cell_id(axes, other_workload))
        rows.append([label, compare_repeats(baseline, other).as_times() if baseline and other else "not measured"])
    return tabulate(rows, headers=["question (above 1.00x: the second is faster)", "ratio"], tablefmt="github")


def machine_table(loaded: list) -> str:
    """Per measured GPU cell, from its records' telemetry: what its GPU did during the timed epochs."""
    rows = []
    for result in cell_results(loaded):
        if result.kind != "gpu" or not result.timed:
            continue
        gpus = [gpu for r in loaded if r.cell_id == result.cell_id and r.status == "ok"
                for epoch in r.measurement.epochs[r.measurement.warmup_epochs:]
                for gpu in ((epoch.get("telemetry") or {}).get("gpus") or []) if isinstance(gpu, dict)]
        numbers = lambda key: [gpu[key] for gpu in gpus if isinstance(gpu.get(key), (int, float))]  # noqa: E731
        low, high, hottest = numbers("sm_clock_mhz_min"), numbers("sm_clock_mhz_max"), numbers("temperature_c_max")
        reasons = sorted({reason for gpu in gpus if isinstance(gpu.get("clock_event_reasons"), list) for reason in gpu["clock_event_reasons"]})
        figures = result.telemetry
        energy = figures.energy_joules if figures else None
        rows.append([result.cell_id,
                     telemetry.joules(energy) + "*" * figures.energy_estimated if energy is not None else "not measured",
                     f"{figures.images_per_joule:.3g}" if figures and figures.images_per_joule is not None else "-",
                     f"{min(low):.0f}-{max(high):.0f}" if low and high else "-", f"{max(hottest):.0f}" if hottest else "-",
                     ", ".join(reasons) or "none"])
    return tabulate(rows, headers=["GPU cell", "GPU energy/epoch", "images/J", "SM clock MHz (min-max)", "max °C",
                                   "clocks event reasons seen"], tablefmt="github")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="tiny cells: a smoke test of the script itself")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    versions = installed()
    matrix_path = args.results / "gpu_check.yaml"
    matrix_path.write_text(yaml.safe_dump(matrix(versions, size, args.results / "data"), sort_keys=False))
    runs = args.results / "runs"
    run(runs, matrix_path, "-k", "gpu-")  # every GPU cell; skipped, with the reason, where there is no GPU
    first = records.latest_run(runs).name
    for model in ("dogs-vs-cats", "mnist"):  # the CPU baseline of each model, not its variants
        run(runs, matrix_path, "-k", f"cpu-torch{versions['torch']}-{model}", "--resume", first, "--repeats", str(size["cpu_repeats"]))
    subprocess.run([sys.executable, "-m", "runner", "report", first, "--results", str(runs), "--plot", str(args.results / "epochs.png")],
                   cwd=BENCH.parent, check=False)
    loaded = records.load(runs / first)
    print(f"\nversions: {versions}\n")
    print(seed_table(loaded, versions))
    print()
    print(ratios_table(loaded, versions))
    print("\nWhat the GPU did in the timed epochs (* energy integrated from power samples):\n")
    print(machine_table(loaded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
