"""cudnn-matrix (or python -m runner): the pipeline matrix.yaml -> cells -> environments -> runs -> records -> report.

Exit codes: 0 all good, 1 some cell failed (compare --fail-on slower: some cell is slower in B), 2 config or usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import signal
import stat
import sys
from pathlib import Path

from tabulate import tabulate

from runner import arguments, bisect, datasets, dispatch, doctor, executors, invocation, placements, records, reproduce, run_plan, session
from runner.analysis import analyze
from runner.run_comparison import compare_runs
from runner.cells import Cell, environments_of, matches_id
from runner.errors import UserError
from runner.output_files import check_folder, check_writable, written
from runner.executors import IMAGE_NAMESPACE, Executor, Prepared, PrepareFailure, local_engine
from runner.executors.host_process import gpu_unavailable
from runner.progress import Progress
from runner.report import as_text, render, render_comparison, render_groups
from runner.site import publish
from runner.site.charts import run_chart
from runner.yaml_reader import shown

CHART_FORMATS = (".png", ".svg", ".pdf")
EXIT_OK, EXIT_CELL_FAILED, EXIT_INTERRUPTED = 0, 1, 130  # usage errors: UserError.exit_code, 2


# Progress goes to stderr, so that stdout carries only tables and JSON.
progress = Progress()


def parser() -> argparse.ArgumentParser:
    """The command line's parser, built once for the executors and placements registered (argparse takes ~15 ms to build it)."""
    return arguments.parser(tuple(executors.REGISTRY), tuple(placements.REGISTRY), __doc__)


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
    chosen = reproduce.plan(reproduce.source(records.find_run(Path("results"), args.locked)), args.pattern)[0] if args.locked else plan(args)
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
        docker_archives.save(builder.client, [p for p in prepared if isinstance(p, Prepared)], args.save, progress)
    return EXIT_CELL_FAILED if any(isinstance(environment, PrepareFailure) for environment in prepared) else EXIT_OK


def cmd_run(args) -> int:
    check_writable(args.plot, "--plot", CHART_FORMATS)
    chosen = plan(args)
    args.results = results_folder(args.results)
    where = placed_where(args)
    if args.dry_run:  # what every run says first, here alone
        if where != "local":
            raise UserError("--dry-run: only for runs on this machine (--dispatch local), whose cells run one after another")
        progress(session.outlook(chosen, executor(args, chosen), args.results, args.resume, args.repeats))
        return EXIT_OK
    result = session.run_placed(chosen, placement(args, chosen, where), args.results, args.resume, args.repeats,
                                progress, args.force, lambda run_id: invocation.resume_command(args, run_id), args.seed)
    analysis = analyze(result.records, min_effect=args.min_effect / 100)
    print(as_text(analysis, wide=args.wide))
    if where != "local":
        print("\n" + dispatch.where(result.records))
    if args.plot:
        draw_chart(analysis, args.plot)
    print(f"Site: {shlex.join(invocation.program())} publish{f' --results {args.results}' if args.results != Path('results') else ''}")
    return EXIT_CELL_FAILED if result.failed else EXIT_OK


def placed_where(args) -> str:
    """The placement --dispatch and --host name: --host implies ssh."""
    if args.hosts and args.dispatch == "slurm":
        raise UserError("--host: remote Docker hosts are --dispatch ssh; Slurm places its jobs itself")
    return "ssh" if args.hosts else args.dispatch


def placement(args, chosen: session.Plan, where: str) -> placements.Placement:
    asked = placements.Asked(args.executor, args.python, args.offline_base, tuple(args.hosts or ()), getattr(args, "budget_minutes", None),
                             args.gpus, args.ship_images)
    return placements.make(where, chosen, asked, progress)


def cmd_reproduce(args) -> int:
    """RUN's cells again, each environment rebuilt from RUN's lock, then the two runs compared and their machines set side by side."""
    if args.executor == "local":
        raise UserError("--executor local: reproduce rebuilds each environment from its lock; use docker or venv")
    args.results = results_folder(args.results)
    where = placed_where(args)
    found = reproduce.source(records.find_run(args.results, args.run))
    chosen, held = reproduce.plan(found, args.pattern, args.offline_base, args.gpus)
    reproduce.check_available(held, found, progress)
    progress(f"reproducing run {found.folder.name}: {len(chosen.selected)} cell(s) in {len(held)} environment(s) rebuilt from its locks")
    for name in found.mixed:
        progress(f"{name}: its records in {found.folder.name} name several locks (built apart); rebuilt from the one most of them name")
    result = session.run_placed(chosen, placement(args, chosen, where), args.results, args.resume, args.repeats or found.repeats, progress,
                                resume_command=lambda run_id: invocation.resume_command(args, run_id), seed=args.seed,
                                notes={reproduce.MANIFEST_KEY: found.note()})
    before = selected(records.load(found.folder), args.pattern, found.folder.name)
    compared = compare_runs(before, result.records, found.folder.name, result.folder.name, args.min_effect / 100)
    print(render_comparison(compared, "github"))
    machines = (records.manifest(folder).get("host", {}) for folder in (found.folder, result.folder))
    print("\n" + reproduce.render_differences(*machines))
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
        text = render_groups(dispatch.group_by(loaded, args.by), args.by, args.format, args.baseline, min_effect, args.wide)
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
            "reproduce": cmd_reproduce,
            "doctor": cmd_doctor, "data": cmd_data, "clean": cmd_clean, "publish": cmd_publish}
