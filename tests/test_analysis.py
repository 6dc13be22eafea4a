"""The analysis as data: pure functions on constructed records, no text parsed."""

import dataclasses
from pathlib import Path

from runner.analysis import OutlierEpoch, analyze, epochs, loaded, timed_seconds
from runner.cells import expand
from runner.compatibility import load_table
from runner.config import load_matrix
from runner.run_comparison import compare_runs
from test_records import epoch, measurement, record
from test_report import CPU, CPU_ID, GPU_93, GPU_93_ID, GPU_95, GPU_95_ID, GPU_98, GPU_98_ID, repeated, timed


def test_each_cell_is_set_against_its_models_baseline_and_the_sentences_pairs_are_kept():
    found = analyze(CPU + GPU_93 + GPU_95 + GPU_98)

    (cpu, gpu_93, gpu_95, gpu_98) = found.results
    assert found.baselines == {"dogs-vs-cats": cpu} and found.is_baseline(cpu) and not found.is_baseline(gpu_93)
    assert [(p.question, p.baseline.cell_id, p.other.cell_id, p.comparison.verdict) for p in found.pairs] == [
        ("speed-up", CPU_ID, GPU_93_ID, "faster"), ("speed-up", CPU_ID, GPU_95_ID, "faster"), ("speed-up", CPU_ID, GPU_98_ID, "faster"),
        ("GPU vs CPU", CPU_ID, GPU_98_ID, "faster"),
        ("cuDNN step", GPU_93_ID, GPU_95_ID, "same"), ("cuDNN step", GPU_95_ID, GPU_98_ID, "faster")]
    assert found.speedup(GPU_98_ID).comparison.ratio == 12.5 and found.speedup(CPU_ID) is None
    assert (gpu_98.repeats, gpu_98.timed.median, gpu_98.cudnn_named, gpu_98.cudnn_loaded) == (5, 0.8, "9.8", "9.8.0")
    assert (gpu_98.framework_version, gpu_98.keras_version, gpu_98.versions) == ("2.21.0", "3.12.0", "tf 2.21.0, Keras 3.12.0")
    assert found.sentences[0] == f"dogs-vs-cats: the GPU ({GPU_98_ID}) is 12.5x the CPU (12.1-12.9x): faster."
    assert found.measured == found.results and found.min_effect == 0.05


DEVICE_AXES = {"kind", "cuda", "cudnn"}


def default_matrix_run():
    """Five repeats of every cell of the default matrix: cached input makes a cell faster, the GPU most of all, so
    setting a cached GPU cell against the JPEG CPU cell would read as a far larger speed-up than the GPU gives."""
    seconds = {("cpu", "dogs-vs-cats"): 10.0, ("gpu", "dogs-vs-cats"): 2.0, ("cpu", "dogs-vs-cats-cached"): 8.0,
               ("gpu", "dogs-vs-cats-cached"): 0.5, ("cpu", "mnist"): 6.0, ("gpu", "mnist"): 1.0}
    cells = [cell for cell in expand(load_matrix(Path(__file__).parent.parent / "matrix.yaml"), load_table()) if not cell.excluded]
    run = []
    for cell in cells:
        per_cudnn = 1 - 0.1 * ["", "9.3", "9.5", "9.8"].index(cell.axis("cudnn"))  # each cuDNN 10% faster than the one before
        for repeat, jitter in enumerate((1.00, 1.01, 0.99, 1.02, 0.98)):
            data = measurement([epoch(20.0, 10.0)] + [epoch(seconds[cell.kind, cell.workload.name] * per_cudnn * jitter, 1.0)] * 3)
            data["workload"] = cell.workload.model
            run.append(record(cell.id, measurement=data, kind=cell.kind, workload=cell.workload.name, axes=cell.axes_dict, repeat=repeat))
    return run


def test_the_default_matrix_sets_like_against_like_in_its_sentences_and_baselines():
    found = analyze(default_matrix_run())

    assert {workload: cell.cell_id for workload, cell in found.baselines.items()} == {
        "dogs-vs-cats": "cpu-tf2.21-dogs-vs-cats", "dogs-vs-cats-cached": "cpu-tf2.21-dogs-vs-cats-cached", "mnist": "cpu-tf2.21-mnist"}
    for pair in found.pairs:  # never across workloads, so never across input pipelines
        assert pair.baseline.workload == pair.other.workload, pair
        differ = {axis for axis in ("kind", "cuda", "cudnn", "framework") if _axis(pair.baseline, axis) != _axis(pair.other, axis)}
        assert differ <= DEVICE_AXES if pair.question != "cuDNN step" else differ == {"cudnn"}, pair
    # Before, the model's one baseline set the cached GPU cell against the JPEG CPU cell: "28.6x the CPU".
    against_cpu = [sentence for sentence in found.sentences if " the CPU" in sentence]
    assert against_cpu == [
        "dogs-vs-cats: the GPU (gpu-cuda12.6-cudnn9.8-tf2.21-dogs-vs-cats) is 7.1x the CPU (6.9-7.4x): faster.",
        "dogs-vs-cats-cached: the GPU (gpu-cuda12.6-cudnn9.8-tf2.21-dogs-vs-cats-cached) is 22.9x the CPU (22.2-23.5x): faster.",
        "mnist: the GPU (gpu-cuda12.6-cudnn9.8-tf2.21-mnist) is 8.6x the CPU (8.3-8.8x): faster."]
    assert found.family == 3 * 6 + 3 * 4  # per workload 6 speed-ups (the GPU vs CPU pair is one of them) and 4 cuDNN steps


def test_a_gpu_with_no_cpu_cell_of_its_framework_is_set_against_none():
    jax_cpu = [dataclasses.replace(r, axes={**r.axes, "framework": "jax"}) for r in CPU]
    said = analyze(jax_cpu + GPU_98).sentences
    assert said == ("dogs-vs-cats: no CPU cell with a GPU cell's framework and versions was measured, so the GPU is not set against the CPU.",)


def _axis(result, axis):
    return {"kind": result.kind, "cuda": result.cuda, "cudnn": result.cudnn_named, "framework": result.framework}[axis]


def test_a_named_baseline_replaces_the_cpu_and_a_model_without_one_has_no_speed_ups():
    named = analyze(CPU + GPU_93, baseline=GPU_93_ID)
    assert named.baselines["dogs-vs-cats"].cell_id == GPU_93_ID
    assert named.speedup(CPU_ID).comparison.verdict == "slower"
    assert analyze(GPU_93 + GPU_98).pairs[0].question == "cuDNN step"  # no CPU cell: no baseline, no speed-ups


def test_outlier_epochs_are_numbers_as_the_epoch_log_gives_them():
    stalled = repeated(GPU_98_ID, 0.80, cudnn="9.8")
    stalled[2] = timed(GPU_98_ID, [0.79, 3.20, 0.80], cudnn="9.8", repeat=2)

    found = analyze(CPU + stalled)

    assert found.notes.outlier_epochs == (OutlierEpoch(GPU_98_ID, repeat=3, epoch=3, seconds=3.2),)  # the warm-up is epoch 1
    assert found.results[1].outlier_epochs == found.notes.outlier_epochs


def test_notes_name_input_bound_synthetic_unisolated_and_not_measured_cells():
    waiting = record("cpu-tf2.21-slow", measurement=measurement([epoch(5.0, 10.0)] + [dict(epoch(1.0, 20.0), input_wait_share=0.4)] * 2))
    unisolated = dataclasses.replace(record("cpu-tf2.21-venv", measurement=measurement([epoch(2.0, 1.0), epoch(1.0, 2.0)])),
                                     executor="venv", environment={"isolation": "none"})
    skipped = [record(f"gpu-{n}", "skipped", "no GPU here", kind="gpu") for n in (1, 2)]
    failed_repeat = record(GPU_93_ID, "failed", "Killed", kind="gpu", cudnn="9.3", cuda="12.6", repeat=1)

    notes = analyze([waiting, unisolated, *skipped, GPU_93[0], failed_repeat]).notes

    assert [(result.cell_id, result.input_wait) for result in notes.input_bound] == [("cpu-tf2.21-slow", 0.4)]
    assert (notes.synthetic, notes.unisolated, notes.energy_estimated) == (("dogs-vs-cats",), ("venv",), False)
    assert [(group.status, group.reason, group.cells) for group in notes.not_measured] == [
        ("skipped", "no GPU here", ("gpu-1", "gpu-2")), ("ok (1 of 2 failed)", "Killed", (GPU_93_ID,))]
    assert notes.telemetry_warnings == ()


def test_two_runs_are_compared_cell_by_cell_and_the_slower_ones_named():
    slower = [timed(r.cell_id, [s * 1.25 for s in timed_seconds(r)], "gpu", "9.3", r.repeat) for r in GPU_93]

    compared = compare_runs(CPU + GPU_93, slower + GPU_98, "before", "after")

    (cell,) = compared.cells
    assert (cell.cell_id, cell.comparison.verdict, cell.a.repeats, cell.b.repeats) == (GPU_93_ID, "slower", 5, 5)
    assert compared.slower == (GPU_93_ID,) and cell.energy_ratio is None and not compared.with_energy
    assert (compared.only_in_a, compared.only_in_b) == ((CPU_ID,), (GPU_98_ID,))
    assert compare_runs(GPU_93, GPU_93, "a", "b").slower == ()


def test_a_records_epochs_and_what_it_loaded_are_read_in_one_place():
    gpu = GPU_93[0]
    assert [(e.number, e.warmup, e.seconds) for e in epochs(gpu)] == [(1, True, 5.0), (2, False, 1.0), (3, False, 1.005), (4, False, 0.995)]
    assert timed_seconds(gpu) == [1.0, 1.005, 0.995]
    facts = loaded(gpu)
    assert (facts.cudnn_version, facts.cudnn_path, facts.cuda_runtime_version) == ("9.3.0", "/x/libcudnn.so.9", "")
    assert facts.versions["tensorflow"] == "2.21.0"
    not_run = record("gpu-1", "skipped", "no GPU here", kind="gpu")
    assert (loaded(not_run), epochs(not_run), timed_seconds(not_run)) == (None, (), [])
