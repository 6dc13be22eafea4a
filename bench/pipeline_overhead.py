"""Pipeline overhead and autotuning, as ratios measured in one run.

    python bench/pipeline_overhead.py [--results bench/results]

Runs bench/pipeline.yaml with the runner, then prints, from that run's records:
- (JPEG + augment epoch time) / (cached epoch time): what decoding and augmenting cost;
- (autotuned epoch time) / (fixed epoch time), and each variant's slowest timed
  epoch over its median: whether autotuning stalls epochs.
"""

import argparse
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from runner import records  # noqa: E402
from runner.report import cell_results  # noqa: E402
from runner.session import plan  # noqa: E402
from runner.stats import speedup  # noqa: E402

MATRIX = BENCH / "pipeline.yaml"
# (label, slower workload, faster workload): workloads of the matrix, whatever cells they expand to.
COMPARISONS = [
    ("JPEG + augment / cached", "dogs-vs-cats", "dogs-vs-cats-cached"),
    ("autotune / fixed, Dogs vs Cats", "dogs-vs-cats-autotune", "dogs-vs-cats"),
    ("autotune / fixed, MNIST", "mnist-autotune", "mnist"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    command = [sys.executable, "-m", "runner", "run", "-f", str(MATRIX), "--results", str(args.results)]
    if subprocess.run(command, cwd=BENCH.parent).returncode != 0:
        return 1
    run = records.latest_run(args.results)
    results = {result.cell_id: result for result in cell_results(records.load(run))}
    cell_of = {cell.workload.name: cell.id for cell in plan(MATRIX).cells}  # the matrix has one CPU environment
    rows = []
    for label, slower_workload, faster_workload in COMPARISONS:
        slower, faster = cell_of[slower_workload], cell_of[faster_workload]
        # The slower variant's time over the faster one's: speedup() of the faster against it.
        ratio = speedup(results[faster].timed, results[slower].timed)
        rows.append([label, f"{results[slower].timed.median:.2f}", f"{results[faster].timed.median:.2f}",
                     f"{1 / ratio.value:.2f} ({1 / ratio.high:.2f}-{1 / ratio.low:.2f})"])
    print(f"\nrun {run.name}\n")
    print(tabulate(rows, headers=["ratio", "numerator epoch s", "denominator epoch s", "ratio (min-max bounds)"], tablefmt="github"))
    stalls = [[cell, f"{r.timed.median:.2f}", f"{r.timed.high:.2f}", f"{r.timed.high / r.timed.median:.2f}"] for cell, r in results.items()]
    print()
    print(tabulate(stalls, headers=["cell", "median epoch s", "slowest epoch s", "slowest / median"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
