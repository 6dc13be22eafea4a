"""The command line's words: every command, its options and what each expects; runner/cli.py does what they ask."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable

from runner import __version__
from runner.config import DEFAULT_REPEATS, MAX_REPEATS
from runner.workloads import MAX_TIMEOUT_MINUTES
from runner.datasets import KAGGLE_PER_CLASS
from runner.report import FORMATS
from runner.stats import MIN_EFFECT
from runner.yaml_reader import shown


@functools.cache
def parser(executor_names: tuple[str, ...], placement_names: tuple[str, ...], description: str) -> argparse.ArgumentParser:
    """The parser for these executors and placements (those registered, where tests add fakes); built once, as argparse takes ~15 ms."""
    matrix_options = argparse.ArgumentParser(add_help=False)
    matrix_options.add_argument("-f", "--file", type=Path, default=Path("matrix.yaml"), help="the matrix file (default: %(default)s)")
    matrix_options.add_argument("-k", dest="pattern", metavar="PATTERN", help="select cells whose id contains PATTERN (a glob: cpu-*-dogs*)")
    matrix_options.add_argument("--strict", action="store_true", help="make a selected cell that the compatibility table excludes an error")
    executor_choice = argparse.ArgumentParser(add_help=False)
    executor_choice.add_argument("--executor", choices=executor_names, default="docker",
                                 help="where cells run: docker (a container each), or without isolation venv (a virtualenv "
                                      "per environment, made with --python) or local (--python as it is) (default: %(default)s)")
    executor_options = argparse.ArgumentParser(add_help=False, parents=[executor_choice])
    executor_options.add_argument("-v", "--verbose", action="store_true",
                                  help="stream each cell's own output (kept in the run folder's logs/ either way) and every build line")
    executor_options.add_argument("--python", default=sys.executable, metavar="PATH",
                                  help="venv: the interpreter venvs are made with; local: the one cells run in (default: this one, %(default)s)")
    build_options = argparse.ArgumentParser(add_help=False)
    build_options.add_argument("--offline-base", action="store_true", help="build base images from Debian packages (debootstrap), never from a registry")
    verdict_options = argparse.ArgumentParser(add_help=False)
    verdict_options.add_argument("--min-effect", type=percent, default=MIN_EFFECT * 100, metavar="PERCENT",
                                 help="the smallest difference called faster or slower, even when significant (default: %(default)g)")
    chart_options = argparse.ArgumentParser(add_help=False)
    chart_options.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the run's chart (.png, .svg or .pdf)")
    results_options = argparse.ArgumentParser(add_help=False)
    results_options.add_argument("--results", type=Path, default=Path("results"), help="where run folders go (default: %(default)s)")
    placement_options = argparse.ArgumentParser(add_help=False)
    placement_options.add_argument("--repeats", type=count(MAX_REPEATS), metavar="N",
                                   help=f"run each cell N times (at most {MAX_REPEATS}), a fresh process each, interleaved; the report "
                                        f"compares repeats (default: the matrix's repeats, else {DEFAULT_REPEATS}; reproduce: the run's)")
    placement_options.add_argument("--seed", type=int, metavar="N", help="shuffle the order within each round by N, to make a run's "
                                   "order again (default: a new seed; the manifest keeps it, and a resume reuses it)")
    placement_options.add_argument("--gpus", metavar="WHICH",
                                   help="GPUs for GPU cells: all, none, or indices like 0,1 (default: gpu.devices of the matrix, else all)")
    placement_options.add_argument("--dispatch", choices=placement_names, default="local",
                                   help="local: run the cells here, one after another; slurm: one sbatch job per cell and repeat, "
                                        "settings under slurm: in the matrix; ssh: spread the cells over remote Docker hosts, "
                                        "hosts: in the matrix or --host (default: %(default)s)")
    placement_options.add_argument("--host", dest="hosts", action="append", metavar="URL",
                                   help="a remote Docker host for --dispatch ssh (implies it), repeatable: ssh://user@host[:port], "
                                        "tcp://host:port (TLS) or a Docker context name; replaces the matrix's hosts:")
    placement_options.add_argument("--ship-images", action="store_true",
                                   help="--host: build each image here and load it into every host, instead of building it there "
                                        "(without it, an image this machine has is shipped where that downloads less than a build)")

    top = argparse.ArgumentParser(prog="cudnn-matrix", description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"cudnn-matrix {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", parents=[matrix_options, executor_choice], help="show the cells, their ids and images")
    listing.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    listing.add_argument("--locked", metavar="RUN", help="the cells RUN measured instead, each environment pinned to RUN's lock, "
                         "as reproduce runs them (RUN: a run id under results/, or a run folder)")
    building = commands.add_parser("build", parents=[matrix_options, executor_options, build_options], help="build the images (or venvs) the selected cells need")
    building.add_argument("--save", type=Path, metavar="DIR", help="docker: then write the images as archives to DIR, for build --load elsewhere")
    building.add_argument("--load", type=Path, metavar="DIR", help="docker: first load the images build --save wrote to DIR; what they hold is not built")
    run = commands.add_parser("run", parents=[matrix_options, executor_options, build_options, results_options, verdict_options, chart_options,
                                              placement_options], help="build what is missing, run every selected cell, record and report results")
    run.add_argument("--resume", nargs="?", const="latest", metavar="RUN", help="run only the cells without a good record in RUN (default: the latest run), into the same folder")
    run.add_argument("--force", action="store_true", help="with --resume: go on though the matrix file is not the one the run started with")
    run.add_argument("--budget-minutes", type=minutes, metavar="M",
                     help="stop starting repeats once the run has taken M minutes, and stop the one running at M: on a machine "
                          "lent for a while, what is measured by then is kept and the rest is recorded as not reached")
    run.add_argument("--wide", action="store_true", help="end with the report's table of every column (see report --wide)")
    run.add_argument("--dry-run", action="store_true",
                     help="print what the run would do (cells to run, those that would not and why, environments to make, "
                          "an estimate of its time) and stop there; every run prints it first")
    reproducing = commands.add_parser("reproduce", parents=[executor_options, build_options, results_options, verdict_options, placement_options],
                                      help="run a run's cells again in environments rebuilt from its locks, and compare the two runs")
    reproducing.add_argument("run", metavar="RUN", help="the run to reproduce: a run id under --results, or a run folder")
    reproducing.add_argument("-k", dest="pattern", metavar="PATTERN", help="only the cells whose id contains PATTERN (a glob: cpu-*-dogs*)")
    reproducing.add_argument("--resume", metavar="NEW_RUN", help="go on with a reproduction that stopped, into its own folder")
    # What a dispatched job runs on its node: one cell of the matrix into a run folder. Not for people.
    run_cell = commands.add_parser("run-cell", parents=[executor_options, build_options])
    run_cell.add_argument("-f", "--file", type=Path, required=True)
    run_cell.add_argument("--cell", required=True)
    run_cell.add_argument("--repeat", type=int, default=0)
    run_cell.add_argument("--run", type=Path, required=True)
    run_cell.add_argument("--matrix-sha256")
    commands.add_parser("doctor", parents=[matrix_options, executor_options, build_options, results_options],
                        help="check what a run depends on (engine, GPU, disk, base images, data) without running anything")
    data = commands.add_parser("data", help="prepare real data on the host: Kaggle's Dogs vs Cats, or MNIST")
    data.add_argument("model", choices=["dogs-vs-cats", "mnist"])
    data.add_argument("--from", dest="source", type=Path, metavar="FILE",
                      help="dogs-vs-cats: Kaggle's train.zip (required); mnist: an mnist.npz you have (default: download it once)")
    data.add_argument("--data", type=Path, default=Path("data"), help="the data folder (default: %(default)s)")
    data.add_argument("--train-per-class", type=count(KAGGLE_PER_CLASS), default=1000, metavar="N", help="dogs-vs-cats: training images per class (default: %(default)s)")
    data.add_argument("--validation-per-class", type=count(KAGGLE_PER_CLASS), default=400, metavar="N", help="dogs-vs-cats: validation images per class (default: %(default)s)")
    clean = commands.add_parser("clean", parents=[results_options],
                                help="remove the containers of runs under --results (and with --images, images) that cudnn-matrix made, found by label")
    clean.add_argument("--images", action="store_true", help="also remove the images of the -f matrix's cells (their next build starts over)")
    clean.add_argument("-f", "--file", type=Path, default=Path("matrix.yaml"), help="with --images: the matrix file (default: %(default)s)")
    clean.add_argument("--force", action="store_true", help="also remove the containers of runs that are still going (they then fail)")
    report_options = argparse.ArgumentParser(add_help=False, parents=[verdict_options])
    report_options.add_argument("--format", default="github", choices=FORMATS, help="github, plain, markdown, csv or json (numbers: docs/results.md) (default: %(default)s)")
    report_options.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    report_options.add_argument("-k", dest="pattern", metavar="PATTERN", help="only the cells whose id contains PATTERN (a glob: cpu-*-dogs*)")
    report = commands.add_parser("report", parents=[results_options, report_options, chart_options], help="print the table of a run (default: the latest)",
                                 epilog="exit codes: 0 no cell failed, 1 some cell failed, 2 a usage error")
    report.add_argument("run", nargs="?", type=Path, help="a run folder, results/<run-id> (default: the latest)")
    report.add_argument("--wide", action="store_true", help="the table with every column, all cells in one (default: per workload, "
                        "its measured cells with their speed-ups and verdicts, in 100 columns)")
    report.add_argument("--baseline", metavar="CELL", help="the cell speed-ups are measured against (default: each workload's CPU cell)")
    report.add_argument("--by", metavar="KEY", help="one table per value of KEY: host (the node that measured each record) or an axis such as gpu_type")
    compare = commands.add_parser("compare", parents=[results_options, report_options], help="the same cells of two runs side by side, with ratios",
                                  epilog="exit codes: 0, or with --fail-on slower 1 when some cell is slower in RUN_B; 2 a usage error")
    compare.add_argument("run_a", type=Path, metavar="RUN_A", help="a run folder or run id")
    compare.add_argument("run_b", type=Path, metavar="RUN_B", help="a run folder or run id")
    compare.add_argument("--fail-on", choices=["slower"],
                         help="exit 1 when some cell of B is slower than in A (the verdict, not the ratio alone): a CI job's regression gate")
    bisecting = commands.add_parser("bisect", parents=[executor_options, build_options, results_options, verdict_options],
                                    help="find the first cuDNN release between two that changes a GPU cell's verdict (each probe a normal cell)")
    bisecting.add_argument("cell", metavar="CELL", help="a GPU cell of the matrix (see list)")
    bisecting.add_argument("--cudnn", nargs=2, required=True, metavar=("OLDER", "NEWER"), help="the two cuDNN releases (major.minor) to search between")
    bisecting.add_argument("-f", "--file", type=Path, default=Path("matrix.yaml"), help="the matrix file (default: %(default)s)")
    bisecting.add_argument("--repeats", type=count(MAX_REPEATS), metavar="N", help="repeats of each probe (default: the matrix's repeats)")
    publish = commands.add_parser("publish", parents=[results_options, verdict_options],
                                  help="write a static site of every run (opens from disk); only changed runs are rendered again")
    publish.add_argument("-o", "--output", type=Path, default=Path("site"), metavar="SITE", help="the site's folder (default: %(default)s)")
    return top


def number_in(accepts: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type: a number that `accepts` takes, else one line saying what was expected."""
    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")  # which compares false to everything, as inf to every bound
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {shown(text)}")
        return value
    return number


percent = number_in(lambda value: 0 <= value < 100, "a percentage from 0 to below 100")
minutes = number_in(lambda value: 0 < value <= MAX_TIMEOUT_MINUTES, f"minutes above 0 and at most {MAX_TIMEOUT_MINUTES}")


def count(maximum: int):
    """An argparse type: a whole number from 1 to maximum."""
    def whole_number(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:  # isdigit alone takes "٣" and "²"
            raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {maximum}, got {shown(text)}")
        return int(text)
    return whole_number
