"""cudnn-matrix (or python -m runner): the pipeline matrix.yaml -> cells -> environments -> runs -> records -> report.

Exit codes: 0 all good, 1 some cell failed (compare --fail-on slower: some cell is slower in B), 2 config or usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import os
import shlex
import signal
import stat
import sys
from pathlib import Path
from typing import Callable

from tabulate import tabulate

from runner import __version__, bisect, datasets, dispatch, doctor, executors, invocation, placements, records, run_plan, session
from runner.analysis import analyze
from runner.run_comparison import compare_runs
from runner.cells import Cell, environments_of, matches_id
from runner.config import DEFAULT_REPEATS, MAX_REPEATS, MAX_TIMEOUT_MINUTES
from runner.datasets import KAGGLE_PER_CLASS
from runner.errors import UserError
from runner.output_files import check_folder, check_writable, written
from runner.executors import IMAGE_NAMESPACE, Executor, Prepared, PrepareFailure, local_engine
from runner.executors.host_process import gpu_unavailable
from runner.progress import Progress
from runner.report import FORMATS, as_text, render, render_comparison
from runner.site import publish
from runner.site.charts import run_chart
from runner.stats import MIN_EFFECT
from runner.yaml_reader import shown

CHART_FORMATS = (".png", ".svg", ".pdf")
EXIT_OK, EXIT_CELL_FAILED, EXIT_INTERRUPTED = 0, 1, 130  # usage errors: UserError.exit_code, 2


# Progress goes to stderr, so that stdout carries only tables and JSON.
progress = Progress()


def parser() -> argparse.ArgumentParser:
    """The command line's parser, built once for the executors and placements registered (argparse takes ~15 ms to build it)."""
    return _parser(tuple(executors.REGISTRY), tuple(placements.REGISTRY))


@functools.cache
def _parser(executor_names: tuple[str, ...], placement_names: tuple[str, ...]) -> argparse.ArgumentParser:
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

    top = argparse.ArgumentParser(prog="cudnn-matrix", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"cudnn-matrix {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", parents=[matrix_options, executor_choice], help="show the cells, their ids and images")
    listing.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    building = commands.add_parser("build", parents=[matrix_options, executor_options, build_options], help="build the images (or venvs) the selected cells need")
    building.add_argument("--save", type=Path, metavar="DIR", help="docker: then write the images as archives to DIR, for build --load elsewhere")
    building.add_argument("--load", type=Path, metavar="DIR", help="docker: first load the images build --save wrote to DIR; what they hold is not built")
    run = commands.add_parser("run", parents=[matrix_options, executor_options, build_options, results_options, verdict_options, chart_options], help="build what is missing, run every selected cell, record and report results")
    run.add_argument("--resume", nargs="?", const="latest", metavar="RUN", help="run only the cells without a good record in RUN (default: the latest run), into the same folder")
    run.add_argument("--force", action="store_true", help="with --resume: go on though the matrix file is not the one the run started with")
    run.add_argument("--repeats", type=count(MAX_REPEATS), metavar="N",
                     help=f"run each cell N times (at most {MAX_REPEATS}), a fresh process each, interleaved; the report compares repeats "
                          f"(default: the matrix's repeats, else {DEFAULT_REPEATS})")
    run.add_argument("--seed", type=int, metavar="N", help="shuffle the order within each round by N, to make a run's order again "
                     "(default: a new seed; the manifest keeps it, and a resume reuses it)")
    run.add_argument("--budget-minutes", type=minutes, metavar="M",
                     help="stop starting repeats once the run has taken M minutes, and stop the one running at M: on a machine "
                          "lent for a while, what is measured by then is kept and the rest is recorded as not reached")
    run.add_argument("--wide", action="store_true", help="end with the report's table of every column (see report --wide)")
    run.add_argument("--dry-run", action="store_true",
                     help="print what the run would do (cells to run, those that would not and why, environments to make, "
                          "an estimate of its time) and stop there; every run prints it first")
    run.add_argument("--gpus", metavar="WHICH", help="GPUs for GPU cells: all, none, or indices like 0,1 (default: gpu.devices of the matrix, else all)")
    run.add_argument("--dispatch", choices=placement_names, default="local",
                     help="local: run the cells here, one after another; slurm: one sbatch job per cell and repeat, "
                          "settings under slurm: in the matrix; ssh: spread the cells over remote Docker hosts, "
                          "hosts: in the matrix or --host (default: %(default)s)")
    run.add_argument("--host", dest="hosts", action="append", metavar="URL",
                     help="a remote Docker host for --dispatch ssh (implies it), repeatable: ssh://user@host[:port], "
                          "tcp://host:port (TLS) or a Docker context name; replaces the matrix's hosts:")
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


def interrupt_for(runner_pid: int):
    """The handler by which SIGINT (Ctrl-C) and SIGTERM (docker stop, a cloud VM's shutdown) end a run alike.

    Only in the runner's own process: a child forked but not yet exec'd (docker-py starts `ssh`
    with a preexec function, so Python code runs there) gets Ctrl-C too, as one of the terminal's
    process group, and raising there would only print a traceback from inside the fork.
    """
    def interrupt(signum, frame):
        if os.getpid() == runner_pid:
            raise KeyboardInterrupt
    return interrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        return unknown_command(argv[0])
    args = parser().parse_args(argv)
    # Both explicitly: a process started in the background by a shell (as CI jobs are) inherits
    # SIGINT ignored, and Python then installs no Ctrl-C handler of its own.
    progress.verbose = getattr(args, "verbose", False)
    interrupt = interrupt_for(os.getpid())
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout was closed early (report | head): what the reader wanted was printed; the rest goes nowhere, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def unknown_command(word: str) -> int:
    """A mistyped command, with the nearest one; internal commands are neither listed nor suggested."""
    public = [name for name in COMMANDS if name not in INTERNAL_COMMANDS]
    near = difflib.get_close_matches(word, public, n=1)
    hint = f"did you mean {near[0]!r}?" if near else f"expected one of {', '.join(public)}"
    print(f"error: unknown command {word!r}: {hint}", file=sys.stderr)
    return UserError.exit_code


def plan(args) -> session.Plan:
    return session.plan(args.file, args.pattern, args.strict, getattr(args, "offline_base", False), getattr(args, "gpus", None),
                        installs=getattr(args, "executor", "docker") != "local")


def executor(args, chosen: session.Plan) -> Executor:
    """The executor --executor names, from the registry (where tests register a fake)."""
    return executors.make(args.executor, executors.Wanted(chosen.matrix.build, chosen.gpu_devices, getattr(args, "python", sys.executable), progress))


def cmd_list(args) -> int:
    chosen = plan(args)
    # Whether GPU cells would be skipped here, as this host's nvidia-smi says; nothing is built or asked of an engine.
    no_gpu = gpu_unavailable(chosen.gpu_devices) if args.executor != "docker" or local_engine() else None
    rows = [_listing(cell, cell in chosen.selected, args.pattern, args.executor, no_gpu) for cell in chosen.cells]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        # What each cell runs in: Docker's image, or for venv and local the environment they make of the same spec.
        made = "image" if args.executor == "docker" else "environment"
        table = [[r["id"], r["image"] if made == "image" else r["environment"]["name"], r["status"], r["reason"]] for r in rows]
        print(tabulate(table, headers=["cell", made, "status", "reason"], tablefmt="github"))
    return EXIT_OK


def _listing(cell: Cell, selected: bool, pattern: str | None, executor_name: str, no_gpu: str | None) -> dict:
    why = run_plan.not_run(cell, run_plan.Here(no_gpu)) if selected or cell.excluded else ("deselected", f"not matched by -k {pattern}")
    status, reason = why or ("selected", "")
    axes = cell.axes_dict
    row = {"id": cell.id, "kind": cell.kind, "image": f"{IMAGE_NAMESPACE}/{cell.environment.name}", "workload": cell.workload.name,
           axes["framework"]: axes["framework_version"], "status": status, "reason": reason,
           "axes": axes, "executor": executor_name, "environment": cell.environment.describe()}
    if cell.kind == "gpu":
        row.update(cuda=cell.axis("cuda"), cudnn=cell.axis("cudnn"), base_image=cell.environment.base)
    return row


def cmd_build(args) -> int:
    if (args.save or args.load) and args.executor != "docker":
        raise UserError(f"--{'save' if args.save else 'load'}: images travel as archives with --executor docker; {args.executor} builds no image")
    if args.save:
        check_folder(args.save, "--save")
    chosen = plan(args)
    builder = executor(args, chosen)
    if args.save or args.load:
        from runner.executors import docker_archives  # docker-py, a second to import: only where images travel
    if args.load:
        docker_archives.load(builder.client, args.load, progress)
    prepared = session.build(chosen, builder, progress)
    if args.save:
        docker_archives.save(builder.client, {p.spec.name: p.handle for p in prepared if isinstance(p, Prepared)}, args.save, progress)
    return EXIT_CELL_FAILED if any(isinstance(environment, PrepareFailure) for environment in prepared) else EXIT_OK


def cmd_run(args) -> int:
    check_writable(args.plot, "--plot", CHART_FORMATS)
    chosen = plan(args)
    args.results = results_folder(args.results)
    if args.hosts and args.dispatch == "slurm":
        raise UserError("--host: remote Docker hosts are --dispatch ssh; Slurm places its jobs itself")
    where = "ssh" if args.hosts else args.dispatch
    if args.dry_run:  # what every run says first, here alone
        if where != "local":
            raise UserError("--dry-run: only for runs on this machine (--dispatch local), whose cells run one after another")
        progress(session.outlook(chosen, executor(args, chosen), args.results, args.resume, args.repeats))
        return EXIT_OK
    asked = placements.Asked(args.executor, args.python, args.offline_base, tuple(args.hosts or ()), args.budget_minutes, args.gpus)
    result = session.run_placed(chosen, placements.make(where, chosen, asked, progress), args.results, args.resume, args.repeats,
                                progress, args.force, lambda run_id: invocation.resume_command(args, run_id), args.seed)
    analysis = analyze(result.records, min_effect=args.min_effect / 100)
    print(as_text(analysis, wide=args.wide))
    if where != "local":
        print("\n" + dispatch.where(result.records))
    if args.plot:
        draw_chart(analysis, args.plot)
    print(f"Site: {shlex.join(invocation.program())} publish{f' --results {args.results}' if args.results != Path('results') else ''}")
    return EXIT_CELL_FAILED if result.failed else EXIT_OK


def cmd_run_cell(args) -> int:
    """One cell in a dispatched job: its record goes to a file of its own in the run's jobs/ folder, never to results.jsonl."""
    job = dispatch.Job(args.file, args.cell, args.repeat, args.run, args.matrix_sha256, args.executor, args.python, args.offline_base)
    record, path = dispatch.run_cell_job(job, progress)
    progress(f"{record.cell_id}: {record.status}{': ' + record.reason if record.reason else ''}; record: {path}")
    return EXIT_OK


def cmd_doctor(args) -> int:
    chosen = plan(args)
    found = doctor.checks(chosen, args.executor, lambda: executor(args, chosen), args.results)
    print("\n".join(check.line() for check in found))
    return doctor.exit_code(found)


def cmd_data(args) -> int:
    if args.model == "mnist":
        datasets.fetch_mnist(args.source, args.data, progress)
    elif args.source is None:
        raise UserError("data dogs-vs-cats: --from PATH/train.zip is needed (Kaggle's Dogs vs. Cats training archive)")
    else:
        datasets.arrange_dogs_vs_cats(args.source, args.data, args.train_per_class, args.validation_per_class, progress)
    return EXIT_OK


def cmd_clean(args) -> int:
    from runner.executors.docker_executor import connect
    from runner.executors.docker_run import remove_leftovers

    results = results_folder(args.results)
    environments = frozenset(spec.name for spec in environments_of(session.plan(args.file).cells)) if args.images else frozenset()
    removed = remove_leftovers(connect(), force=args.force, results_dir=results, environments=environments)
    progress(f"removed {removed['containers']} container(s) and {removed['images']} image(s) made by cudnn-matrix")
    if removed["elsewhere"]:
        progress(f"left {removed['elsewhere']} container(s) of runs outside {results} (another user's, on a shared engine): "
                 "`clean --results DIR` names their folder")
    if removed["spared_runs"]:
        progress(f"left the containers of {len(removed['spared_runs'])} run(s) still going ({', '.join(sorted(removed['spared_runs']))}): "
                 "their runners hold the runs' locks; --force removes them too")
    return EXIT_OK


def cmd_report(args) -> int:
    check_writable(args.output, "-o")
    check_writable(args.plot, "--plot", CHART_FORMATS)
    run_folder = records.find_run(results_folder(args.results), str(args.run) if args.run else "latest")
    loaded = selected(records.load(run_folder), args.pattern, run_folder.name)
    if args.by and args.by != "host" and not any(args.by in record.axes for record in loaded):
        axes = sorted({axis for record in loaded for axis in record.axes})
        raise UserError(f"--by {args.by}: expected host or an axis of run {run_folder.name} ({', '.join(axes)})")
    if args.baseline and args.baseline not in {record.cell_id for record in loaded if record.status == "ok"}:
        raise UserError(f"--baseline {args.baseline}: no measured cell of run {run_folder.name} has that id")
    min_effect = args.min_effect / 100
    if args.by:
        groups = dispatch.group_by(loaded, args.by)
        text = "\n\n".join(f"{args.by} {value}\n" * (args.format not in ("csv", "json"))
                           + render(group, args.format, args.baseline, min_effect, args.wide) for value, group in groups.items())
    else:
        text = render(loaded, args.format, args.baseline, min_effect, args.wide)
    emit(f"run {run_folder.name}\n" * (args.format not in ("csv", "json")) + text, args.output)
    if args.plot:
        draw_chart(analyze(loaded, args.baseline, min_effect), args.plot)
    return EXIT_CELL_FAILED if any(record.status == "failed" for record in loaded) else EXIT_OK


def cmd_bisect(args) -> int:
    chosen = session.plan(args.file, offline_base=args.offline_base, installs=args.executor != "local")
    results = results_folder(args.results)
    finding, folder = bisect.run(chosen, args.cell, *args.cudnn, lambda: executor(args, chosen), results, args.repeats, progress,
                                 args.min_effect / 100)
    print(bisect.render(finding) + (f"\nProbes: {folder}" if folder else ""))
    return EXIT_OK if finding.steps else EXIT_CELL_FAILED


def draw_chart(analysis, path: Path) -> None:
    """--plot: the run's chart, written whole or not at all; a run that measured nothing has none, which is said, not an error."""
    if not analysis.measured:
        progress(f"--plot {path}: no measured cell, so no chart")
        return
    with written(path, "--plot") as partial:
        run_chart(analysis, partial)
    progress(f"chart: {path}")


def cmd_compare(args) -> int:
    check_writable(args.output, "-o")
    results = results_folder(args.results)
    run_a, run_b = (records.find_run(results, str(run)) for run in (args.run_a, args.run_b))
    loaded_a, loaded_b = (selected(records.load(run), args.pattern, run.name) for run in (run_a, run_b))
    compared = compare_runs(loaded_a, loaded_b, run_a.name, run_b.name, args.min_effect / 100)
    emit(render_comparison(compared, args.format), args.output)
    slower = compared.slower if args.fail_on else ()
    if slower:
        progress(f"--fail-on slower: {len(slower)} cell(s) slower in {run_b.name} than in {run_a.name}: {', '.join(slower)}")
    return EXIT_CELL_FAILED if slower else EXIT_OK


def cmd_publish(args) -> int:
    published = publish(results_folder(args.results), args.output, args.min_effect / 100, progress)
    progress(f"{len(published.rendered)} run(s) rendered, {len(published.unchanged)} unchanged, {len(published.removed)} removed"
             + (f"; in progress: {', '.join(published.in_progress)}" if published.in_progress else "")
             + (f"; unreadable: {', '.join(published.unreadable)}" if published.unreadable else ""))
    print(f"Site: {published.index} ({published.index.resolve().as_uri()})")
    return EXIT_OK


def selected(loaded: list, pattern: str | None, run_id: str) -> list:
    """The records of the cells -k selects, as run -k selects cells; selecting none of a run's is a usage error."""
    chosen = [record for record in loaded if matches_id(record.cell_id, pattern)]
    if loaded and not chosen:
        raise UserError(f"-k {pattern!r} selects none of the {len({record.cell_id for record in loaded})} cells of run {run_id}")
    return chosen


def results_folder(path: Path) -> Path:
    """--results as a folder of runs, ~ expanded: a file, a device or an impossible path is one line, before anything runs."""
    path = path.expanduser()
    try:
        found = path.stat()
    except FileNotFoundError:
        return path  # nothing there yet: a run makes it; a report says there are no runs yet
    except OSError as error:
        raise UserError(f"--results {shown(str(path), 160)}: cannot hold runs ({error.strerror or error})")
    if not stat.S_ISDIR(found.st_mode):
        raise UserError(f"--results {shown(str(path), 160)}: not a folder")
    return path


def emit(text: str, output: Path | None) -> None:
    if output is None:
        print(text)
        return
    with written(output, "-o") as partial:
        partial.write_text(text + "\n")
    progress(f"written: {output}")


INTERNAL_COMMANDS = ("run-cell",)  # what a dispatched job runs on its node; not for people
COMMANDS = {"list": cmd_list, "build": cmd_build, "run": cmd_run, "run-cell": cmd_run_cell, "report": cmd_report, "compare": cmd_compare, "bisect": cmd_bisect,
            "doctor": cmd_doctor, "data": cmd_data, "clean": cmd_clean, "publish": cmd_publish}
