"""Kernel time, read back: where a cell's training step went by kernel class, and a second verdict on
convolution time per step beside the step-time one.

A cuDNN upgrade changes the convolutions; the step time also holds the framework's own work, the input and
the rest, which pull a step-time ratio toward 1. Each repeat's profile (workload/kernel_time.py) gives its
convolution seconds per step; two cells profiled alike (the same profiler, on the same kind of device) are
compared on those as on step time: within a host, Holm-corrected over the report's convolution comparisons,
by the same verdict rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from runner import strata
from runner.records import Record
from runner.stats import MIN_EFFECT, Comparison, judge
from workload.contract import CONVOLUTION_CLASSES, KERNEL_CLASSES, KernelTime, convolution_share

# How the report names the classes, in KERNEL_CLASSES' order.
CLASS_WORDS = {"convolution_forward": "forward", "convolution_backward_data": "backward data",
               "convolution_backward_filter": "backward filter", "convolution_backward": "backward", "matmul": "matmul",
               "elementwise": "element-wise", "memory_copy": "copies", "other": "other"}
WHAT_IS_ADDED = {"gpu": "device kernels", "cpu": "operators on the host's threads"}


@dataclass(frozen=True)
class CellKernels:
    """A cell's profiled repeats: each class's median seconds per step, and each repeat's convolution seconds per step."""

    profiler: str
    device: str  # gpu or cpu, as contract.KernelTime
    steps: int  # profiled per repeat
    seconds_per_step: dict[str, float]  # each of KERNEL_CLASSES: its median over the repeats
    convolution_per_repeat: tuple[float, ...]
    hosts: tuple[str, ...]  # the host of each of convolution_per_repeat
    convolutions: dict[str, float]  # the last repeat's convolution kernels (or operators) by name, seconds per step

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds_per_step.values())

    @property
    def convolution_share(self) -> float | None:
        return convolution_share(self.seconds_per_step)

    def by_host(self) -> dict[str, list[float]]:
        return strata.by_host(self.convolution_per_repeat, self.hosts)


def of_cell(repeats: list[Record]) -> CellKernels | None:
    """The profiled repeats of one cell (ok records); None when none was profiled."""
    profiled = [(record, record.measurement.kernel_time) for record in repeats
                if record.measurement and isinstance(record.measurement.kernel_time, KernelTime)]
    if not profiled:
        return None
    last = profiled[-1][1]
    alike = [(record, kernels) for record, kernels in profiled if (kernels.profiler, kernels.device) == (last.profiler, last.device)]
    return CellKernels(
        profiler=last.profiler, device=last.device, steps=last.steps,
        seconds_per_step={name: median(kernels.seconds_per_step[name] for _, kernels in alike) for name in KERNEL_CLASSES},
        convolution_per_repeat=tuple(kernels.convolution_seconds for _, kernels in alike),
        hosts=tuple(strata.host_of(record) for record, _ in alike), convolutions=dict(last.convolutions),
    )


def convolution_verdicts(pairs: dict[tuple[str, str], tuple], min_effect: float = MIN_EFFECT) -> dict[tuple[str, str], Comparison]:
    """Per (baseline, other) cell ids whose cells were both profiled alike, the verdict on convolution seconds per step:
    one family of its own, beside the step-time comparisons'. A CPU's operators and a GPU's kernels are not compared."""
    alike = {key: (baseline.kernels, other.kernels) for key, (baseline, other) in pairs.items() if _alike(baseline.kernels, other.kernels)}
    evidence = [strata.weigh_by_host(baseline.by_host(), other.by_host()) for baseline, other in alike.values()]
    return dict(zip(alike, judge(evidence, min_effect)))


def _alike(a: CellKernels | None, b: CellKernels | None) -> bool:
    return bool(a and b) and (a.profiler, a.device) == (b.profiler, b.device)


def line(cell_id: str, kernels: CellKernels) -> str:
    """gpu-...: convolutions 63% (forward 20%, backward data 18%, backward filter 25%), matmul 5%, ...; 41.2 ms per step (...)."""
    total = kernels.total_seconds
    share = lambda name: f"{CLASS_WORDS[name]} {kernels.seconds_per_step[name] / total:.0%}"  # noqa: E731
    convolution = ", ".join(share(name) for name in CONVOLUTION_CLASSES if kernels.seconds_per_step[name])
    rest = ", ".join(share(name) for name in KERNEL_CLASSES[len(CONVOLUTION_CLASSES):] if kernels.seconds_per_step[name])
    repeats = len(kernels.convolution_per_repeat)
    return (f"{cell_id}: convolutions {kernels.convolution_share:.0%} ({convolution}), {rest}; {total * 1000:.1f} ms per step of "
            f"{WHAT_IS_ADDED[kernels.device]} ({kernels.profiler}, {kernels.steps} steps, median of {repeats} repeat{'s' * (repeats != 1)})"
            if total else f"{cell_id}: the profiler timed nothing")


def numbers(kernels: CellKernels) -> dict:
    """A cell's kernel time under stable JSON keys (docs/results.md)."""
    return {"profiler": kernels.profiler, "device": kernels.device, "steps": kernels.steps,
            "seconds_per_step": kernels.seconds_per_step, "convolution_seconds_per_repeat": list(kernels.convolution_per_repeat),
            "convolution_share": kernels.convolution_share, "convolutions": kernels.convolutions}
