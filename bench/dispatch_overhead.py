"""Dispatch overhead: the wall time of a split run against its longest node's share.

    python bench/dispatch_overhead.py [--cells 6] [--minutes 0.5]                  (as root: it starts a Slurm)
    python bench/dispatch_overhead.py --dispatch ssh [--cells 4] [--minutes 0.5]   (as root: it starts two sshd)

Slurm: starts the tests' Slurm on this machine (tests/slurm_cluster.py: a controller and
three nodes). SSH: starts the tests' two sshd on 127.0.0.2 and 127.0.0.3
(tests/ssh_hosts.py), both reaching this machine's Docker engine, as two rented boxes.
Builds the CPU image once (not timed), then times `run --dispatch slurm|ssh` of CELLS
Docker cells that each hang until their time limit of MINUTES: real containers whose
length does not depend on CPU sharing (the nodes share this machine's cores, so a
training cell would measure contention instead). It prints:

- wall: the runner's command, from start to exit (placement, data, submission or
  connection, scheduling, polling, merging);
- each node's share: for Slurm the sum of its jobs' lengths, start to end as Slurm saw
  them, and for both the sum of its cells' own lengths (the records' started to ended);
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
import slurm_cluster  # noqa: E402
import ssh_hosts  # noqa: E402
from workload.machine import cpu_model  # noqa: E402

MATRIX = """workloads:
{workloads}
repeats: 1
cpu:
  tensorflow: ["2.21"]
build:
  offline_base: true
slurm:
  poll_seconds: 1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dispatch", choices=("slurm", "ssh"), default="slurm", help="where the cells go (default: %(default)s)")
    parser.add_argument("--cells", type=int, help="how many cells (default: two per node: 6 for Slurm, 4 for SSH)")
    parser.add_argument("--minutes", type=float, default=0.5, help="how long each cell lasts (default: %(default)s)")
    args = parser.parse_args()
    args.cells = args.cells or (6 if args.dispatch == "slurm" else 4)
    if why := (slurm_cluster if args.dispatch == "slurm" else ssh_hosts).missing():
        print(f"error: cannot start the {args.dispatch} nodes here: {why}", file=sys.stderr)
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
        timed = time_slurm if args.dispatch == "slurm" else time_ssh
        wall, jobs, shown = timed(folder, matrix)
    if wall is None:
        return 1
    print(report(args, wall, jobs, shown))
    return 0


def time_slurm(folder: Path, matrix: Path):
    """The run's wall time, its records by job, and what scontrol says of each job."""
    cluster = slurm_cluster.LocalCluster(folder / "slurm")
    cluster.start()
    try:
        run, wall = timed_run(matrix, folder / "results", ["--dispatch", "slurm"], {**os.environ, **cluster.environment})
        if run is None:
            return None, {}, {}
        jobs = {record.environment["job_id"]: record for record in run}
        shown = {job: dict(part.split("=", 1) for part in cluster.client("scontrol", "--oneliner", "show", "job", job).stdout.split()
                           if "=" in part) for job in jobs}
        return wall, jobs, shown
    finally:
        cluster.stop()


def time_ssh(folder: Path, matrix: Path):
    """The run's wall time and its records; no scheduler to ask, so no job times."""
    (folder / "ssh").mkdir()
    hosts = ssh_hosts.SshHosts(folder / "ssh")
    hosts.start()
    try:
        run, wall = timed_run(matrix, folder / "results", [f"--host={url}" for url in hosts.urls], hosts.environment)
        return wall, {str(number): record for number, record in enumerate(run or [])}, {}
    finally:
        hosts.stop()


def timed_run(matrix: Path, results: Path, where: list[str], environment: dict):
    """The records of `run` (every cell fails by design: it runs into its time limit) and its wall time."""
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "runner", "run", *where, "-f", str(matrix), "--results", str(results)],
                         cwd=REPO, env=environment, capture_output=True, text=True)
    wall = time.monotonic() - started
    if run.returncode not in (0, 1):
        print(run.stderr[-3000:], file=sys.stderr)
        return None, wall
    (run_folder,) = results.iterdir()
    return records.load(run_folder), wall


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def report(args, wall: float, jobs: dict, shown: dict) -> str:
    job_share, cell_share, count = defaultdict(float), defaultdict(float), defaultdict(int)
    for job, record in jobs.items():
        node = record.environment["host"]
        if job in shown:
            job_share[node] += seconds(shown[job]["StartTime"], shown[job]["EndTime"])
        cell_share[node] += seconds(record.started, record.ended)
        count[node] += 1
    share = job_share if shown else cell_share  # what each node was busy with: Slurm's job times, else the cells' own
    longest = max(share, key=share.get)
    if shown:
        rows = [[node, count[node], f"{job_share[node]:.0f}", f"{cell_share[node]:.0f}"] for node in sorted(share)]
        nodes = tabulate(rows, headers=["node", "cells", "jobs' share s (Slurm)", "cells' share s (records)"], tablefmt="github")
    else:
        rows = [[node, count[node], f"{cell_share[node]:.1f}"] for node in sorted(share)]
        nodes = tabulate(rows, headers=["host", "cells", "cells' share s (records)"], tablefmt="github")
    what = "its jobs, start to end" if shown else "its cells, start to end"
    summary = tabulate([[f"wall time of `run --dispatch {args.dispatch}`", f"{wall:.1f}"],
                        [f"longest node's share ({longest}: {what})", f"{share[longest]:.0f}"],
                        ["wall / longest node's share", f"{wall / share[longest]:.2f}"],
                        ["wall / longest node's cells' own share", f"{wall / cell_share[longest]:.2f}"],
                        ["the cells one after another (sum of their own lengths)", f"{sum(cell_share.values()):.0f}"],
                        ["that / wall: what the split saved", f"{sum(cell_share.values()) / wall:.2f}x"]],
                       headers=["measure", "value"], tablefmt="github")
    setting = ("a real Slurm on this machine (one controller, three nodes)" if args.dispatch == "slurm"
               else "two sshd on 127.0.0.2 and 127.0.0.3 reaching this machine's Docker engine (two boxes)")
    placement = "each on a whole node (`--exclusive`)" if args.dispatch == "slurm" else "one at a time per host"
    flag = "" if args.dispatch == "slurm" else " --dispatch ssh"
    return f"""{nodes}

{summary}

Markdown for bench/RESULTS.md:

### Dispatch overhead ({'Slurm' if args.dispatch == 'slurm' else 'SSH'})

`python bench/dispatch_overhead.py{flag} --cells {args.cells} --minutes {args.minutes}` on {cpu_model()} ({platform.machine()},
{os.cpu_count()} cores): {setting}, {args.cells} Docker cells that each hang until their {args.minutes:g}-minute limit,
{placement}.

{summary}

{nodes}
"""


if __name__ == "__main__":
    sys.exit(main())
