"""bisect: a binary search over the cuDNN releases between two, each probe a normal cell.

The search is tested on scripted seconds; the command, through the CLI with an executor whose
"cuDNN" times are scripted, writes normal records into one run folder that `report` reads.
"""

import random

import pytest

from fake_executor import FakeExecutor, measurement, record_line
from runner import bisect, cli, executors, records
from runner.compatibility import load_table
from runner.errors import UserError
from runner.outcome import RawRun

RELEASES = ["9.3", "9.4", "9.5", "9.6", "9.7", "9.8", "9.9", "9.10"]
MATRIX = """workloads:
  mnist: {model: mnist, epochs: 2, train_images: 64, validation_images: 32}
gpu:
  cuda: ["12.5"]
  cudnn: ["9.3"]
  tensorflow: ["2.21"]
build:
  ca_certificates: []
"""
CELL = "gpu-cuda12.5-cudnn9.3-tf2.21-mnist"


def scripted(seconds_at, spread=0.01, seed=0):
    """measure(): each release's repeats, around its scripted seconds, and the releases asked for, in order."""
    generator, asked = random.Random(seed), []

    def measure(releases):
        asked.append(list(releases))
        return {release: [seconds_at(release) * generator.gauss(1, spread) for _ in range(5)] for release in releases}
    return measure, asked


def from_release(first, factor):
    return lambda release: factor if RELEASES.index(release) >= RELEASES.index(first) else 1.0


def test_a_regression_is_found_at_its_release_with_few_probes():
    measure, asked = scripted(from_release("9.7", 1.25))

    finding = bisect.search(CELL, RELEASES, measure)

    assert finding.first == "9.7" and "9.7 is where" in finding.conclusion and "slower" in finding.conclusion
    assert len(asked) <= 1 + 3  # both ends, then one probe a halving of seven steps
    assert [step.comparison.family for step in finding.steps] == [bisect.comparisons_planned(len(RELEASES))] * len(finding.steps)


def test_a_speed_up_at_the_newest_release_is_found_too():
    measure, _ = scripted(from_release("9.10", 0.8))
    assert bisect.search(CELL, RELEASES, measure).first == "9.10"


def test_a_difference_spread_over_releases_is_no_single_release():
    measure, _ = scripted(lambda release: 1.04 ** RELEASES.index(release))  # 4% a release: 31% in all, no step past 5%

    finding = bisect.search(CELL, RELEASES, measure)

    assert finding.first is None and finding.conclusion.startswith("no single release explains it")


def test_ends_that_do_not_differ_leave_nothing_to_bisect():
    measure, asked = scripted(lambda release: 1.0)

    finding = bisect.search(CELL, RELEASES, measure)

    assert finding.first is None and "there is nothing to bisect" in finding.conclusion and len(asked) == 1


def test_the_releases_searched_are_those_pip_can_install_for_the_cudas_major():
    table = load_table()
    assert bisect.releases_between(table, "12.5", "9.3", "9.10") == RELEASES
    with pytest.raises(UserError, match=r"--cudnn 9\.99: not a cuDNN release pip can install for CUDA 12\.5; expected one of 8\.9, 9\.0"):
        bisect.releases_between(table, "12.5", "9.3", "9.99")
    with pytest.raises(UserError, match="expected the older release first"):
        bisect.releases_between(table, "12.5", "9.10", "9.3")


class ScriptedCudnn(FakeExecutor):
    """A GPU host whose epochs take as long as the script says for the cuDNN each cell pins."""

    def __init__(self, seconds_at):
        super().__init__()
        self.seconds_at, self.generator = seconds_at, random.Random(1)

    def run(self, cell, job, prepared, limits, run_folder) -> RawRun:
        self.jobs.append(job)
        data = measurement(job, self.seconds_at(job.expect_cudnn) * self.generator.gauss(1, 0.01))
        data["gpu"] = {"driver": "550.54", "cudnn": {"version": f"{job.expect_cudnn}.0", "path": "/usr/lib/libcudnn.so.9"}}
        return RawRun(exit_code=0, output=record_line(data) + "\n")


def test_the_command_finds_a_scripted_regression_with_normal_cells_in_one_run(tmp_path, monkeypatch, capsys):
    executor = ScriptedCudnn(from_release("9.6", 1.3))
    monkeypatch.setitem(executors.REGISTRY, "docker", lambda wanted: executor)
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    results = tmp_path / "results"

    code = cli.main(["bisect", CELL, "--cudnn", "9.3", "9.10", "-f", str(tmp_path / "matrix.yaml"), "--results", str(results)])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "cuDNN 9.6 is where gpu-cuda12.5-cudnn*-tf2.21-mnist became slower: against 9.5, -2" in out
    (run,) = results.iterdir()
    measured = {record.cell_id for record in records.load(run) if record.status == "ok"}
    assert measured == {f"gpu-cuda12.5-cudnn{release}-tf2.21-mnist" for release in ("9.3", "9.10", "9.6", "9.4", "9.5")}
    assert {job.expect_cudnn for job in executor.jobs} == {"9.3", "9.10", "9.6", "9.4", "9.5"}
    assert cli.main(["report", str(run)]) == 0  # the probes are a run like any other


def test_a_cpu_cell_or_an_unknown_one_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "matrix.yaml").write_text(MATRIX + 'cpu:\n  tensorflow: ["2.21"]\n')
    for cell, said in (("cpu-tf2.21-mnist", "a CPU cell loads no cuDNN"), ("gpu-nothing", "no cell of")):
        assert cli.main(["bisect", cell, "--cudnn", "9.3", "9.5", "-f", str(tmp_path / "matrix.yaml"), "--results", str(tmp_path)]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert said in line
