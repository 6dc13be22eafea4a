"""Dispatch overhead: the wall time of a run split over Slurm nodes, against its longest node's share.

    python bench/dispatch_overhead.py [--cells 6] [--minutes 0.5]      (as root: it starts a Slurm)

Starts the tests' Slurm on this machine (tests/slurm_cluster.py: a controller and three
nodes), builds the CPU image once (not timed), then times `run --dispatch slurm` of CELLS
Docker cells that each hang until their time limit of MINUTES: real containers whose
length does not depend on CPU sharing (the three nodes share this machine's cores, so a
training cell would measure contention instead). Each takes a whole node. It prints:

- wall: the runner's command, from start to exit (placement, data, sbatch, scheduling,
  polling, merging);
- each node's share: the sum of its jobs' lengths, start to end as Slurm saw them, and
  of its cells' own lengths (the records' started to ended, inside the jobs);
- wall / longest node's share: 1.0 would be a split that costs nothing;
- against the cells run one after another (the sum of their own lengths): what splitting saved.

And a Markdown block for bench/RESULTS.md. Slurm reports times in whole seconds.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from runner import records  # noqa: E402
from slurm_cluster import LocalCluster, missing  # noqa: E402
from workload.contract import cpu_model  # noqa: E402

MATRIX = """workloads:
{workloads}
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
slurm:
  poll_seconds: 1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=6, help="how many cells (default: %(default)s, two per node)")
    parser.add_argument("--minutes", type=float, default=0.5, help="how long each cell lasts (default: %(default)s)")
    args = parser.parse_args()
    if why := missing():
        print(f"error: cannot start a Slurm here: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cudnn-matrix-bench-") as folder:
        folder = Path(folder)
        matrix = folder / "matrix.yaml"
        workloads = "\n".join(f"  hold-{n}: {{model: dogs-vs-cats, epochs: 2, train_images: 64, validation_images: 32, "
                              f"fault: hang, timeout_minutes: {args.minutes}}}" for n in range(args.cells))
        matrix.write_text(MATRIX.format(workloads=workloads))
        built = subprocess.run([sys.executable, "-m", "runner", "build", "-f", str(matrix)], cwd=REPO)
        if built.returncode != 0:
            return built.returncode
        cluster = LocalCluster(folder / "slurm")
        cluster.start()
        try:
            environment = {**os.environ, **cluster.environment}
            started = time.monotonic()
            run = subprocess.run([sys.executable, "-m", "runner", "run", "--dispatch", "slurm", "-f", str(matrix),
                                  "--results", str(folder / "results")], cwd=REPO, env=environment, capture_output=True, text=True)
            wall = time.monotonic() - started
            if run.returncode not in (0, 1):  # every cell fails by design: it runs into its time limit
                print(run.stderr[-3000:], file=sys.stderr)
                return run.returncode
            (run_folder,) = (folder / "results").iterdir()
            loaded = records.load(run_folder)
            jobs = {record.environment["job_id"]: record for record in loaded}
            shown = {job: dict(part.split("=", 1) for part in cluster.client("scontrol", "--oneliner", "show", "job", job).stdout.split()
                               if "=" in part) for job in jobs}
        finally:
            cluster.stop()
    print(report(args, wall, jobs, shown))
    return 0


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def report(args, wall: float, jobs: dict, shown: dict) -> str:
    job_share, cell_share, count = defaultdict(float), defaultdict(float), defaultdict(int)
    for job, record in jobs.items():
        node = record.environment["host"]
        job_share[node] += seconds(shown[job]["StartTime"], shown[job]["EndTime"])
        cell_share[node] += seconds(record.started, record.ended)
        count[node] += 1
    longest = max(job_share, key=job_share.get)
    rows = [[node, count[node], f"{job_share[node]:.0f}", f"{cell_share[node]:.0f}"] for node in sorted(job_share)]
    nodes = tabulate(rows, headers=["node", "cells", "jobs' share s (Slurm)", "cells' share s (records)"], tablefmt="github")
    ratio = wall / job_share[longest]
    summary = tabulate([["wall time of `run --dispatch slurm`", f"{wall:.1f}"],
                        [f"longest node's share ({longest}: its jobs, start to end)", f"{job_share[longest]:.0f}"],
                        ["wall / longest node's share", f"{ratio:.2f}"],
                        ["wall / longest node's cells' own share", f"{wall / cell_share[longest]:.2f}"],
                        ["the cells one after another (sum of their own lengths)", f"{sum(cell_share.values()):.0f}"],
                        ["that / wall: what the split saved", f"{sum(cell_share.values()) / wall:.2f}x"]],
                       headers=["measure", "value"], tablefmt="github")
    return f"""{nodes}

{summary}

Markdown for bench/RESULTS.md:

### Dispatch overhead (Slurm)

`python bench/dispatch_overhead.py --cells {args.cells} --minutes {args.minutes}` on {cpu_model()} ({platform.machine()},
{os.cpu_count()} cores): a real Slurm on this machine (one controller, three nodes), {args.cells} Docker cells that
each hang until their {args.minutes:g}-minute limit, each on a whole node (`--exclusive`).

{summary}

{nodes}
"""


if __name__ == "__main__":
    sys.exit(main())
