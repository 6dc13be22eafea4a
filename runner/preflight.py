"""What a run will do, said before it does anything: the cells to run, those that will not (each reason once), the
environments to make, and how long it should take.

Printed first by every local `run`, and alone by `run --dry-run`. The estimate comes from earlier runs of the same
cells on this host where there are some, else from a rough model that says it is one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import median

from runner import records
from runner.cells import Cell, environments_of
from runner.executors import Executor, Unsuitable
from runner.workloads import MODELS

# The rough model for a cell never run on this host: a process's start, import and model build, then its images at
# the rates TensorFlow trained the seed's models at on this project's 2-core machine, a GPU taken as ten times that.
# It put the default matrix (three CPU cells, five repeats) at 20 min; it took 25 there, builds included.
PROCESS_SECONDS = 20.0
# Keras' applications at their default 224 px: TensorFlow's compute step at 64 px there (2026-12-08), scaled by the area.
CPU_IMAGES_PER_SECOND = {"dogs-vs-cats": 230.0, "mnist": 2500.0, "resnet50": 0.6, "mobilenet-v2": 7.0, "efficientnet-b0": 4.0}
GPU_SPEED_UP = 10.0
HISTORY_RUNS = 30  # the newest runs under --results read for the cells' earlier times
SHOWN = 4  # cell ids named per reason: the reason is the news, `list` has them all


@dataclass(frozen=True)
class Estimate:
    measured_seconds: float  # of the repeats of cells run on this host before, at their median time there
    measured_cells: int
    modelled_seconds: float  # of the repeats of cells never run here, by the rough model
    modelled_cells: int

    def words(self) -> str:
        parts = []
        if self.measured_cells:
            parts.append(f"{_duration(self.measured_seconds)} for {self.measured_cells} cell(s) from their earlier runs here")
        if self.modelled_cells:
            rates = ", ".join(f"{model} {rate:.0f}" for model, rate in CPU_IMAGES_PER_SECOND.items())
            parts.append(f"{_duration(self.modelled_seconds)} for {self.modelled_cells} cell(s) never run here (a rough model: "
                         f"{PROCESS_SECONDS:.0f} s a repeat, then images/s on a 2-core CPU of {rates}, on a GPU {GPU_SPEED_UP:g}x that)")
        return "; ".join(parts) or "nothing to run"


@dataclass(frozen=True)
class Outlook:
    to_run: tuple[Cell, ...]
    not_run: dict[str, tuple[str, ...]]  # reason -> the cell ids it holds back
    environments: tuple[tuple[str, str], ...]  # (environment, what making it will do)
    repeats: int
    estimate: Estimate

    def render(self) -> str:
        lines = [f"{len(self.to_run)} cell(s) to run, {self.repeats} repeat(s) each:"]
        lines += [f"  {cell.id}" for cell in self.to_run]
        for reason, cells in self.not_run.items():
            lines.append(f"{len(cells)} cell(s) not run: {reason}")
            lines.append(f"  {', '.join(cells[:SHOWN])}" + (f" and {len(cells) - SHOWN} more" if len(cells) > SHOWN else ""))
        if self.environments:
            lines.append("environments:")
            lines += [f"  {name}: {what}" for name, what in self.environments]
        lines.append(f"estimated: {self.estimate.words()}; building environments not included")
        return "\n".join(lines)


def outlook(cells: list[Cell], executor: Executor, repeats: int, results_dir: Path) -> Outlook:
    """What running these cells with this executor will do, found out without building or running anything."""
    no_gpu = executor.gpu_outlook()
    making = {spec: executor.outlook(spec) for spec in environments_of([cell for cell in cells if not cell.excluded])}
    not_run: dict[str, list[str]] = {}
    to_run = []
    for cell in cells:
        reason = (cell.excluded and f"excluded: {cell.excluded}" or (cell.kind == "gpu" and no_gpu and f"skipped: {no_gpu}")
                  or isinstance(making[cell.environment], Unsuitable) and f"excluded: {making[cell.environment].reason}")
        if reason:
            not_run.setdefault(reason, []).append(cell.id)
        else:
            to_run.append(cell)
    environments = tuple((spec.name, making[spec]) for spec in environments_of(to_run))
    return Outlook(tuple(to_run), {reason: tuple(ids) for reason, ids in not_run.items()}, environments, repeats,
                   estimate(to_run, repeats, history(results_dir)))


def estimate(cells: list[Cell], repeats: int, earlier: dict[str, list[float]]) -> Estimate:
    measured = [cell for cell in cells if earlier.get(cell.id)]
    modelled = [cell for cell in cells if not earlier.get(cell.id)]
    return Estimate(measured_seconds=sum(median(earlier[cell.id]) for cell in measured) * repeats, measured_cells=len(measured),
                    modelled_seconds=sum(map(modelled_seconds, modelled)) * repeats, modelled_cells=len(modelled))


def modelled_seconds(cell: Cell) -> float:
    workload = cell.workload
    rate = CPU_IMAGES_PER_SECOND[workload.model] * (GPU_SPEED_UP if cell.kind == "gpu" else 1)
    rate *= (MODELS[workload.model].image_size / workload.image_size) ** 2  # a convolution's work grows with the image's area
    return PROCESS_SECONDS + workload.epochs * (workload.train_images + workload.validation_images) / rate


def history(results_dir: Path, hostname: str | None = None) -> dict[str, list[float]]:
    """Seconds each measured repeat took, by cell, in the newest runs made on this host."""
    hostname = hostname or socket.gethostname()
    runs = sorted((folder for folder in results_dir.glob("*/") if (folder / records.MANIFEST_FILE).is_file()), reverse=True)
    seconds: dict[str, list[float]] = {}
    for folder in runs[:HISTORY_RUNS]:
        host = records.manifest(folder).get("host")
        if not isinstance(host, dict) or host.get("hostname") != hostname:
            continue
        for record in records.load(folder):
            if record.status == "ok":
                took = (datetime.fromisoformat(record.ended) - datetime.fromisoformat(record.started)).total_seconds()
                seconds.setdefault(record.cell_id, []).append(took)
    return seconds


def _duration(seconds: float) -> str:
    return f"about {seconds / 60:.0f} min" if seconds >= 90 else f"about {seconds:.0f} s"
