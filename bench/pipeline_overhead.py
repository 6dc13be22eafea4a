"""Pipeline overhead and autotuning, as ratios measured in one run.

    python bench/pipeline_overhead.py [--matrix bench/pipeline.yaml] [--quick] [--repeats N] [--results bench/results]

Runs the matrix with the runner (Docker), one repeat of every cell at a time (`--resume`, growing
`--repeats`), and between those rounds times the framework-neutral loader alone on one core:
decoding and augmenting the training batches of Dogs vs Cats with workload/python_input.py, no model.
It prints, and writes to bench/RESULTS.md (section `pipeline`), from that one run:
- (JPEG + augment epoch time) / (cached epoch time): what decoding and augmenting cost (target
  <= 1.10 on CPU);
- the images/s the loader alone sustains per core against the images/s the model alone reaches
  (training on cached batches): beyond which model speed — on which GPUs — the pipeline, not the
  model, would be timed;
- with bench/pipeline.yaml (the default), also (autotuned epoch time) / (fixed epoch time) and each
  variant's outlier epochs (by MAD, as the report flags them): whether autotuning stalls epochs.
Each ratio is judged as the report judges a speed-up: interval, test and verdict.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import numpy as np
import yaml

import common
from common import BENCH, ROOT, calibration, docker_version, judged, load, provenance, table, write_section

from runner import datasets, records  # noqa: E402
from runner.analysis import cell_results  # noqa: E402
from runner.report import outlier_words  # noqa: E402
from runner.session import plan  # noqa: E402
from runner.stats import compare_repeats  # noqa: E402

MATRIX = BENCH / "pipeline.yaml"
# (label, slower workload, faster workload): workloads of the matrix, whatever cells they expand to; those it lacks are left out.
COMPARISONS = [
    ("JPEG + augment / cached", "dogs-vs-cats", "dogs-vs-cats-cached"),
    ("autotune / fixed, Dogs vs Cats", "dogs-vs-cats-autotune", "dogs-vs-cats"),
    ("autotune / fixed, MNIST", "mnist-autotune", "mnist"),
]
INPUT_TARGET = 1.10
QUICK = {"epochs": 2, "train_images": 128, "validation_images": 64}


def quick_matrix(path: Path, into: Path) -> Path:
    """The matrix with every workload shrunk to a smoke test's size, written beside the results."""
    matrix = yaml.safe_load(path.read_text())
    for workload in matrix["workloads"].values():
        workload.update(QUICK)
        workload["data"] = str((path.parent / workload.get("data", "data")).resolve())
    into.mkdir(parents=True, exist_ok=True)
    shrunk = into / f"quick-{path.name}"
    shrunk.write_text(yaml.safe_dump(dict(matrix, repeats=1)))
    return shrunk


def loader_images_per_second(data_dir: Path, images: int, batch_size: int = 32) -> float:
    """Training batches of Dogs vs Cats decoded and augmented by workload/python_input.py on one core (one thread), no model."""
    import augment
    import python_input

    paths, _ = python_input.class_files(str(data_dir / "train"), images)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for first in range(0, len(paths), batch_size):
        augment.augment(np.stack([python_input.decode(path) for path in paths[first:first + batch_size]]), rng)
    return len(paths) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", type=Path, default=MATRIX, help="the matrix to run (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: every cell shrunk, one repeat")
    parser.add_argument("--repeats", type=int, help="repeats per cell (default: the matrix's)")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    if args.quick:
        common.divert(args.results / "RESULTS-quick.md")
    matrix = quick_matrix(args.matrix, args.results) if args.quick else args.matrix
    chosen = plan(matrix)
    repeats = args.repeats or (1 if args.quick else chosen.matrix.repeats)
    load_before = load()
    base = [sys.executable, "-m", "runner", "run", "-f", str(matrix), "--results", str(args.results)]
    loader_rates, calibrations, run = [], [], None
    for repeat in range(1, repeats + 1):
        calibrations.append(calibration())
        dogs = next((cell for cell in chosen.cells if cell.workload.model == "dogs-vs-cats"), None)
        if dogs is not None and run is not None:  # after the first round, which made the data
            loader_rates.append(loader_images_per_second(data_dir(dogs.workload), dogs.workload.train_images))
        resume = ["--resume", run.name] if run else []
        if subprocess.run([*base, "--repeats", str(repeat), *resume], cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
            return 1
        run = records.latest_run(args.results) if run is None else run
    if dogs is not None and not loader_rates:
        loader_rates.append(loader_images_per_second(data_dir(dogs.workload), dogs.workload.train_images))
    load_after = load()
    loaded = records.load(run)
    results = {result.cell_id: result for result in cell_results(loaded)}
    cell_of = {cell.workload.name: cell.id for cell in chosen.cells}  # the matrix has one CPU environment
    rows = []
    for label, slower_workload, faster_workload in COMPARISONS:
        if slower_workload not in cell_of or faster_workload not in cell_of:
            continue
        slower, faster = cell_of[slower_workload], cell_of[faster_workload]
        # The slower variant's time over the faster one's: how many times faster the faster one is.
        ratio = compare_repeats(results[slower].timed.per_repeat, results[faster].timed.per_repeat)
        target = judged(ratio.ratio, ratio.ci_high, INPUT_TARGET) if slower_workload == "dogs-vs-cats" else "-"
        rows.append([label, f"{results[slower].timed.median:.2f}", f"{results[faster].timed.median:.2f}", ratio.as_times(), target])
    print(f"\nrun {run.name}\n")
    ratios = table(["ratio", "numerator epoch s", "denominator epoch s", "ratio (interval) verdict", "target"], rows)
    print(ratios)
    stalls = table(["cell", "median epoch s", "outlier epochs"],
                   [[cell, f"{r.timed.median:.2f}", "; ".join(map(outlier_words, r.outlier_epochs)) or "-"] for cell, r in results.items()])
    print("\n" + stalls)
    throughput = ""
    if "dogs-vs-cats-cached" in cell_of and loader_rates:
        cached = results[cell_of["dogs-vs-cats-cached"]]
        record = next(r for r in loaded if r.cell_id == cached.cell_id and r.status == "ok")
        flops = record.measurement.model["training_flops_per_image"]
        cores = record.measurement.host["cpus_usable"]
        per_core = median(loader_rates)
        throughput = (
            "\n\n" + table(["", "images/s", "training GFLOP/s at that rate"], [
                ["loader alone, one core (decode + augment, no model; median of the rounds)", f"{per_core:.0f}", f"{per_core * flops / 1e9:.1f}"],
                [f"model alone on cached batches, all {cores} cores (`{cached.cell_id}`)", f"{cached.images_per_second:.0f}",
                 f"{cached.images_per_second * flops / 1e9:.1f}"]])
            + f"\n\nThe loader's rate ranged {min(loader_rates):.0f}-{max(loader_rates):.0f} images/s over {len(loader_rates)} round(s). "
              f"A training image costs {flops / 1e9:.2f} GFLOP, so a host feeding a GPU with N loader threads keeps up only while the "
              f"model trains slower than about {per_core:.0f} x N images/s, i.e. below {per_core * flops / 1e12:.2f} x N TFLOP/s "
              "achieved: a GPU that trains this CNN faster (any current data-centre GPU, at a few per cent of its peak, with the "
              "8 threads bench/gpu_check.py gives the loader) times the pipeline, not cuDNN; `input: cached` then shows the GPU alone.")
    command = "python bench/pipeline_overhead.py" + (f" --matrix {args.matrix}" if args.matrix.resolve() != MATRIX else "") + \
        (" --quick" if args.quick else "") + (f" --repeats {args.repeats}" if args.repeats else "")
    versions = next((r.measurement.versions for r in loaded if r.measurement), {})
    header = provenance(command, load_before, load_after, {**{k: v for k, v in versions.items() if k != "python"}, "docker engine": docker_version()})
    cells = ", ".join(f"`{cell}`" for cell in results)
    write_section("pipeline", "## Input pipeline (bench/pipeline_overhead.py)\n\n" + header
                  + f"\n- run `{run.name}`: {cells}; {repeats} repeat(s) per cell, interleaved; calibration loop spread "
                    f"{max(calibrations) / min(calibrations):.3f}\n\n" + ratios + "\n\n" + stalls + throughput)
    return 0


def data_dir(workload) -> Path:
    """The Dogs vs Cats data the cells train on (real, or the synthetic set the runner made), as the runner finds it."""
    return datasets.prepare(workload, lambda message: None).path


if __name__ == "__main__":
    sys.exit(main())
