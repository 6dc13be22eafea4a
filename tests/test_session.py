"""The session with a fake executor at the seam: the outcome ladder, records, resume and the CLI, in milliseconds.

tests/test_docker_failures.py proves the same ladder with real containers.
"""

import json
import os
from collections import Counter
import shlex

import pytest

from conftest import small_disk
from fake_executor import FakeExecutor, fault_workloads
from runner.outcome import RawRun
from runner import cli, executors, records, run_plan, session
from runner.errors import UserError
from runner.progress import Progress

SMALL = "model: mnist, epochs: 2, train_images: 64, validation_images: 32"
MATRIX = fault_workloads("mnist") + """
cpu:
  tensorflow: ["2.21", "2.999"]
gpu:
  cuda: ["12.5"]
  cudnn: ["9.3", "8.9"]
  tensorflow: ["2.21"]
limits:
  memory: 1500m
build:
  ca_certificates: []
"""


@pytest.fixture
def matrix(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(MATRIX)
    return path


def run(matrix, executor, **options):
    plan = session.plan(matrix, options.pop("pattern", None))
    return session.run(plan, executor, matrix.parent / "results", options.pop("resume", None), options.pop("repeats", 1), Progress())


def by_cell(result):
    return {record.cell_id: record for record in result.records}


def test_every_rung_of_the_outcome_ladder_becomes_a_record_and_the_other_cells_run(matrix):
    executor = FakeExecutor(failing_environments={"cpu-tf2.999"}, no_gpu="no GPU here")
    result = run(matrix, executor)

    cells = by_cell(result)
    assert len(cells) == 20
    reasons = {cell: (record.status, record.reason) for cell, record in cells.items()}
    assert reasons["cpu-tf2.21-mnist"] == ("ok", "")
    assert reasons["cpu-tf2.21-crash"] == ("failed", "the workload exited with code 1: injected fault: crash")
    assert reasons["cpu-tf2.21-garbage"] == ("failed", "the workload printed no readable result record")
    assert reasons["cpu-tf2.21-hang"] == ("failed", "exceeded its time limit of 0.1 min (workloads.hang.timeout_minutes)")
    assert reasons["cpu-tf2.21-memory"] == ("failed", "killed for running out of memory (limit 1500m, limits.memory)")
    for workload in ("mnist", "crash", "garbage", "hang", "memory"):
        assert reasons[f"cpu-tf2.999-{workload}"] == ("failed", "image build failed: no matching distribution")
        assert reasons[f"gpu-cuda12.5-cudnn9.3-tf2.21-{workload}"] == ("skipped", "no GPU here")
        assert reasons[f"gpu-cuda12.5-cudnn8.9-tf2.21-{workload}"][0] == "excluded"
    assert result.failed == 9
    assert "pip: no matching distribution" in cells["cpu-tf2.999-mnist"].log_tail
    assert "injected fault: crash" in cells["cpu-tf2.21-crash"].log_tail


def test_records_carry_axes_executor_and_environment_provenance(matrix):
    result = run(matrix, FakeExecutor(no_gpu="no GPU here"), pattern="tf2.21-mnist")
    ok, skipped = (next(r for r in result.records if r.status == status) for status in ("ok", "skipped"))
    assert (ok.cell_id, ok.executor, ok.schema) == ("cpu-tf2.21-mnist", "fake", records.RESULTS_SCHEMA)
    assert ok.axes == {"kind": "cpu", "framework": "tensorflow", "framework_version": "2.21"}
    assert ok.environment == {"name": "cpu-tf2.21", "handle": "fake/cpu-tf2.21"}
    assert len(ok.measurement.epochs) == 2
    # The launch time, set against the workload's timeline by bench/runner_overhead.py; none for a cell not run.
    assert isinstance(ok.launched, float) and skipped.launched is None
    assert skipped.axes == {"kind": "gpu", "framework": "tensorflow", "framework_version": "2.21", "cuda": "12.5", "cudnn": "9.3"}
    assert skipped.environment == {"name": "gpu-cuda12.5-cudnn9.3-tf2.21", "base": "nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04"}
    manifest = json.loads((result.folder / records.MANIFEST_FILE).read_text())
    assert (manifest["host"]["executor"], manifest["host"]["isolation"], manifest["host"]["fake"]) == ("fake", "none", True)


def test_gpu_environments_are_prepared_only_where_gpu_cells_can_run(matrix):
    without = FakeExecutor(no_gpu="no GPU here")
    run(matrix, without, pattern="mnist")
    assert without.prepared == ["cpu-tf2.21", "cpu-tf2.999"]

    with_gpu = FakeExecutor()
    result = run(matrix, with_gpu, pattern="mnist")
    assert with_gpu.prepared == ["cpu-tf2.21", "cpu-tf2.999", "gpu-cuda12.5-cudnn9.3-tf2.21"]
    gpu = by_cell(result)["gpu-cuda12.5-cudnn9.3-tf2.21-mnist"]
    assert (gpu.status, gpu.reason) == ("failed", "expected a GPU, TensorFlow registered none")
    assert gpu.measurement.epochs == []  # the workload's evidence is kept


def test_a_gpu_only_matrix_prepares_one_gpu_environment_to_ask_with(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(f'workloads: {{mnist: {{{SMALL}}}}}\ngpu: {{cuda: ["12.5", "12.6"], cudnn: ["9.3"], tensorflow: ["2.21"]}}\nbuild: {{ca_certificates: []}}\n')
    executor = FakeExecutor(no_gpu="no GPU here")
    result = run(path, executor)
    assert executor.prepared == ["gpu-cuda12.5-cudnn9.3-tf2.21"]
    assert [record.status for record in result.records] == ["skipped", "skipped"]


def test_the_job_spec_carries_every_setting_of_the_cell(matrix):
    executor = FakeExecutor()
    run(matrix, executor, pattern="cudnn9.3-tf2.21-hang")
    (job,) = executor.jobs
    assert (job.cell_id, job.model, job.fault, job.epochs, job.warmup_epochs) == ("gpu-cuda12.5-cudnn9.3-tf2.21-hang", "mnist", "hang", 2, 1)
    # mnist's batch of 128 is more than 64 images: the batch the job is given, and records, is the one it can use
    assert (job.expect_gpu, job.expect_cudnn, job.batch_size, job.train_images) == (True, "9.3", 64, 64)
    assert job.data_dir.endswith("synthetic/mnist-64-32")


def test_repeats_run_afresh_and_resume_runs_only_what_is_missing(matrix):
    first = run(matrix, FakeExecutor(no_gpu="no GPU here"), pattern="tf2.21-", repeats=2)
    assert [(r.cell_id, r.repeat) for r in first.records if r.cell_id == "cpu-tf2.21-mnist"] == [("cpu-tf2.21-mnist", 0), ("cpu-tf2.21-mnist", 1)]

    again = FakeExecutor(no_gpu="no GPU here")
    resumed = run(matrix, again, pattern="tf2.21-", resume=first.folder.name)
    assert resumed.folder == first.folder
    assert "cpu-tf2.21-mnist" not in {job.cell_id for job in again.jobs}
    assert {job.cell_id for job in again.jobs} == {"cpu-tf2.21-crash", "cpu-tf2.21-garbage", "cpu-tf2.21-hang", "cpu-tf2.21-memory"}


def test_an_interrupt_keeps_finished_records_and_cleans_up(matrix):
    class Interrupted(FakeExecutor):
        def run(self, cell, job, prepared, limits, run_folder):
            if job.fault == "crash":
                raise KeyboardInterrupt
            return super().run(cell, job, prepared, limits, run_folder)

    executor = Interrupted(no_gpu="no GPU here")
    with pytest.raises(KeyboardInterrupt):
        run(matrix, executor, pattern="cpu-tf2.21-")
    (folder,) = (matrix.parent / "results").iterdir()
    assert sorted(record.cell_id for record in records.load(folder)) == sorted(job.cell_id for job in executor.jobs)  # run before it
    assert json.loads((folder / records.MANIFEST_FILE).read_text())["state"] == "interrupted"
    assert executor.cleaned == [folder.name]


def test_run_through_the_cli_prints_the_report_and_exits_1_for_a_failed_cell(matrix, monkeypatch, capsys):
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor(no_gpu="no GPU here"))
    chart = matrix.parent / "chart.png"
    code = cli.main(["run", "-f", str(matrix), "-k", "cpu-tf2.21-[mc][nr]", "--results", str(matrix.parent / "results"), "--plot", str(chart)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "mnist (speed-ups against cpu-tf2.21-mnist):\n" in out and "| cpu-tf2.21 " in out
    assert "- cpu-tf2.21-crash: failed: the workload exited with code 1: injected fault: crash" in out
    assert chart.read_bytes().startswith(b"\x89PNG") and f"chart: {chart}" in err
    assert "2 cell(s) to run, 0 already done" in err


def test_a_run_asked_for_a_chart_that_measured_nothing_says_so_and_checks_the_path_first(matrix, monkeypatch, capsys):
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor(no_gpu="no GPU here"))
    results = matrix.parent / "results"
    assert cli.main(["run", "-f", str(matrix), "-k", "cpu-tf2.21-crash", "--results", str(results), "--plot", "chart.gif"]) == 2
    assert not results.exists()  # refused before anything ran
    chart = matrix.parent / "chart.svg"
    assert cli.main(["run", "-f", str(matrix), "-k", "cpu-tf2.21-crash", "--results", str(results), "--plot", str(chart)]) == 1
    assert f"--plot {chart}: no measured cell, so no chart" in capsys.readouterr().err and not chart.exists()


def test_resume_after_a_record_cut_short_keeps_every_line_readable(matrix, capsys):
    first = run(matrix, FakeExecutor(no_gpu="no GPU here"), pattern="cpu-tf2.21-[mc][nr]")
    results = first.folder / records.RESULTS_FILE
    text = results.read_text()
    results.write_text(text[: len(text) - 300])  # the last record cut short: power lost during its write

    resumed = run(matrix, FakeExecutor(no_gpu="no GPU here"), pattern="cpu-tf2.21-[mc][nr]", resume=first.folder.name)

    assert {record.cell_id: record.status for record in resumed.records} == {"cpu-tf2.21-mnist": "ok", "cpu-tf2.21-crash": "failed"}
    assert "results.jsonl:2: not a complete JSON record; the line is left out" in capsys.readouterr().err
    assert cli.main(["report", str(first.folder)]) == 1  # the report still reads every other line


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 256 KiB filesystem, to be filled up: a results disk running full."""
    with small_disk(tmp_path, "256k") as folder:
        yield folder


def test_a_full_results_disk_loses_no_measurement(matrix, tiny_disk, capsys):
    class FillsTheDisk(FakeExecutor):
        def run(self, cell, job, prepared, limits, run_folder):
            filler = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                while True:
                    os.write(filler, b"x" * 4096)
            except OSError:
                pass  # full
            finally:
                os.close(filler)
            return super().run(cell, job, prepared, limits, run_folder)

    plan = session.plan(matrix, "cpu-tf2.21-[mc][nr]")
    result = session.run(plan, FillsTheDisk(no_gpu="x"), tiny_disk / "results", None, 1, Progress())

    err = capsys.readouterr().err.splitlines()
    cannot = [line for line in err if line.startswith("error: cannot write the record of")]
    assert len(cannot) == 2 and "No space left on device" in cannot[0]
    kept = {record["cell_id"]: record for record in (json.loads(err[err.index(line) + 1]) for line in cannot)}  # in the run's order
    assert kept["cpu-tf2.21-mnist"]["status"] == "ok" and kept["cpu-tf2.21-mnist"]["measurement"]["epochs"]
    assert result.failed == 2
    # the run's table shows what was measured, and the manifest says the run ended: it stayed `running` for ever
    assert {record.cell_id: record.status for record in result.records} == {"cpu-tf2.21-mnist": "ok", "cpu-tf2.21-crash": "failed"}
    assert records.manifest(result.folder)["state"] == "finished"
    # nothing half-written left behind: the logs folder holds what fitted of each repeat's log, and no partial manifest
    assert sorted(path.name for path in result.folder.iterdir()) == [".lock", "logs", "manifest.json", "matrix.yaml", "results.jsonl"]


def test_repeats_run_in_rounds_by_the_recorded_seed_and_resume_tops_up_the_missing_ones(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(f'workloads: {{a: {{{SMALL}}}, b: {{{SMALL}}}, c: {{{SMALL}, fault: crash}}}}\ncpu: {{tensorflow: ["2.21"]}}\n'
                    "repeats: 3\nbuild: {ca_certificates: []}\n")
    executor = FakeExecutor()
    first = session.run(session.plan(path), executor, tmp_path / "results", None, None, Progress(), seed=7)
    ran = [job.cell_id.removeprefix("cpu-tf2.21-") for job in executor.jobs]
    assert [sorted(ran[k:k + 3]) for k in (0, 3, 6)] == [list("abc")] * 3  # every cell's repeat k before any cell's k + 1
    assert records.manifest(first.folder)["order_seed"] == 7
    # Read back in the matrix's order, whatever order they ran in: a report's tables and baselines do not move with the seed.
    assert [(r.cell_id[-1], r.repeat) for r in first.records] == [(cell, repeat) for cell in "abc" for repeat in range(3)]
    cells = session.plan(path).selected
    assert ran == [cell.id[-1] for cell, _ in run_plan.interleaved(cells, {cell.id: range(3) for cell in cells}, 7)]

    more = FakeExecutor()
    topped = session.run(session.plan(path), more, tmp_path / "results", first.folder.name, 5, Progress())
    ran = [job.cell_id[-1] for job in more.jobs]
    assert [sorted(ran[k:k + 3]) for k in (0, 3)] == [list("abc")] * 2 and ran[6:] == list("ccc")  # c had no good repeat: all five
    ok = Counter(record.cell_id[-1] for record in topped.records if record.status == "ok")
    assert ok == {"a": 5, "b": 5}
    with pytest.raises(UserError, match="started with --seed 7"):
        session.run(session.plan(path), FakeExecutor(), tmp_path / "results", first.folder.name, 6, Progress(), seed=8)


def test_resume_runs_the_repeat_numbers_missing_not_the_next_ones(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(f'workloads: {{a: {{{SMALL}}}}}\ncpu: {{tensorflow: ["2.21"]}}\nrepeats: 2\nbuild: {{ca_certificates: []}}\n')
    first = session.run(session.plan(path), FakeExecutor(), tmp_path / "results", None, None, Progress())
    zero, one = (record.to_json() for record in first.records)
    failed = zero.replace('"status": "ok"', '"status": "failed"')  # repeat 0 failed (the engine went away), repeat 1 measured
    (first.folder / records.RESULTS_FILE).write_text(failed + "\n" + one + "\n")

    session.run(session.plan(path), FakeExecutor(), tmp_path / "results", first.folder.name, None, Progress())
    loaded = records.load(first.folder)
    assert sorted(record.repeat for record in loaded if record.status == "ok") == [0, 1]


def test_interleaving_gives_each_cell_its_own_remaining_repeats():
    cells = [type("C", (), {"id": "a"})(), type("C", (), {"id": "b"})()]
    order = run_plan.interleaved(cells, {"a": range(1, 3), "b": range(0, 3)})
    assert [sorted((cell.id, repeat) for cell, repeat in order[k:k + 2]) for k in (0, 2)] == [[("a", 1), ("b", 0)], [("a", 2), ("b", 1)]]
    assert [(cell.id, repeat) for cell, repeat in order[4:]] == [("b", 2)]


def test_identical_cells_with_the_default_repeats_are_called_neither_faster_nor_slower(tmp_path, capsys):
    path = tmp_path / "matrix.yaml"
    path.write_text(f'workloads: {{mnist: {{{SMALL}}}, again: {{{SMALL}}}}}\ncpu: {{tensorflow: ["2.21"]}}\nbuild: {{ca_certificates: []}}\n')
    result = session.run(session.plan(path), FakeExecutor(), tmp_path / "results", None, None, Progress())
    assert Counter(record.cell_id for record in result.records) == {"cpu-tf2.21-mnist": 5, "cpu-tf2.21-again": 5}
    assert cli.main(["report", str(result.folder), "--format", "json", "--baseline", "cpu-tf2.21-mnist"]) == 0
    (comparison,) = [c for c in json.loads(capsys.readouterr().out)["comparisons"] if c["other"] == "cpu-tf2.21-again"]
    assert comparison["verdict"] in ("same", "no_difference") and (comparison["repeats_baseline"], comparison["repeats_other"]) == (5, 5)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class MinuteEach(FakeExecutor):
    """Each repeat takes a minute of the clock, or its time limit where that is shorter (and then it is stopped)."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def run(self, cell, job, prepared, limits, run_folder):
        limit = cell.workload.timeout_minutes * 60
        self.clock.now += min(60.0, limit)
        if limit < 60:
            self.jobs.append(job)
            return RawRun(exit_code=137, output="", timed_out=True)
        return super().run(cell, job, prepared, limits, run_folder)


def test_a_budget_stops_starting_repeats_and_stops_the_one_running_at_its_end(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(f'workloads: {{a: {{{SMALL}}}, b: {{{SMALL}}}, c: {{{SMALL}}}, d: {{{SMALL}}}}}\ncpu: {{tensorflow: ["2.21"]}}\n'
                    "repeats: 2\nbuild: {ca_certificates: []}\n")
    clock = Clock()
    executor = MinuteEach(clock)
    budget = session.Budget.starting_now(2.5, clock)
    result = session.run(session.plan(path), executor, tmp_path / "results", None, None, Progress(), budget)

    first, second, third = (job.cell_id[-1] for job in executor.jobs)  # the third started with 30 s left; nothing after it
    (fourth,) = set("abcd") - {first, second, third}
    got = {(record.cell_id[-1], record.repeat): (record.status, record.reason) for record in result.records}
    assert got == {(first, 0): ("ok", ""), (second, 0): ("ok", ""),
                   (third, 0): ("failed", "exceeded its time limit of 30 s (what was left of the run's --budget-minutes)"),
                   (fourth, 0): ("skipped", budget.not_reached)}
    assert budget.not_reached == "not reached: the run's budget of 2.5 min (--budget-minutes) was spent on the cells before it"

    resumed = session.run(session.plan(path), FakeExecutor(), tmp_path / "results", result.folder.name, None, Progress())
    ok = Counter(record.cell_id[-1] for record in resumed.records if record.status == "ok")
    assert ok == {"a": 2, "b": 2, "c": 2, "d": 2}


def test_a_budget_skips_a_repeat_that_would_not_fit_by_the_cells_last_one(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(f'workloads: {{a: {{{SMALL}}}}}\ncpu: {{tensorflow: ["2.21"]}}\nrepeats: 3\nbuild: {{ca_certificates: []}}\n')
    clock = Clock()
    executor = MinuteEach(clock)
    result = session.run(session.plan(path), executor, tmp_path / "results", None, None, Progress(), session.Budget.starting_now(1.9, clock))
    assert len(executor.jobs) == 1  # 54 s were left after the first repeat's 60 s: not started, not cut short
    assert [(record.status, record.repeat) for record in result.records] == [("ok", 0)]


@pytest.mark.parametrize("options, message", [
    (["--budget-minutes", "0"], "argument --budget-minutes: expected minutes above 0 and at most 10080, got '0'"),
    (["--budget-minutes", "nan"], "argument --budget-minutes: expected minutes above 0"),
    (["--budget-minutes", "5", "--dispatch", "slurm"], "error: --budget-minutes: only for runs on this machine (--dispatch local)"),
])
def test_a_budget_is_minutes_and_only_for_local_runs(matrix, options, message, capsys):
    try:
        code = cli.main(["run", "-f", str(matrix), *options])
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_resume_command_printed_after_an_interrupt_is_complete_and_pasteable(matrix, monkeypatch, capsys):
    class Interrupted(FakeExecutor):
        def run(self, cell, job, prepared, limits, run_folder):
            if job.fault == "crash":
                raise KeyboardInterrupt
            return super().run(cell, job, prepared, limits, run_folder)

    results = matrix.parent / "my results"
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: Interrupted(no_gpu="no GPU here"))
    assert cli.main(["run", "-f", str(matrix), "-k", "cpu-tf2.21-[mc][nr]", "--results", str(results), "--repeats", "1"]) == 130
    (folder,) = results.iterdir()
    printed = capsys.readouterr().err.split("`")[1]
    assert printed == (f"python -m runner run -f {matrix} --results '{results}' -k 'cpu-tf2.21-[mc][nr]' --repeats 1 "
                       f"--resume {folder.name}")

    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: FakeExecutor(no_gpu="no GPU here"))
    assert cli.main(shlex.split(printed)[3:]) == 1  # the crash cell fails as a crash, this time
    assert sorted(record.cell_id for record in records.load(folder)) == ["cpu-tf2.21-crash", "cpu-tf2.21-mnist"]


def test_a_long_lines_change_is_shown_where_it_is(tmp_path):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("workloads:\n  stuck: {model: dogs-vs-cats, epochs: 2, train_images: 64, validation_images: 32, fault: hang}\n")
    run_folder = records.new_run(tmp_path / "results", matrix, {})
    matrix.write_text("workloads:\n  stuck: {model: dogs-vs-cats, epochs: 2, train_images: 64, validation_images: 32}\n")
    assert records.matrix_changes(run_folder, matrix) == ("1 change(s) since the run started, first line 2: "
                                                          "'...alidation_images: 32, fault: hang}' is now '...alidation_images: 32}'")


def test_a_resume_with_a_changed_matrix_is_refused_naming_the_change_unless_forced(matrix, capsys):
    first = run(matrix, FakeExecutor(no_gpu="no GPU here"), pattern="cpu-tf2.21-mnist")
    assert (first.folder / records.MATRIX_COPY).read_text() == MATRIX
    matrix.write_text(MATRIX.replace("memory: 1500m", "memory: 3g"))

    with pytest.raises(UserError) as refused:
        run(matrix, FakeExecutor(no_gpu="no GPU here"), pattern="cpu-tf2.21-mnist", resume=first.folder.name)
    line = MATRIX.splitlines().index("  memory: 1500m") + 1
    assert str(refused.value) == (f"{matrix}: not the matrix run {first.folder.name} started with: 1 change(s) since the run started, "
                                  f"first line {line}: 'memory: 1500m' is now 'memory: 3g'; resume with "
                                  f"-f {first.folder / records.MATRIX_COPY}, or add --force to resume with this one")
    plan = session.plan(matrix, "cpu-tf2.21-mnist")
    forced = session.run(plan, FakeExecutor(no_gpu="no GPU here"), matrix.parent / "results", first.folder.name, 2, Progress(), force=True)
    assert [record.repeat for record in forced.records] == [0, 1]
