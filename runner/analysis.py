"""Stage 6: records -> what a report says, as typed data. Pure; no words for a reader here but the seed's sentences.

Per cell, its repeats pooled (CellResult): the first epoch apart, the median over repeats of each repeat's
median timed epoch, images/s, outlier epochs. Per workload, a baseline (the named cell, else its first measured
CPU cell) and the pairs set against each other (Pair: each cell against its baseline, the fastest GPU against a
CPU cell alike but for the device, each cuDNN against the previous one) with ratio, interval, p-values and
verdict, each within the hosts that ran both cells (runner/strata.py), all of a report's pairs judged as one family (runner/stats.py);
the notes a reader must have beside them (Notes). runner/run_comparison.py sets the same cells of two runs side by side.
The text report and the JSON and CSV exports (runner/report.py), the chart (runner/site/charts.py) and the
site read this alone; a measurement's insides are read in "Reading a record's measurement", at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from runner import kernels, strata, telemetry
from runner.kernels import CellKernels
from runner.records import Record
from runner.stats import MIN_EFFECT, Comparison, Summary, judge, summarize
from runner.telemetry import CellTelemetry
from workload.contract import FRAMEWORKS, Epoch as MeasuredEpoch

INPUT_BOUND = 0.10  # a cell waiting for input more than this share of each step times its pipeline, not its device


@dataclass(frozen=True)
class OutlierEpoch:
    """An epoch more than OUTLIER_MADS from its cell's median epoch, numbered as the epoch log numbers it."""

    cell_id: str
    repeat: int  # 1 is the first repeat
    epoch: int  # 1 is the first epoch, warm-up included
    seconds: float


@dataclass(frozen=True)
class CellResult:
    """Everything a report says about one cell, its repeats together."""

    cell_id: str
    status: str  # "ok", "ok (1 of 3 failed)", or the last record's status
    reason: str  # why it is not (wholly) ok; "" when it is
    workload: str
    model: str  # what the workload trains; workloads of one model differ in their input pipeline or settings
    kind: str
    gpu_type: str  # "" unless the matrix names GPU models (gpu.gpu_type)
    cuda: str
    cudnn_named: str
    cudnn_loaded: str
    framework: str
    framework_version: str  # as the workload imported it; "" without a measurement
    keras_version: str
    data_kind: str
    first_epochs: tuple[float, ...]
    timed: Summary | None
    outlier_epochs: tuple[OutlierEpoch, ...]
    images_per_second: float | None
    repeats: int
    input_wait: float | None = None  # median share of a timed step spent waiting for the next batch, where recorded
    telemetry: CellTelemetry | None = None  # what the machine did (runner/telemetry.py); None for records without it
    hosts: tuple[str, ...] = ()  # the host that measured each of timed.per_repeat (runner/strata.py)
    kernels: CellKernels | None = None  # where the step went by kernel class (runner/kernels.py); None: not profiled
    compiled_while_timed: int = 0  # repeats in whose timed epochs XLA compiled (jax): a compile timed as training

    def by_host(self) -> dict[str, list[float]]:
        """Its numbers per repeat, grouped by the host that measured them: what a comparison is made within."""
        return strata.by_host(self.timed.per_repeat if self.timed else (), self.hosts)

    @property
    def versions(self) -> str:
        """The framework's and Keras' versions as the workload imported them: "tf 2.21.0, Keras 3.15.1"."""
        framework = FRAMEWORKS[self.framework].short if self.framework in FRAMEWORKS else self.framework
        return f"{framework} {self.framework_version}, Keras {self.keras_version}" if self.framework_version else ""

    @property
    def doubtful(self) -> bool:
        """Its timed epochs ran throttled or on moving clocks: its timing is not comparable."""
        return bool(self.telemetry and self.telemetry.doubtful)


@dataclass(frozen=True)
class Pair:
    """Two measured cells set against each other, and what the statistics say of `other` against `baseline`."""

    question: str  # "speed-up" (a cell against its baseline), "GPU vs CPU" or "cuDNN step"
    baseline: CellResult
    other: CellResult
    comparison: Comparison
    convolution: Comparison | None = None  # on convolution seconds per step, where both cells were profiled alike

    @property
    def doubtful(self) -> tuple[str, ...]:
        """The cells of the pair that ran throttled or on moving clocks: a verdict not to act on."""
        return tuple(result.cell_id for result in (self.baseline, self.other) if result.doubtful)


@dataclass(frozen=True)
class NotMeasured:  # cells without (all their) numbers that share a status and a reason
    status: str
    reason: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class TelemetryWarning:  # one of runner/telemetry.py's
    subject: str  # the cell, or "cell (GPU 1)"
    words: str  # what is wrong with its timing, and what to do


@dataclass(frozen=True)
class Notes:
    """What a reader must know beside the numbers."""

    outlier_epochs: tuple[OutlierEpoch, ...]
    input_bound: tuple[CellResult, ...]  # cells waiting for input more than INPUT_BOUND of each step
    compiled_while_timed: tuple[CellResult, ...]  # cells whose timed epochs included an XLA compile
    telemetry_warnings: tuple[TelemetryWarning, ...]
    not_measured: tuple[NotMeasured, ...]
    synthetic: tuple[str, ...]  # workloads that trained on generated data
    unisolated: tuple[str, ...]  # executors that ran cells without isolation
    energy_estimated: bool  # some cell's GPU energy is integrated from power samples


@dataclass(frozen=True)
class Analysis:
    """A run's records, analysed."""

    results: tuple[CellResult, ...]
    baselines: dict[str, CellResult]  # per workload
    pairs: tuple[Pair, ...]
    sentences: tuple[str, ...]
    notes: Notes
    min_effect: float

    @property
    def measured(self) -> tuple[CellResult, ...]:  # the cells with timed repeats
        return tuple(result for result in self.results if result.timed)

    def speedup(self, cell_id: str) -> Pair | None:
        """The cell against its workload's baseline; None for the baseline itself and cells without one."""
        return next((pair for pair in self.pairs if pair.question == "speed-up" and pair.other.cell_id == cell_id), None)

    def is_baseline(self, result: CellResult) -> bool:
        return self.baselines.get(result.workload) is result

    def baseline_of(self, result: CellResult) -> CellResult | None:
        return self.baselines.get(result.workload)

    @property
    def family(self) -> int:
        """How many distinct comparisons were judged together (Holm's correction is over these)."""
        return self.pairs[0].comparison.family if self.pairs else 0

    @property
    def convolution_family(self) -> int:
        """How many comparisons of convolution time per step were judged together (a family of their own)."""
        return next((pair.convolution.family for pair in self.pairs if pair.convolution), 0)


def analyze(records: list[Record], baseline: str | None = None, min_effect: float = MIN_EFFECT) -> Analysis:
    results = cell_results(records)
    chosen = baselines(results, baseline)
    found = pairs(results, chosen, min_effect)
    return Analysis(tuple(results), chosen, tuple(found), tuple(sentences(results, found)), notes(results, records), min_effect)


def cell_results(records: list[Record]) -> list[CellResult]:
    by_cell: dict[str, list[Record]] = {}
    for record in records:
        by_cell.setdefault(record.cell_id, []).append(record)
    return [_pool(group) for group in by_cell.values()]


def _pool(group: list[Record]) -> CellResult:
    ok = [record for record in group if record.status == "ok"]
    failed = [record for record in group if record.status == "failed"]
    last = group[-1]
    # Measured cells are ok, with any failed repeat counted; skipped/excluded records left by a run
    # that --resume completed later do not count against them.
    status = (f"ok ({len(failed)} of {len(ok) + len(failed)} failed)" if failed else "ok") if ok else last.status
    measured = ok[-1] if ok else last
    # Each ok record is one repeat, a --resume's included: one fresh process, however it is numbered.
    repeats = [record for record in ok if timed_seconds(record)]
    timed = summarize([timed_seconds(record) for record in repeats]) if repeats else None
    framework = last.axes["framework"]
    framework_version, keras_version = versions_loaded(measured, framework)
    return CellResult(
        cell_id=last.cell_id, status=status, reason=(failed or [last])[-1].reason if status != "ok" else "",
        workload=last.workload, model=model_trained(measured) or last.workload, kind=last.kind,
        gpu_type=last.axes.get("gpu_type", ""), cuda=last.axes.get("cuda", ""), cudnn_named=last.axes.get("cudnn", ""),
        cudnn_loaded=cudnn_loaded(measured), framework=framework, framework_version=framework_version, keras_version=keras_version,
        data_kind=data_kind(measured),
        first_epochs=tuple(seconds for record in ok for seconds in warmup_seconds(record)),
        timed=timed, outlier_epochs=tuple(_outlier(repeats[r], e) for r, e in timed.outliers) if timed else (),
        images_per_second=median([rate for record in ok for rate in timed_images_per_second(record)]) if repeats else None,
        repeats=len(repeats),
        input_wait=median(waits) if (waits := [w for record in repeats for w in timed_input_wait_shares(record) if w is not None]) else None,
        telemetry=telemetry.summarize(last.cell_id, last.kind, ok),
        hosts=tuple(strata.host_of(record) for record in repeats),
        kernels=kernels.of_cell(repeats),
        compiled_while_timed=sum(timed_compiles(record) > 0 for record in repeats),
    )


def _outlier(record: Record, timed_index: int) -> OutlierEpoch:
    warmup = len(warmup_seconds(record))
    return OutlierEpoch(record.cell_id, record.repeat + 1, warmup + timed_index + 1, timed_seconds(record)[timed_index])


def baselines(results: list[CellResult], baseline: str | None) -> dict[str, CellResult]:
    """Per workload, the cell speed-ups are measured against: its first measured CPU cell, unless a cell is named.

    Per workload, not per model: a workload fixes the input pipeline, so a cell fed cached batches is never
    set against one decoding JPEGs unless asked. A named cell is asked for: it is the baseline of every
    workload of its model (the same CNN with other settings, side by side).
    """
    chosen: dict[str, CellResult] = {}
    for result in results:
        if result.timed and result.kind == "cpu" and result.workload not in chosen:
            chosen[result.workload] = result
    for named in (result for result in results if result.timed and result.cell_id == baseline):
        chosen.update({result.workload: named for result in results if result.model == named.model})
    return chosen


def pairs(results: list[CellResult], chosen: dict[str, CellResult], min_effect: float = MIN_EFFECT) -> list[Pair]:
    """Every comparison a report makes, judged as one family (runner/stats.py: judge): each cell against its
    workload's baseline, and the pairs the sentences speak of. A pair asked twice (the fastest GPU against the
    CPU baseline is also its speed-up) is one comparison of the family."""
    asked = [("speed-up", chosen[r.workload], r) for r in results if r.timed and r.workload in chosen and chosen[r.workload] is not r]
    for workload in dict.fromkeys(result.workload for result in results):
        gpus = [r for r in results if r.workload == workload and r.timed and r.kind == "gpu"]
        if like := gpu_against_cpu(results, workload):
            asked.append(("GPU vs CPU", *like))
        asked += [("cuDNN step", previous, current) for previous, current in _cudnn_steps(gpus)]
    distinct = {(baseline.cell_id, other.cell_id): (baseline, other) for _, baseline, other in asked}
    evidence = [strata.weigh_by_host(baseline.by_host(), other.by_host()) for baseline, other in distinct.values()]
    judged = dict(zip(distinct, judge(evidence, min_effect)))
    convolution = kernels.convolution_verdicts(distinct, min_effect)
    return [Pair(question, baseline, other, judged[baseline.cell_id, other.cell_id], convolution.get((baseline.cell_id, other.cell_id)))
            for question, baseline, other in asked]


def gpu_against_cpu(results: list[CellResult], workload: str) -> tuple[CellResult, CellResult] | None:
    """The workload's fastest GPU cell and a CPU cell that differs from it in the device alone (same framework and
    version); None where the workload has no such pair."""
    measured = [r for r in results if r.workload == workload and r.timed]
    like = [(cpu, gpu) for gpu in measured if gpu.kind == "gpu" for cpu in measured if cpu.kind == "cpu" and _same_framework(cpu, gpu)]
    return min(like, key=lambda pair: pair[1].timed.median) if like else None


def _same_framework(a: CellResult, b: CellResult) -> bool:
    return (a.framework, a.framework_version, a.keras_version) == (b.framework, b.framework_version, b.keras_version)


def _cudnn_steps(gpus: list[CellResult]) -> list[tuple[CellResult, CellResult]]:
    """Within one workload, GPU model, CUDA line and framework, each cuDNN minor with the one before it."""
    groups: dict[tuple[str, str, str, str], list[CellResult]] = {}
    for result in gpus:
        groups.setdefault((result.workload, result.gpu_type, result.cuda, result.versions), []).append(result)
    steps = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: tuple(int(p) for p in r.cudnn_named.split(".")))
        steps += list(zip(ordered, ordered[1:]))
    return steps


def sentences(results: list[CellResult], found: list[Pair]) -> list[str]:
    """The seed's kind of answer, per workload: the GPU against a CPU cell alike but for the device, then each cuDNN
    against the previous one; where no such CPU cell was measured, that is said instead of setting unlike cells apart."""
    said = []
    for workload in dict.fromkeys(result.workload for result in results):
        mine = [pair for pair in found if pair.baseline.workload == workload]
        measured = [r for r in results if r.workload == workload and r.timed]
        against_cpu = [pair for pair in mine if pair.question == "GPU vs CPU"]
        if not any(r.kind == "gpu" for r in measured) and any(r.kind == "cpu" for r in measured):
            said.append(f"{workload}: no GPU cell was measured, so there is nothing to set against the CPU.")
        elif any(r.kind == "cpu" for r in measured) and not against_cpu:
            said.append(f"{workload}: no CPU cell with a GPU cell's framework and versions was measured, so the GPU is not set "
                        "against the CPU.")
        said += [_gpu_sentence(workload, pair) for pair in against_cpu]
        said += [_cudnn_sentence(workload, pair) for pair in mine if pair.question == "cuDNN step"]
    return said


def _gpu_sentence(workload: str, pair: Pair) -> str:
    c = pair.comparison
    interval = f" ({c.ci_low:.1f}-{c.ci_high:.1f}x)" if c.ci_low is not None else ""
    return f"{workload}: the GPU ({pair.other.cell_id}) is {c.ratio:.1f}x the CPU{interval}: {c.words}{_doubt(pair)}."


def _cudnn_sentence(workload: str, pair: Pair) -> str:
    previous, current = pair.baseline, pair.other
    convolution = f"; convolution time per step {pair.convolution.as_percent()}" if pair.convolution else ""
    return (f"{workload}: cuDNN {current.cudnn_named} vs {previous.cudnn_named} (CUDA {current.cuda}, {current.versions}): "
            f"{pair.comparison.as_percent()}{convolution}{_doubt(pair)}.")


def _doubt(pair: Pair) -> str:
    """What a sentence must add when one of its cells ran throttled or on moving clocks."""
    return f" (not comparable: {' and '.join(pair.doubtful)} ran throttled or on moving clocks, see below)" if pair.doubtful else ""


def notes(results: list[CellResult], records: list[Record]) -> Notes:
    return Notes(
        outlier_epochs=tuple(outlier for result in results for outlier in result.outlier_epochs),
        input_bound=tuple(result for result in results if result.input_wait is not None and result.input_wait > INPUT_BOUND),
        compiled_while_timed=tuple(result for result in results if result.compiled_while_timed),
        telemetry_warnings=telemetry_warnings(results),
        not_measured=not_measured(results),
        synthetic=tuple(sorted({result.workload for result in results if result.data_kind == "synthetic"})),
        unisolated=tuple(sorted({record.executor for record in records if record.environment.get("isolation") == "none"})),
        energy_estimated=any(result.telemetry and result.telemetry.energy_estimated for result in results),
    )


def telemetry_warnings(results: list[CellResult]) -> tuple[TelemetryWarning, ...]:
    return tuple(TelemetryWarning(*warning) for result in results if result.telemetry for warning in result.telemetry.warnings)


def not_measured(results: list[CellResult]) -> tuple[NotMeasured, ...]:
    """Cells without numbers, or with some failed repeats, one entry per (status, reason), in the cells' order."""
    by_reason: dict[tuple[str, str], list[str]] = {}
    for result in results:
        if result.status != "ok":
            by_reason.setdefault((result.status, result.reason), []).append(result.cell_id)
    return tuple(NotMeasured(status, reason, tuple(cells)) for (status, reason), cells in by_reason.items())


# --- Reading a record's measurement ------------------------------------------------------------------------------
# Everything above and every renderer read a measurement through these functions alone.


def timed_seconds(record: Record) -> list[float]:
    """The training seconds of a record's timed epochs (after its warm-up ones), what verdicts are on; [] without a measurement."""
    return [_training(epoch) for epoch in _timed(record)]


def warmup_seconds(record: Record) -> list[float]:
    """The training seconds of the warm-up epochs, to set beside the timed ones."""
    measured = record.measurement
    return [_training(epoch) for epoch in measured.epochs[:measured.warmup_epochs]] if measured else []


def _training(epoch: MeasuredEpoch) -> float:
    """An epoch's training time, without its validation: where older records lack it, the whole epoch's."""
    return epoch.train_seconds if epoch.train_seconds is not None else epoch.seconds


def timed_images_per_second(record: Record) -> list[float]:
    return [epoch.images_per_second for epoch in _timed(record)]


def timed_input_wait_shares(record: Record) -> list[float | None]:
    return [epoch.input_wait_share for epoch in _timed(record)]


def _timed(record: Record) -> list[MeasuredEpoch]:
    measured = record.measurement
    return measured.epochs[measured.warmup_epochs:] if measured else []


def model_trained(record: Record) -> str:
    return record.measurement.workload if record.measurement else ""


def timed_compiles(record: Record) -> int:  # XLA's compilations in the timed epochs, which jax records count; else 0
    count = _dict(record.measurement.model if record.measurement else None).get("compiles_in_timed_epochs")
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def data_kind(record: Record) -> str:
    return record.measurement.data.get("kind", "") if record.measurement else ""


def versions_loaded(record: Record, framework: str) -> tuple[str, str]:
    """(framework version, Keras version) as the workload imported them; ("", "") without a measurement."""
    versions = record.measurement.versions if record.measurement else {}
    return (versions.get(framework, "?"), versions.get("keras", "?")) if versions else ("", "")


def cudnn_loaded(record: Record) -> str:
    return _dict(_gpu(record).get("cudnn")).get("version") or ""


@dataclass(frozen=True)
class Loaded:
    """What a cell's process really loaded, as its record says; "" where it says nothing."""

    versions: dict  # the workload's import versions: framework, keras, keras_backend, python, others
    cudnn_version: str
    cudnn_path: str
    cuda_runtime_version: str
    cuda_runtime_path: str
    driver: str
    driver_cuda: str
    gpus_registered: object
    built_with: object
    devices: list
    convolution_ops: object


def loaded(record: Record) -> Loaded | None:
    measured = record.measurement
    if measured is None:
        return None
    gpu = _gpu(record)
    cudnn, cuda = _dict(gpu.get("cudnn")), _dict(gpu.get("cuda_runtime"))
    return Loaded(_dict(measured.versions), str(cudnn.get("version") or ""), str(cudnn.get("path") or ""),
                  str(cuda.get("version") or ""), str(cuda.get("path") or ""), str(gpu.get("driver") or ""),
                  str(gpu.get("driver_cuda") or ""), gpu.get("registered"), gpu.get("built_with") or gpu.get("tensorflow_built_with"),
                  measured.devices, measured.convolution_ops)


@dataclass(frozen=True)
class Epoch:
    """One epoch of a repeat as its record gives it; None for a figure it lacks."""

    number: int  # as the epoch log numbers it, from 1
    warmup: bool
    seconds: float | None
    train_seconds: float | None
    images_per_second: float | None
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None


def epochs(record: Record) -> tuple[Epoch, ...]:
    measured = record.measurement
    if measured is None:
        return ()
    return tuple(Epoch(number, number <= measured.warmup_epochs, epoch.seconds, epoch.train_seconds, epoch.images_per_second,
                       *(_number(epoch.logs.get(name)) for name in ("loss", "accuracy", "val_loss", "val_accuracy")))
                 for number, epoch in enumerate(measured.epochs, 1))


def _gpu(record: Record) -> dict:
    return _dict(record.measurement.gpu) if record.measurement else {}


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
