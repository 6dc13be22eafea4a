"""Pipeline overhead and autotuning, as ratios measured in one run.

    python bench/pipeline_overhead.py [--results bench/results]

Runs bench/pipeline.yaml with the runner, then prints, from that run's records:
- (JPEG + augment epoch time) / (cached epoch time): what decoding and augmenting cost;
- (autotuned epoch time) / (fixed epoch time), and each variant's outlier epochs
  (by MAD, as the report flags them): whether autotuning stalls epochs.
Each ratio is judged as the report judges a speed-up: interval, test and verdict.
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
from runner.stats import compare_repeats  # noqa: E402

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
        # The slower variant's time over the faster one's: how many times faster the faster one is.
        ratio = compare_repeats(results[slower].timed.per_repeat, results[faster].timed.per_repeat)
        rows.append([label, f"{results[slower].timed.median:.2f}", f"{results[faster].timed.median:.2f}", ratio.as_times()])
    print(f"\nrun {run.name}\n")
    print(tabulate(rows, headers=["ratio", "numerator epoch s", "denominator epoch s", "ratio (interval) verdict"], tablefmt="github"))
    stalls = [[cell, f"{r.timed.median:.2f}", "; ".join(r.outlier_epochs) or "-"] for cell, r in results.items()]
    print()
    print(tabulate(stalls, headers=["cell", "median epoch s", "outlier epochs"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
