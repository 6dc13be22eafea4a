"""A static results site: every run under results/ as pages that open from disk, with no server and no network.

`python -m runner publish [--results DIR] [-o SITE]` writes, as asv's `publish` does:

    SITE/index.html                     the runs: date, host, GPU, driver, matrix file, cells ok / failed / skipped / excluded
    SITE/runs/RUN/index.html            a run's answer first (sentences, verdicts with their intervals, chart), a CUDA x cuDNN
                                        grid per workload, the cells not measured once per reason, the terminal's notes,
                                        then the report table of the measured cells
    SITE/runs/RUN/cells/CELL.html       a cell of a run: what it loaded (framework, CUDA, cuDNN, with paths), epochs, log tail
    SITE/cells/index.html, CELL.html    each cell across runs and hosts: a driver or cuDNN update that made it slower stands out
    SITE/static/                        the site's own stylesheet and script; nothing comes from a CDN
    SITE/.publish-state.json            what was rendered from what

Publishing is incremental: a run whose manifest and results have the same content hash as last time
(and is as much in progress as it was) is not rendered again; the index and the cross-run pages are,
from summaries kept in the state file, and a cross-run chart is redrawn only when its points changed.
A change of this code (or of --min-effect) renders everything again.

It is safe while a run is being written: the run is shown as in progress, its records are parsed from
one read of its file (a line still being written costs that line only), and a run's pages are made in
a folder beside the old ones and swapped in, so that a publish stopped at any moment leaves pages
that the next publish either keeps (they are complete and current) or renders again.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from runner import __version__
from runner.errors import UserError
from runner import report
from runner.site import charts, history, snapshot, views
from runner.stats import MIN_EFFECT, Comparison, compare_repeats

STATE_FILE = ".publish-state.json"
STATE_FORMAT = 1
LOCK_FILE = ".publish.lock"
RUN_CHART = "chart.svg"
PACKAGE = Path(__file__).resolve().parent
TEMPLATES, STATIC = PACKAGE / "templates", PACKAGE / "static"


@dataclass(frozen=True)
class Published:
    """What a publish did: which runs it rendered, which it left as they were, and which cross-run charts it drew."""

    site: Path
    rendered: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]  # runs no longer under the results folder, whose pages were removed
    charts_drawn: tuple[str, ...]  # cross-run charts, by cell id
    in_progress: tuple[str, ...]
    unreadable: tuple[str, ...]

    @property
    def index(self) -> Path:
        return self.site / "index.html"


def publish(results_dir: Path, site_dir: Path, min_effect: float = MIN_EFFECT, say: Callable[[str], None] = lambda line: None) -> Published:
    """Write (or bring up to date) the site for every run under results_dir."""
    folders = snapshot.run_folders(results_dir)
    _claim(site_dir)
    try:
        with _locked(site_dir):
            return _publish(results_dir, folders, site_dir, min_effect, say)
    except OSError as error:
        raise UserError(f"-o {site_dir}: cannot write the site: {error.strerror or error}{f' ({error.filename})' if error.filename else ''}")


def _claim(site: Path) -> None:
    """Refuse a folder publish did not make: it removes pages of runs that are gone, so it must own the folder."""
    if site.exists() and not site.is_dir():
        raise UserError(f"-o {site}: not a folder")
    if site.is_dir() and any(site.iterdir()) and not (site / STATE_FILE).is_file():
        raise UserError(f"-o {site}: a folder that publish did not make (it has no {STATE_FILE}): name a new or empty folder")
    site.mkdir(parents=True, exist_ok=True)


@contextmanager
def _locked(site: Path) -> Iterator[None]:
    """One publish at a time into a site; a second waits for the first to end."""
    with open(site / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fingerprint(min_effect: float) -> str:
    """What every page depends on besides the runs: this code, its templates, the analysis, report and statistics, and --min-effect."""
    from runner import analysis, records, stats, telemetry

    digest = hashlib.sha256(f"{STATE_FORMAT} {__version__} {min_effect!r}".encode())
    sources = sorted(path for path in PACKAGE.rglob("*") if path.is_file() and path.suffix in (".py", ".html", ".css", ".js"))
    for path in [*sources, *(Path(module.__file__) for module in (analysis, records, report, stats, telemetry))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _load_state(site: Path, current: str) -> dict:
    """The previous publish's state; an unreadable one, or one from other code, means rendering everything."""
    empty = {"format": STATE_FORMAT, "fingerprint": current, "runs": {}, "charts": {}, "comparisons": {}}
    try:
        state = json.loads((site / STATE_FILE).read_text())
    except (OSError, ValueError):
        return empty
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        return empty
    if state.get("fingerprint") != current or not all(isinstance(state.get(part), dict) for part in ("runs", "charts", "comparisons")):
        return empty
    return state


def _publish(results_dir: Path, folders: list[Path], site: Path, min_effect: float, say: Callable[[str], None]) -> Published:
    current = fingerprint(min_effect)
    previous = _load_state(site, current)
    pages = Pages(site)
    pages.static()
    state = {"format": STATE_FORMAT, "fingerprint": current, "runs": {}, "charts": {}, "comparisons": {}}
    rendered, unchanged, live, unreadable, runs = [], [], [], [], []
    for folder in folders:
        try:
            read = snapshot.read(folder)
        except OSError as error:  # removed or unreadable since the folder was listed
            say(f"warning: {folder}: left out: {error.strerror or error}")
            continue
        kept = previous["runs"].get(read.run_id)
        page = pages.run_folder(read.run_id) / "index.html"
        if (isinstance(kept, dict) and kept.get("key") == read.key and kept.get("live") == read.live and page.is_file()
                and isinstance(kept.get("summary"), dict) and isinstance(kept.get("points"), list)):
            entry = kept
            unchanged.append(read.run_id)
        else:
            view = views.run_view(read, min_effect)
            entry = {"key": read.key, "live": read.live, **pages.run(view)}
            rendered.append(read.run_id)
            say(f"rendered {read.run_id}: {len(view.results)} cell(s)" + (" (in progress)" if snapshot.is_running(read) else ""))
        state["runs"][read.run_id] = entry
        runs.append((entry["summary"], entry["points"]))
        if entry["summary"]["state"] == "in-progress":
            live.append(read.run_id)
        if entry["summary"]["problem"]:
            unreadable.append(read.run_id)
    removed = tuple(run_id for run_id in previous["runs"] if run_id not in state["runs"])
    pages.remove_stale_runs(state["runs"])

    compare = _cached_comparisons(previous["comparisons"], state["comparisons"], min_effect)
    steps = {cell_id: history.steps(found, compare) for cell_id, found in history.by_cell(runs).items()}
    drawn = pages.cells(steps, previous["charts"], state["charts"], current)
    pages.index(results_dir, runs, steps)
    _write_text(site / STATE_FILE, json.dumps(state, sort_keys=True) + "\n")
    return Published(site, tuple(rendered), tuple(unchanged), removed, tuple(drawn), tuple(live), tuple(unreadable))


def _cached_comparisons(cached: dict, used: dict, min_effect: float) -> history.Compare:
    """compare_repeats, remembered across publishes: its bootstrap is the slowest part of a cross-run page."""
    def compare(before: list[float], after: list[float]) -> Comparison:
        key = hashlib.sha256(json.dumps([before, after, min_effect]).encode()).hexdigest()
        known = cached.get(key)
        try:
            comparison = Comparison(**{**known, "repeats": tuple(known["repeats"])})
        except (TypeError, KeyError):
            comparison = compare_repeats(before, after, min_effect)
        used[key] = {**comparison.__dict__, "repeats": list(comparison.repeats)}
        return comparison
    return compare


def _write_text(path: Path, text: str) -> None:
    """Whole or not at all: a reader of the site never sees half a page."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8", errors="replace")  # a folder name need not be UTF-8
    os.replace(partial, path)


def _write_bytes(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


@functools.cache
def _templates():
    """The site's templates, compiled once a process (jinja2 keeps them in its Environment): they ship with the runner."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    # Autoescape on everything: cell ids, reasons and log tails come from results files anyone may have edited.
    templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    templates.globals.update(version=__version__, file_name=snapshot.file_name)
    return templates


class Pages:
    """The site folder and the templates that fill it."""

    def __init__(self, site: Path):
        self.site = site
        self.templates = _templates()

    def _render(self, path: Path, template: str, **context) -> None:
        _write_text(path, self.templates.get_template(template).render(**context))

    def static(self) -> None:
        folder = self.site / "static"
        folder.mkdir(exist_ok=True)
        for source in STATIC.iterdir():
            target = folder / source.name
            if not target.is_file() or target.read_bytes() != source.read_bytes():
                _write_bytes(target, source.read_bytes())

    def run_folder(self, run_id: str) -> Path:
        return self.site / "runs" / snapshot.file_name(run_id)

    def run(self, view: views.RunView) -> dict:
        """A run's pages, made beside the old ones and swapped in; its summary and cell points for the other pages."""
        run_id = view.snapshot.run_id
        final = self.run_folder(run_id)
        work = final.with_name(f".partial-{final.name}")
        shutil.rmtree(work, ignore_errors=True)
        (work / "cells").mkdir(parents=True)
        summary = views.summary(view, f"runs/{final.name}/")
        chart = None
        if view.analysis.measured:
            chart = charts.run_chart(view.analysis, work / RUN_CHART).name
        grouped = views.by_cell(view.records)
        parts = views.report_parts(view)
        rows = {row[parts["columns"][0]]: row for row in parts["rows"]}
        for result in view.results:
            self._render(work / "cells" / f"{snapshot.file_name(result.cell_id)}.html", "cell.html", root="../../../", run=summary,
                         cell=_cell_context(view, result, grouped[result.cell_id], rows.get(result.cell_id, {})))
        self._render(work / "index.html", "run.html", root="../../", run=summary, run_facts=views.manifest_facts(view), report=parts,
                     chart=chart, notes=view.notes, measured=[r.cell_id for r in view.results if r.timed],
                     grids=views.cudnn_grids(view))
        _write_bytes(work / "manifest.json", view.snapshot.manifest_bytes)
        _write_bytes(work / "results.jsonl", view.snapshot.results_bytes)
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(work, final)
        shutil.rmtree(old, ignore_errors=True)
        return {"summary": summary, "points": views.cell_points(view)}

    def remove_stale_runs(self, kept: dict) -> None:
        """Pages of runs no longer under the results folder, and what a stopped publish left half made."""
        names = {snapshot.file_name(run_id) for run_id in kept}
        folder = self.site / "runs"
        for entry in folder.iterdir() if folder.is_dir() else ():
            if entry.name in names:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def cells(self, steps: dict[str, list[history.Step]], drawn_before: dict, drawn: dict, current: str) -> list[str]:
        """Each cell across runs, and the page that lists them; charts whose points did not change are kept."""
        folder = self.site / "cells"
        folder.mkdir(exist_ok=True)
        made, charted = {"index.html"}, []
        listing = []
        for cell_id, found in sorted(steps.items()):
            name = snapshot.file_name(cell_id)
            lines = [(host, [(snapshot.when(s.run["started"]), s.point["median"], s.point["low"], s.point["high"], history.annotation(s))
                             for s in host_steps if snapshot.when(s.run["started"])])
                     for host, host_steps in history.series(found)]
            lines = [(host, points) for host, points in lines if points]
            chart = None
            if lines:
                chart = f"{name}.svg"
                key = hashlib.sha256(json.dumps([current, cell_id, lines], default=str).encode()).hexdigest()
                if drawn_before.get(chart) != key or not (folder / chart).is_file():
                    charts.history_chart(cell_id, lines, folder / chart)
                    charted.append(cell_id)
                drawn[chart] = key
                made.add(chart)
            newest_first = found[::-1]
            self._render(folder / f"{name}.html", "history.html", root="../", cell_id=cell_id, steps=newest_first, chart=chart,
                         hosts=len({s.run["host_key"] for s in found}), model=found[-1].point["model"])
            made.add(f"{name}.html")
            latest = next((s for s in newest_first if s.measured), newest_first[0])
            listing.append({"cell_id": cell_id, "page": f"{name}.html", "model": found[-1].point["model"], "runs": len(found),
                            "hosts": len({s.run["host_key"] for s in found}), "latest": latest,
                            "last_steps": _last_steps_per_host(found)})
        models = sorted({cell["model"] for cell in listing})
        self._render(folder / "index.html", "cells.html", root="../", models=models, cells=listing)
        for entry in folder.iterdir():
            if entry.name not in made and entry.is_file():
                entry.unlink()
        return charted

    def index(self, results_dir: Path, runs: list[tuple[dict, list[dict]]], steps: dict[str, list[history.Step]]) -> None:
        changed = history.changed_cells(steps)
        hosts: dict[str, dict] = {}
        for summary, _ in runs:
            host = hosts.setdefault(summary["host_key"], {"label": summary["host_label"], "runs": 0, "last": None})
            host["runs"] += 1
            host["last"] = summary
        self._render(self.site / "index.html", "index.html", root="", runs=[summary for summary, _ in runs][::-1], changed=changed,
                     hosts=list(hosts.values()), results_dir=str(results_dir),
                     published=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def _last_steps_per_host(found: list[history.Step]) -> list[history.Step]:
    """Per host, its latest run that was set against an earlier one."""
    last: dict[str, history.Step] = {}
    for step in found:
        if step.comparison:
            last[step.run["host_key"]] = step
    return list(last.values())


def _cell_context(view: views.RunView, result, group: list, row: dict) -> dict:
    """Everything a cell's page in a run shows."""
    measured = views.measured_record(group)
    flagged = views.outlier_epochs(result)
    m = measured.measurement
    return {
        "id": result.cell_id,
        "status": result.status,
        "reason": result.reason,
        "row": {column: value for column, value in list(row.items())[2:]},  # without the cell and its status, said above
        "axes": measured.axes,
        "ran_in": {"executor": measured.executor, **{key: value for key, value in measured.environment.items() if key != "executor"}},
        "loaded": views.loaded_facts(measured, view.host),
        "settings": m.settings if m else {},
        "data": m.data if m else {},
        "model": (m.model or {}) if m else {},
        "process": m.host if m else {},
        "outliers": [report.outlier_words(outlier) for outlier in result.outlier_epochs],
        "comparisons": [views.comparison_row(pair) for pair in view.analysis.pairs if result.cell_id in (pair.baseline.cell_id, pair.other.cell_id)],
        "repeats": [{
            "number": record.repeat + 1,
            "status": record.status,
            "reason": record.reason,
            "started": record.started,
            "ended": record.ended,
            "epochs": views.epoch_rows(record, flagged.get(record.repeat, set())),
            "failure": record.measurement.failure if record.measurement else None,
            "log_tail": record.log_tail,
            "cudnn": views.loaded_facts(record, view.host).get("cuDNN loaded", "-"),
        } for record in group],
    }
