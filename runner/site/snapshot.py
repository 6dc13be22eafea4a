"""A run folder read at one moment, for the site: its files' bytes, whether a live runner holds it, and its records.

A run folder is read once into a Snapshot, and its records are parsed from those very bytes, so that
what is shown and what the content hash says are the same moment of a run still being written.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from runner import records
from runner.errors import UserError
from runner.invocation import command
from runner.records import DamagedRecord, Record

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def file_name(text: str) -> str:
    """A name for a file or folder made from a run or cell id: the id itself when it is a plain name, else a slug and a hash.

    Ids come from results files, which anyone may have edited: one with a slash, "..", a space or markup
    must neither leave the site folder nor collide with another.
    """
    if _SAFE_NAME.fullmatch(text):
        return text
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:60] or "id"
    return f"{slug}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


@dataclass(frozen=True)
class Snapshot:
    """A run folder as read at one moment."""

    run_id: str
    folder: Path
    manifest_bytes: bytes
    results_bytes: bytes
    live: bool  # a runner holds the run's lock now (records.in_progress)

    @property
    def key(self) -> str:
        """The content hash of manifest and results: what decides whether the run's pages are rendered again."""
        digest = hashlib.sha256()
        for part in (self.manifest_bytes, self.results_bytes):
            digest.update(len(part).to_bytes(8, "big") + part)
        return digest.hexdigest()

    @cached_property
    def parsed_manifest(self):
        try:
            return json.loads(self.manifest_bytes)
        except ValueError:
            return {}

    @property
    def manifest_problem(self) -> str | None:
        return records.manifest_problem(self.parsed_manifest)

    @property
    def manifest(self) -> dict:
        """The manifest; {} when it is missing or is not one (parse notes why)."""
        return {} if self.manifest_problem else self.parsed_manifest


def read(folder: Path) -> Snapshot:
    live = records.in_progress(folder)
    try:
        manifest = (folder / records.MANIFEST_FILE).read_bytes()
    except OSError:
        manifest = b""
    return Snapshot(folder.name, folder, manifest, (folder / records.RESULTS_FILE).read_bytes(), live)


def run_folders(results_dir: Path) -> list[Path]:
    """Every run under results_dir, oldest first (run ids are UTC start times, -2, -3... for the same second)."""
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such folder: run `{command('run')}` first, or name the results with --results DIR")
    folders = [path for path in results_dir.iterdir() if path.is_dir() and (path / records.RESULTS_FILE).is_file()]
    return sorted(folders, key=start_order)


def start_order(folder: Path) -> tuple[str, int, str]:
    match = re.fullmatch(r"([0-9]{8}-[0-9]{6})(?:-([0-9]+))?", folder.name)
    return (match.group(1), int(match.group(2) or 1), "") if match else ("", 0, folder.name)


def parse(snapshot: Snapshot) -> tuple[list[Record], list[str]]:
    """The run's records from the snapshot's bytes, and a note for each line left out.

    As records.load: a damaged line costs that line only. The last line of a run still being
    written may be a record half on disk; that is said as what it is, not as damage.
    """
    path = snapshot.folder / records.RESULTS_FILE
    written_by = str(snapshot.manifest.get("runner_version", "of that time"))
    lines = list(io.TextIOWrapper(io.BytesIO(snapshot.results_bytes), encoding="utf-8", errors="replace"))
    loaded, notes = [], []
    if snapshot.manifest_problem:
        notes.append(f"{records.MANIFEST_FILE}: not a manifest ({snapshot.manifest_problem}); the run's facts are left out")
    for number, line, parsed in records.parse_lines(lines, path, written_by):
        if not isinstance(parsed, DamagedRecord):
            loaded.append(parsed)
        elif number == len(lines) and not line.endswith("\n") and is_running(snapshot):
            notes.append(f"line {number}: a record not complete yet (still being written, or cut short); publish again later")
        else:
            notes.append(f"line {number}: {parsed}; the line is left out")
    return records.in_matrix_order(loaded, snapshot.manifest), notes


def is_running(snapshot: Snapshot) -> bool:
    """A runner holds the run now. A manifest that says `running` without one is a run whose runner stopped without a word."""
    return snapshot.live


def run_state(snapshot: Snapshot) -> tuple[str, str]:
    """(state, what to say about it): finished, interrupted, in-progress, stopped, or what the manifest says."""
    state = snapshot.manifest.get("state")
    if snapshot.live:
        return "in-progress", "A runner is writing this run now: these pages show the records written so far. Publish again to update them."
    if state == "running":
        return "stopped", ("The manifest says the run is going, but no runner holds it: its runner was stopped without a word "
                           "(kill -9, a power cut), or it runs on another machine sharing this folder. "
                           "`python -m runner run --resume RUN` measures the cells it lacks.")
    if state == "interrupted":
        return "interrupted", "The run was interrupted: `python -m runner run --resume RUN` measures the cells it lacks."
    if state == "finished":
        return "finished", ""
    return "unknown", "The manifest does not say how the run ended."


def state_label(state: str) -> str:
    return {"in-progress": "in progress"}.get(state, state)


def when(text) -> datetime | None:
    """A manifest or record time (ISO 8601) as a naive UTC datetime, or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment.astimezone(timezone.utc) if moment.tzinfo else moment).replace(tzinfo=None)


def started(snapshot: Snapshot) -> datetime | None:
    """The run's start: its manifest's, else the time its id names."""
    moment = when(snapshot.manifest.get("started"))
    if moment is None:
        try:
            moment = datetime.strptime(snapshot.run_id[:15], "%Y%m%d-%H%M%S")
        except ValueError:
            return None
    return moment


def show_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
