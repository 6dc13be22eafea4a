"""The runner's own cost: an unchanged matrix builds nothing, and a run grows linearly with its cells.

    python bench/runner_cost.py [--quick] [--rounds N]

Cells with `fault: crash` exit before importing any framework, so what is timed is the runner, not a
model. Two questions, their runs interleaved round by round:

- cache: `run` on an unchanged matrix (the jax CPU environment), with the docker executor (also
  with --offline-base, which asks no registry for the base image) and the venv executor: whether it
  built anything (its progress says `up to date`, and the engine's image ids are
  the same before and after), and the seconds from the runner's start to its first cell's launch;
- scaling: runs of 1, 4 and 16 crash cells (venv executor): wall time against the number of cells,
  fitted as constant + per cell x cells, with the largest distance of a run from that line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

import yaml

import common
from common import BENCH, ROOT, docker_version, load, provenance, results_of, runner, table, write_section

CELLS = (1, 4, 16)
# `run` options of each variant of the cache question; --offline-base skips asking a registry for the base image.
CACHE_VARIANTS = {"docker": ("--executor", "docker"), "docker --offline-base": ("--executor", "docker", "--offline-base"),
                  "venv": ("--executor", "venv")}
RUNNER_TARGET_S = 2.0


def crash_matrix(cells: int) -> dict:
    workloads = {f"crash{number:02d}": {"model": "mnist", "fault": "crash", "epochs": 2, "data": str(ROOT / "data")} for number in range(1, cells + 1)}
    return {"workloads": workloads, "repeats": 1, "cpu": {"backend": ["jax"], "jax": ["0.10"]}}


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = constant + slope * x: (constant, slope)."""
    count = len(xs)
    mean_x, mean_y = sum(xs) / count, sum(ys) / count
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def image_ids() -> set[str]:
    done = subprocess.run(["docker", "images", "--no-trunc", "-q", "cudnn-matrix/*"], capture_output=True, text=True)
    return set(done.stdout.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one round")
    parser.add_argument("--rounds", type=int, help="rounds of every run (default: 3; --quick 1)")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    if args.quick:
        common.divert(args.results / "RESULTS-quick.md")
    rounds = args.rounds or (1 if args.quick else 3)
    folder = args.results / ("runner-cost-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))
    folder.mkdir(parents=True)
    matrices = {}
    for cells in CELLS:
        matrices[cells] = folder / f"crash-{cells}.yaml"
        matrices[cells].write_text(yaml.safe_dump(crash_matrix(cells)))
    load_before = load()
    for executor in ("docker", "venv"):  # the first make matrix: whatever is missing is built here, untimed
        runner("build", "-f", str(matrices[1]), "--executor", executor, quiet=False)

    cache, scaling = {variant: [] for variant in CACHE_VARIANTS}, {cells: [] for cells in CELLS}
    for round_number in range(rounds):
        for variant, options in CACHE_VARIANTS.items():
            docker = options[1] == "docker"
            images = image_ids() if docker else set()
            started = time.time()
            results = folder / f"cache-{options[1]}{len(options)}-{round_number}"
            _, seconds, progress = runner("run", "-f", str(matrices[1]), *options, "--results", str(results))
            rebuilt = "building" in progress or (docker and image_ids() != images)
            launched = results_of(next(results.iterdir()))[0].get("launched")
            cache[variant].append((rebuilt, launched - started if launched else None, seconds))
        for cells in CELLS:
            _, seconds, _ = runner("run", "-f", str(matrices[cells]), "--executor", "venv", "--results", str(folder / f"scaling-{cells}-{round_number}"))
            scaling[cells].append(seconds)
    load_after = load()

    command = "python bench/runner_cost.py" + (" --quick" if args.quick else "") + (f" --rounds {args.rounds}" if args.rounds else "")
    header = provenance(command, load_before, load_after, {"docker engine": docker_version()})
    cache_rows = [[variant, f"{sum(rebuilt for rebuilt, _, _ in runs)} of {len(runs)}",
                   f"{median(before for _, before, _ in runs):.2f}", f"{max(before for _, before, _ in runs):.2f}",
                   f"{median(seconds for _, _, seconds in runs):.2f}"] for variant, runs in cache.items()]
    write_section("cache", "## Cache: a second run on an unchanged matrix (bench/runner_cost.py)\n\n" + header
                  + f"\n- {rounds} round(s); each a `run` of one `fault: crash` cell of the jax CPU environment, after a `build` that "
                    "made sure nothing was missing\n\n"
                  + table(["run", "runs that built something", "runner start -> first cell launched s (median)", "(max)",
                           "whole run s (median)"], cache_rows))

    xs = [cells for cells in CELLS for _ in scaling[cells]]
    ys = [seconds for cells in CELLS for seconds in scaling[cells]]
    constant, per_cell = fit_line(xs, ys)
    worst = max(abs(y - (constant + per_cell * x)) for x, y in zip(xs, ys))
    scaling_rows = [[cells, f"{median(scaling[cells]):.2f}", f"{min(scaling[cells]):.2f}-{max(scaling[cells]):.2f}",
                     f"{median(scaling[cells]) / cells:.2f}"] for cells in CELLS]
    verdict = "met" if per_cell <= RUNNER_TARGET_S else "not met"
    write_section("scaling", "## Scaling: runner time for 1, 4 and 16 cells (bench/runner_cost.py)\n\n" + header
                  + f"\n- {rounds} round(s) of runs of 1, 4 and 16 `fault: crash` cells (venv executor: each cell a fresh process "
                    "that exits at once), interleaved\n\n"
                  + table(["cells", "run s (median)", "range", "s per cell"], scaling_rows)
                  + f"\n\nFitted: run s = {constant:.2f} + {per_cell:.3f} x cells; the farthest run is {worst:.2f} s off the line. "
                    f"The constant is the runner's start (imports, plan, environment check, report and chart); the slope its cost per "
                    f"cell, a crash cell's own process included: target <= {RUNNER_TARGET_S:.0f} s per cell, {verdict}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
