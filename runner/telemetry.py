"""What the records' telemetry says about a cell: peak memory, GPU energy, and warnings in words.

Pure: it reads what workload/telemetry_sampler.py put in each measurement (per epoch, `epoch.telemetry`;
per run, `measurement.telemetry`: the contract's EpochTelemetry and RunTelemetry) and says what a reader of the timings must know: that a GPU was
throttled or its clocks moved during timed epochs, or that nothing held them. Figures the workload
could not have are strings ("not available: ..."), and are never counted as numbers here.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from runner.records import Record
from workload.contract import THROTTLING, Epoch, GpuEpoch, GpuFacts, RunTelemetry

CLOCK_TOLERANCE = 0.02  # clocks this far below the highest seen (GPU boost moves in ~15 MHz steps) have moved
LOCK_NOTE = "cudnn-matrix reads clocks and never sets them; `sudo nvidia-smi -rgc` unlocks clocks locked with -lgc."


@dataclass(frozen=True)
class CellTelemetry:
    """A cell's telemetry over its measured repeats."""

    peak_rss_bytes: int | None  # the highest resident memory of the workload process, any epoch, any repeat
    gpu_memory_bytes: int | None  # the most memory in use on one of its GPUs (all processes'), any epoch
    energy_per_repeat: tuple[float, ...]  # each repeat's median timed-epoch GPU energy, joules, its GPUs together
    energy_estimated: bool  # some energy came from integrating power samples, not the GPU's energy counter
    images_per_joule: float | None  # training images per joule of GPU energy, median over timed epochs
    warnings: tuple[tuple[str, str], ...]  # (what: the cell, or "cell (GPU 1)"; what is wrong with it, in words)
    doubtful: bool  # its timed epochs ran throttled or on moving clocks: its timing is not comparable

    @property
    def energy_joules(self) -> float | None:
        return median(self.energy_per_repeat) if self.energy_per_repeat else None


def summarize(cell_id: str, kind: str, repeats: list[Record]) -> CellTelemetry | None:
    """The telemetry of a cell's ok records (one per repeat), or None when none of them carries any."""
    repeats = [record for record in repeats if record.measurement and record.measurement.telemetry is not None]
    if not repeats:
        return None
    epochs = [epoch for record in repeats for epoch in record.measurement.epochs]
    rss = [number for epoch in epochs if epoch.telemetry
           for number in (_number(epoch.telemetry.process_peak_rss_bytes), _number(epoch.telemetry.rss_bytes_max)) if number is not None]
    gpu_memory = [number for epoch in epochs for gpu in _gpus(epoch) if (number := _number(gpu.memory_used_bytes_max)) is not None]
    energies, per_joule, estimated = [], [], False
    for record in repeats:
        mine = []
        for epoch in _timed(record):
            joules = _epoch_energy(epoch)
            if joules is not None and joules > 0:
                mine.append(joules)
                per_joule.append(epoch.images_per_second * epoch.train_seconds / joules)
                estimated |= any(gpu.energy_source == "power samples" for gpu in _gpus(epoch))
        if mine:
            energies.append(median(mine))
    said, doubtful = warnings(cell_id, kind, repeats)
    return CellTelemetry(
        peak_rss_bytes=max(rss) if rss else None, gpu_memory_bytes=max(gpu_memory) if gpu_memory else None,
        energy_per_repeat=tuple(energies), energy_estimated=estimated,
        images_per_joule=median(per_joule) if per_joule else None,
        warnings=tuple(said), doubtful=doubtful,
    )


def warnings(cell_id: str, kind: str, repeats: list[Record]) -> tuple[list[tuple[str, str]], bool]:
    """What makes a cell's timing doubtful, in words, and whether its timed epochs ran on a throttled GPU or moving clocks.

    Said: throttling or moving clocks in timed epochs, clocks that held but that nothing locked, and
    a GPU cell without GPU figures.
    """
    said, doubtful = [], False
    unmeasured = sorted({_why_no_gpus(record) for record in repeats if _why_no_gpus(record)})
    if kind == "gpu" and unmeasured:
        said.append((cell_id, f"no GPU telemetry ({'; '.join(unmeasured)}): its clocks and throttling were not checked."))
    phrases, throttled = _throttling(repeats)
    if phrases:
        said.append((cell_id, f"{'; '.join(phrases)}: its timing is not comparable."))
    for index, label in _gpu_labels(repeats):
        moved, lines = _clocks(repeats, index, throttled)
        said += [(cell_id + label, line) for line in lines]
        doubtful |= moved
    return said, doubtful or bool(phrases)


def _throttling(repeats: list[Record]) -> tuple[list[str], set[tuple[int, int, int]]]:
    """"thermal throttling (hw_thermal_slowdown) in epochs 3-5", one phrase per kind seen in timed epochs; and where:
    (repeat, epoch number, GPU index) of every throttled epoch."""
    seen: dict[str, tuple[set[str], dict[int, set[int]]]] = {}
    throttled = set()
    for record in repeats:
        for number, epoch in _timed_numbered(record):
            for gpu in _gpus(epoch):
                for reason in gpu.clock_event_reasons if isinstance(gpu.clock_event_reasons, list) else ():
                    if reason in THROTTLING:
                        names, places = seen.setdefault(THROTTLING[reason], (set(), {}))
                        names.add(reason)
                        places.setdefault(record.repeat, set()).add(number)
                        throttled.add((record.repeat, number, gpu.index))
    phrases = [f"{words} ({', '.join(sorted(names))}) in {_where(places, len(repeats))}" for words, (names, places) in seen.items()]
    return phrases, throttled


def _clocks(repeats: list[Record], index: int, throttled: set[tuple[int, int, int]]) -> tuple[bool, list[str]]:
    """Whether one GPU's clocks moved during timed epochs, or held without anything holding them; with how to lock them.

    Throttled epochs are left to the throttling warning: locking clocks does not stop a GPU from throttling.
    """
    lows: dict[str, list[tuple[int, int, float]]] = {"SM": [], "memory": []}
    highs: dict[str, list[float]] = {"SM": [], "memory": []}
    for record in repeats:
        for number, epoch in _timed_numbered(record):
            for gpu in _gpus(epoch):
                if gpu.index != index or (record.repeat, number, index) in throttled:
                    continue
                for domain, low, high in (("SM", _number(gpu.sm_clock_mhz_min), _number(gpu.sm_clock_mhz_max)),
                                          ("memory", _number(gpu.memory_clock_mhz_min), _number(gpu.memory_clock_mhz_max))):
                    if low is not None and high is not None:
                        lows[domain].append((record.repeat, number, low))
                        highs[domain].append(high)
    if not highs["SM"]:
        return False, []
    moved = []
    for domain in ("SM", "memory"):
        if not highs[domain]:
            continue
        top = max(highs[domain])
        floor = min(low for _, _, low in lows[domain])
        if floor < top * (1 - CLOCK_TOLERANCE):
            places: dict[int, set[int]] = {}
            for repeat, number, low in lows[domain]:
                if low < top * (1 - CLOCK_TOLERANCE):
                    places.setdefault(repeat, set()).add(number)
            moved.append(f"{domain} clock moved between {floor:.0f} and {top:.0f} MHz in timed epochs "
                         f"(more than {CLOCK_TOLERANCE:.0%} below its highest in {_where(places, len(repeats))})")
    sm_floor = min(low for _, _, low in lows["SM"])
    advice = (f"lock them for comparable timings, e.g. `sudo nvidia-smi -lgc {sm_floor:.0f},{sm_floor:.0f}` "
              "(the lowest SM clock seen while busy)")
    if moved:
        return True, [f"{'; '.join(moved)}: clocks were not locked; {advice}."]
    if not _locked(repeats, index):
        return False, [f"SM clock held at {max(highs['SM']):.0f} MHz, but NVML shows no locked clocks, so a warmer room or another job "
                       f"could move them; {advice}."]
    return False, []


def _locked(repeats: list[Record], index: int) -> bool:
    """NVML's signs of locked clocks: application clocks set away from their default, or clocks held by that setting."""
    for record in repeats:
        facts = _gpu_facts(record).get(index)
        if facts:
            target, default = _number(facts.applications_sm_clock_mhz), _number(facts.default_applications_sm_clock_mhz)
            if target is not None and default is not None and target != default:
                return True
        for _, epoch in _timed_numbered(record):
            for gpu in _gpus(epoch):
                if gpu.index == index and isinstance(gpu.clock_event_reasons, list) and "applications_clocks_setting" in gpu.clock_event_reasons:
                    return True
    return False


def _gpu_labels(repeats: list[Record]) -> list[tuple[int, str]]:
    """The GPU indices sampled, each with how a line names it: nothing for a cell's only GPU, " (GPU 1)" among several."""
    indices = sorted({gpu.index for record in repeats for epoch in record.measurement.epochs for gpu in _gpus(epoch)})
    return [(index, f" (GPU {index})" if len(indices) > 1 else "") for index in indices]


def _where(places: dict[int, set[int]], repeats: int) -> str:
    """ "epochs 3-5"; with several repeats "epochs 3-5 of repeats 1-2, epoch 4 of repeat 3"."""
    if repeats == 1:
        return ", ".join(_epochs(sorted(numbers)) for numbers in places.values())
    alike: dict[tuple[int, ...], list[int]] = {}
    for repeat, numbers in sorted(places.items()):
        alike.setdefault(tuple(sorted(numbers)), []).append(repeat + 1)
    return ", ".join(f"{_epochs(list(numbers))} of {_numbered('repeat', which)}" for numbers, which in alike.items())


def _epochs(numbers: list[int]) -> str:
    return _numbered("epoch", numbers)


def _numbered(noun: str, numbers: list[int]) -> str:
    """("epoch", [3, 4, 5]) -> "epochs 3-5"; [4] -> "epoch 4"; [1, 3, 4] -> "epochs 1, 3-4"."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    text = ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}" for run in runs)
    return f"{noun} {text}" if len(numbers) == 1 else f"{noun}s {text}"


def _why_no_gpus(record: Record) -> str:
    """Why a record has no GPU figures ("not available: ...", "off: ..."), or "" when it has them."""
    telemetry = record.measurement.telemetry
    if isinstance(telemetry, str):
        return telemetry
    return telemetry.gpus if isinstance(telemetry, RunTelemetry) and isinstance(telemetry.gpus, str) else ""


def _gpu_facts(record: Record) -> dict[int, GpuFacts]:
    telemetry = record.measurement.telemetry
    gpus = telemetry.gpus if isinstance(telemetry, RunTelemetry) else None
    return {gpu.index: gpu for gpu in gpus} if isinstance(gpus, list) else {}


def _epoch_energy(epoch: Epoch) -> float | None:
    """The epoch's GPU energy in joules, its GPUs together; None unless every GPU has a number."""
    gpus = _gpus(epoch)
    joules = [_number(gpu.energy_joules) for gpu in gpus]
    return sum(joules) if gpus and None not in joules else None


def _gpus(epoch: Epoch) -> list[GpuEpoch]:
    """The epoch's GPU figures: none without telemetry, or where it says why there are none."""
    gpus = epoch.telemetry.gpus if epoch.telemetry else None
    return gpus if isinstance(gpus, list) else []


def _timed(record: Record) -> list[Epoch]:
    return record.measurement.epochs[record.measurement.warmup_epochs:]


def _timed_numbered(record: Record) -> list[tuple[int, Epoch]]:
    """Timed epochs with their numbers as the epoch log gives them (the first epoch is 1)."""
    first = record.measurement.warmup_epochs
    return [(first + offset + 1, epoch) for offset, epoch in enumerate(_timed(record))]


def _number(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def size(count: float) -> str:
    """Bytes for a table: "812 MiB", "1.23 GiB"."""
    return f"{count / 2**30:.2f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def joules(count: float) -> str:
    """Joules for a table: "412 J", "12.3 kJ"."""
    return f"{count / 1000:.1f} kJ" if count >= 10_000 else f"{count:.0f} J" if count >= 10 else f"{count:.2f} J"
