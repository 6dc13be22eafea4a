"""The plan every placement shares (run_plan): what a run has left, with the repeats cap, and the one not-run ladder.

Local, Slurm and SSH runs all go through session.carry_out, which asks these; the last tests run
the same resumed run through the local and the Slurm placement and see the same plan carried out.
"""

from __future__ import annotations

import dataclasses

import pytest

from fake_executor import FakeExecutor
from test_dispatch import RefusingSlurm  # a controller that answers and refuses every job
from runner import records, run_plan, session
from runner.dispatch import slurm
from runner.executors import Unsuitable
from runner.progress import Progress

MATRIX = """
workloads: {mnist: {model: mnist, epochs: 2, train_images: 64, validation_images: 32}}
cpu: {tensorflow: ["2.21"]}
gpu: {cuda: ["12.5"], cudnn: ["9.3", "8.9"], tensorflow: ["2.21"]}
build: {ca_certificates: []}
"""


@pytest.fixture
def cells(tmp_path):
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    plan = session.plan(tmp_path / "matrix.yaml")
    return {cell.kind if not cell.excluded else "excluded": cell for cell in plan.cells}  # cuDNN 8.9 under TensorFlow 2.21: excluded


def ok(cell, repeat):
    return run_plan.record(cell, "fake", "ok", "", repeat=repeat)


def test_a_resume_fills_the_gaps_and_never_runs_more_than_asked(cells):
    cpu = cells["cpu"]
    assert run_plan.repeats_left([ok(cpu, 1)], cpu.id, 3) == [0, 2]  # a failed repeat 0 beside a good repeat 1
    # Resumed with fewer repeats than it started with: measured repeats 2 and 3 count, whatever their numbers.
    assert run_plan.repeats_left([ok(cpu, 2), ok(cpu, 3)], cpu.id, 2) == []
    assert run_plan.left_to_run([cpu], [ok(cpu, 2), ok(cpu, 3)], 2) == []
    assert run_plan.repeats_left([ok(cpu, 3)], cpu.id, 2) == [0]  # the cap: one measured, one left


def test_runs_are_interleaved_and_a_cell_that_does_not_run_is_there_once_unless_noted(cells):
    cpu, gpu, excluded = cells["cpu"], cells["gpu"], cells["excluded"]
    why_not = lambda cell: run_plan.not_run(cell, run_plan.Here(no_gpu="no GPU here"))  # noqa: E731
    runs = [(cell.id, repeat) for cell, repeat in run_plan.runs_left([cpu, gpu, excluded], [], 2, why_not, seed=3)]
    assert sorted(runs[:3]) == sorted([(cpu.id, 0), (gpu.id, 0), (excluded.id, 0)]) and runs[3:] == [(cpu.id, 1)]
    noted = [run_plan.record(gpu, "fake", "skipped", "no GPU here")]
    assert [(cell.id, repeat) for cell, repeat in run_plan.runs_left([cpu, gpu], noted, 2, why_not)] == [(cpu.id, 0), (cpu.id, 1)]


def named(*ids):
    return [type("Cell", (), {"id": cell_id})() for cell_id in ids]


def test_each_round_is_whole_and_shuffled_by_the_seed():
    cells = named(*"abcdef")
    left = {cell.id: range(4) for cell in cells}
    order = lambda seed: [(cell.id, repeat) for cell, repeat in run_plan.interleaved(cells, left, seed)]  # noqa: E731
    rounds = [order(11)[k * 6:(k + 1) * 6] for k in range(4)]
    assert [sorted(one) for one in rounds] == [[(cell_id, k) for cell_id in "abcdef"] for k in range(4)]  # rounds kept
    assert len({tuple(cell_id for cell_id, _ in one) for one in rounds}) > 1  # the order differs between rounds
    assert order(11) == order(11) and order(11) != order(12)  # the seed alone makes the order


def test_a_new_seed_is_a_whole_number_that_differs_from_run_to_run():
    seeds = {run_plan.new_seed() for _ in range(5)}
    assert len(seeds) > 1 and all(isinstance(seed, int) and 0 <= seed < 2**32 for seed in seeds)


def test_the_not_run_ladder_takes_the_first_rung_that_applies(cells):
    cpu, gpu, excluded = cells["cpu"], cells["gpu"], cells["excluded"]
    here = run_plan.Here(no_gpu="no GPU here", wrong_gpu=lambda cell: ("failed", "wrong node"),
                         environments={cpu.environment: Unsuitable(cpu.environment, "no tensorflow")})
    assert run_plan.not_run(excluded, here) == ("excluded", excluded.excluded)  # the table first
    assert run_plan.not_run(gpu, here) == ("skipped", "no GPU here")  # then the GPU, before its type
    assert run_plan.not_run(gpu, dataclasses.replace(here, no_gpu=None)) == ("failed", "wrong node")
    assert run_plan.not_run(cpu, dataclasses.replace(here, wrong_gpu=lambda cell: None)) == ("excluded", "no tensorflow")
    assert run_plan.not_run(cpu, run_plan.Here()) is None


def test_a_not_run_record_names_what_was_asked_for_and_where(cells):
    gpu = cells["gpu"]
    record = run_plan.record(gpu, "docker", "failed", "its job was cancelled", repeat=2, where={"host": "node-1", "job_id": "9", "gone": ""})
    assert (record.cell_id, record.status, record.repeat, record.executor) == (gpu.id, "failed", 2, "docker")
    assert record.environment == {"name": gpu.environment.name, "base": gpu.environment.base, "host": "node-1", "job_id": "9"}


def test_local_and_slurm_carry_out_the_same_plan_of_a_resumed_run(tmp_path):
    """Repeats 1 and 3 of the CPU cell measured, 2 asked: neither placement runs it again (Slurm's own plan had no cap);
    the excluded cell is recorded once, by the same ladder."""
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    everything = session.plan(tmp_path / "matrix.yaml")
    plan = dataclasses.replace(everything, selected=[cell for cell in everything.cells if cell.kind == "cpu" or cell.excluded])
    measured = session.run(session.plan(tmp_path / "matrix.yaml", "cpu"), FakeExecutor(), tmp_path / "measured", None, 4, Progress())
    kept = [record for record in measured.records if record.repeat in (1, 3)]
    for name in ("local", "slurm"):
        folder = records.new_run(tmp_path / name, plan.matrix.path, {"dispatch": name} if name == "slurm" else {})
        for record in kept:
            records.append(folder, record)
        if name == "local":
            executor = FakeExecutor()
            result = session.run(plan, executor, tmp_path / name, folder.name, 2, Progress())
            assert executor.jobs == []
        else:
            refusing = RefusingSlurm()
            result = slurm.run(plan, tmp_path / name, folder.name, 2, Progress(), slurm=refusing)
            assert refusing.submitted == []
        assert [(record.cell_id, record.status) for record in result.records][2:] == [(plan.selected[-1].id, "excluded")]


def test_group_rounds_are_one_round_of_one_workload_each_in_the_runs_order(tmp_path):
    matrix = MATRIX.replace("workloads: {", "workloads: {other: {model: mnist, epochs: 2}, ").replace('cpu: {tensorflow: ["2.21"]}',
                                                                                                  'cpu: {tensorflow: ["2.20", "2.21"]}')
    (tmp_path / "matrix.yaml").write_text(matrix)
    cpu = [cell for cell in session.plan(tmp_path / "matrix.yaml").selected if cell.kind == "cpu"]
    runs = run_plan.interleaved(cpu, {cell.id: range(3) for cell in cpu}, seed=9)
    rounds = run_plan.group_rounds(runs)
    assert sorted(sorted((cell.id, repeat) for cell, repeat in one) for one in rounds) == sorted(
        sorted((cell.id, repeat) for cell in cpu if cell.workload.name == name) for name in ("mnist", "other") for repeat in range(3))
    assert all(one == [run for run in runs if run in one] for one in rounds)
