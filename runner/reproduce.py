"""`reproduce RUN`: RUN's cells again, in environments rebuilt from its locks, then the two runs side by side.

The cells, their workload settings and their repeats come from RUN itself (its copy of the matrix,
its records), never from today's matrix file; each environment is pinned to the lock its records
name (runner/locks.py), checked against the package index before anything is built. The new run's
manifest says what it reproduces, so that a job on a Slurm node (run-cell) pins its environment too.
What the comparison cannot hold equal, the two machines, is said beside it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from runner import locks, records
from runner.errors import UserError
from runner.locks import Lock
from runner.progress import Progress
from runner.session import Plan, plan as plan_matrix

MANIFEST_KEY = "reproduces"  # in the new run's manifest: {"run": id, "run_folder": path, "locks": {environment: digest}}


@dataclasses.dataclass(frozen=True)
class Source:
    """What a run measured, as `reproduce` takes it: which cells, how often, and each environment's lock."""

    folder: Path
    cells: tuple[str, ...]  # the cells with a good record
    repeats: int  # the most good records of any one cell
    locks: tuple[tuple[str, str], ...]  # environment name -> the digest of the lock most of its good records name
    mixed: tuple[str, ...] = ()  # environments whose records name several locks (built apart, say on several SSH hosts)

    def note(self) -> dict:
        """What the new run's manifest keeps of it (MANIFEST_KEY)."""
        return {"run": self.folder.name, "run_folder": str(self.folder.resolve()), "locks": dict(self.locks)}


def source(run_folder: Path) -> Source:
    """What RUN measured and in which locked environments; one line naming what is missing if it cannot be reproduced."""
    good = [record for record in records.load(run_folder) if record.status == "ok"]
    if not good:
        raise UserError(f"{run_folder}: the run has no good record: nothing to reproduce")
    digests: dict[str, Counter] = {}
    for record in good:
        digests.setdefault(record.environment.get("name", ""), Counter())[record.environment.get("lock")] += 1
    unlocked = sorted(name for name, counted in digests.items() if counted.most_common(1)[0][0] is None)
    if unlocked:
        raise UserError(f"{run_folder}: no lock recorded for environment {unlocked[0]}: the run installed nothing (--executor local) "
                        "or is older than locks, so what it ran in cannot be rebuilt")
    counts = Counter(record.cell_id for record in good)
    return Source(run_folder, tuple(counts), max(counts.values()),
                  tuple(sorted((name, counted.most_common(1)[0][0]) for name, counted in digests.items())),
                  tuple(sorted(name for name, counted in digests.items() if len(counted) > 1)))


def plan(found: Source, pattern: str | None = None, offline_base: bool = False, gpus: str | None = None) -> tuple[Plan, list[Lock]]:
    """The run's own matrix, its measured cells (those PATTERN selects), each environment pinned to its lock."""
    chosen = plan_matrix(found.folder / records.MATRIX_COPY, pattern, offline_base=offline_base, gpus=gpus)
    selected = [cell for cell in chosen.selected if cell.id in found.cells]
    if not selected:
        raise UserError(f"{found.folder}: -k {pattern} selects none of the {len(found.cells)} cells the run measured")
    return pinned(dataclasses.replace(chosen, selected=selected), found.folder, dict(found.locks))


def pinned(chosen: Plan, locks_from: Path, digests: dict[str, str]) -> tuple[Plan, list[Lock]]:
    """The plan with each environment that has a lock asking for exactly what the lock holds."""
    held = {name: locks.read(locks_from, name, digest) for name, digest in digests.items()}

    def pin(cell):
        lock = held.get(cell.environment.name)
        return dataclasses.replace(cell, environment=locks.locked_spec(cell.environment, lock)) if lock else cell

    return Plan(chosen.matrix, list(map(pin, chosen.cells)), list(map(pin, chosen.selected))), list(held.values())


def pinned_as_noted(chosen: Plan, run_folder: Path) -> Plan:
    """A dispatched job's plan, pinned as its run's manifest says when the run reproduces another; else as it is."""
    noted = records.manifest(run_folder).get(MANIFEST_KEY)
    if not noted:
        return chosen
    return pinned(chosen, Path(noted["run_folder"]), noted["locks"])[0]


def check_available(held: list[Lock], found: Source, progress: Progress) -> None:
    """Every locked package still on the index, or one line naming those that are not, before any build.

    An index that cannot be asked (a mirror set in pip.conf, not $PIP_INDEX_URL, behind no route to PyPI)
    is said and not held against the run: a pin that is gone then fails its environment's build, with pip's words.
    """
    try:
        missing = locks.unavailable(held)
    except locks.IndexUnreachable as error:
        progress(f"warning: {error}; a locked package no longer there fails its environment's build instead")
        return
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"{found.folder / locks.LOCKS_FOLDER}: {len(missing)} locked package(s) that {locks.package_index()} "
                        f"no longer has: {shown}")


def render_differences(before: dict, after: dict) -> str:
    """What differs between the two runs' machines and placements (their manifests' host facts): what a comparison cannot hold equal."""
    keys = sorted(set(before) | set(after))
    differing = [f"- {key}: {_said(before.get(key))} -> {_said(after.get(key))}" for key in keys if before.get(key) != after.get(key)]
    if not differing:
        return "The two runs' machines: no difference in their facts (CPU, memory, GPUs and driver, OS, executor, commit)."
    return "\n".join(["The two runs' machines differ in:", *differing])


def _said(value) -> str:
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):  # GPUs: name and driver
        return "; ".join(", ".join(str(v) for v in item.values()) for item in value) or "none"
    return "none" if value in (None, "", []) else str(value)
