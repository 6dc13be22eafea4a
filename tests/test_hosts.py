"""Host as a blocking factor (runner/strata.py): two cells are compared within the hosts that ran them, never across hosts.

The run loop is the real one (session.run_placed); the placement is a fake registered in
runner.placements.REGISTRY with two hosts, the second 20% slower, that take the runs in turn as
SSH's queue hands them to hosts alike (the SSH placement itself is tested with real engines, tests/test_ssh.py).
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from fake_executor import FakeExecutor, measurement, record_line
from runner import datasets, placements, report, run_plan, session, strata
from runner.analysis import analyze
from runner.outcome import RawRun
from runner.progress import Progress
from runner.stats import judge, weigh
from host_runs import SMALL

HOSTS = {"box-a": 1.0, "box-b": 1.2}  # seconds per epoch on each host: box-b is 20% slower
TWO_CELLS = f'workloads: {{mnist: {{{SMALL}}}}}\ncpu: {{tensorflow: ["2.20", "2.21"]}}\nrepeats: 6\nbuild: {{ca_certificates: []}}\n'


class HostExecutor(FakeExecutor):
    """A host's executor: every cell alike, at the host's speed, with 1% spread between repeats."""

    def __init__(self, speed: float, rng: random.Random):
        super().__init__()
        self.speed, self.rng = speed, rng

    def run(self, cell, job, prepared, limits, run_folder) -> RawRun:
        self.jobs.append(job)
        return RawRun(exit_code=0, output=record_line(measurement(job, self.speed * self.rng.gauss(1.0, 0.01))) + "\n")


class TwoHosts:
    """Two hosts that take the runs in turn, whichever cell each run is of, as SSH's queue hands them out."""

    name = "local"  # resumed and reported as a run here
    executor_name = "fake"

    def __init__(self, plan, asked, progress):
        rng = random.Random(1)
        self.plan, self.progress = plan, progress
        self.hosts = {host: HostExecutor(speed, rng) for host, speed in HOSTS.items()}

    def start(self):
        pass

    def facts(self):
        return {"executor": "fake", "hosts": list(HOSTS)}

    def resume(self, run_folder):
        pass

    def prepare(self, run):
        self.run = run
        self.data = {cell.workload.name: datasets.prepare(cell.workload, self.progress) for cell in run.todo}
        return run_plan.Here()

    def announce(self, to_run):
        pass

    def carry_out(self, turn, keeper):
        host = list(self.hosts)[(turn.number - 1) % len(self.hosts)]
        executor = self.hosts[host]
        environment = executor.prepare(turn.cell.environment)
        record = session.run_cell(executor, self.plan.matrix, turn.cell, environment, self.data[turn.cell.workload.name], self.run.folder)
        keeper.keep(dataclasses.replace(record, repeat=turn.repeat, environment={**record.environment, "host": host}))

    def finish(self, keeper):
        pass

    def interrupt(self, run_folder):
        pass

    def clean_up(self, run_folder, state):
        return ""


@pytest.fixture
def two_hosts(monkeypatch):
    monkeypatch.setitem(placements.REGISTRY, "two-hosts", TwoHosts)


def test_two_identical_cells_on_hosts_20_percent_apart_are_not_called_different(tmp_path, two_hosts):
    """Done when of issue 23. Before hosts were strata (main at 132c30f), each host took one cell's every repeat and the
    report called the cell on the slower host slower."""
    (tmp_path / "matrix.yaml").write_text(TWO_CELLS)
    plan = session.plan(tmp_path / "matrix.yaml")
    placement = placements.make("two-hosts", plan, placements.Asked(), Progress())
    result = session.run_placed(plan, placement, tmp_path / "results", None, None, Progress())

    (pair,) = analyze(result.records).pairs
    assert pair.comparison.verdict not in ("faster", "slower"), pair.comparison.words
    assert pair.comparison.verdict in ("same", "not_comparable"), pair.comparison.words


def by_hosts(**seconds: list[float]) -> dict[str, list[float]]:
    return {host.replace("_", "-"): values for host, values in seconds.items()}


def test_a_comparison_over_hosts_takes_the_host_as_a_stratum():
    same = [1.00, 1.01, 0.99]
    evidence = strata.weigh_by_host(by_hosts(box_a=same, box_b=[1.2 * s for s in same]),
                                    by_hosts(box_a=[1.005, 0.995, 1.0], box_b=[1.2 * s for s in (1.0, 1.01, 0.995)]))
    assert evidence.hosts == ("box-a", "box-b") and evidence.repeats == (6, 6) and not evidence.refused
    assert evidence.ci_low < 1.0 < evidence.ci_high and abs(evidence.ratio - 1) < 0.01
    (judged,) = judge([evidence])
    assert judged.verdict == "same" and judged.hosts == ("box-a", "box-b")
    # Pooled over the hosts as if they were one, the 20% between them is noise: no verdict at all.
    assert judge([weigh(same + [1.2 * s for s in same], [1.005, 0.995, 1.0] + [1.2 * s for s in (1.0, 1.01, 0.995)])])[0].verdict == "no_difference"
    # A real 10% difference within each host is found through the hosts' 20%.
    faster = strata.weigh_by_host(by_hosts(box_a=same, box_b=[1.2 * s for s in same]),
                                  by_hosts(box_a=[s / 1.1 for s in same], box_b=[1.2 * s / 1.1 for s in same[::-1]]))
    assert judge([faster])[0].verdict == "faster" and abs(faster.ratio - 1.1) < 1e-9


def test_hosts_that_did_not_run_both_cells_alike_are_not_pooled_and_the_reason_is_given():
    confounded = strata.weigh_by_host(by_hosts(box_a=[1.0, 1.01, 0.99]), by_hosts(box_b=[1.2, 1.21, 1.19]))
    (judged,) = judge([confounded])
    assert judged.verdict == "not_comparable" and judged.family == 0
    assert judged.words == ("not comparable: host box-a ran the baseline (3 repeat(s)) but not the other cell, "
                            "so their difference would be the hosts'")
    assert strata.unbalanced(by_hosts(box_a=[1.0] * 5, box_b=[1.0]), by_hosts(box_a=[1.0] * 2, box_b=[1.0] * 4)) == (
        "host box-a ran the baseline 5 time(s) and the other cell 2: too unequal to pool over hosts")
    assert strata.unbalanced(by_hosts(box_a=[1.0] * 3, box_b=[1.0] * 2), by_hosts(box_a=[1.0] * 2, box_b=[1.0] * 3)) == ""
    # A refused pair is no test: the others' correction is over the comparisons made.
    tested = strata.weigh_by_host({"local": [1.0, 1.01, 0.99]}, {"local": [1.0, 1.0, 1.01]})
    assert [c.family for c in judge([confounded, tested])] == [1, 1]


def test_records_without_a_host_are_one_host_and_compared_as_before():
    values = [1.0, 1.02, 0.98, 1.01, 0.99]
    assert strata.by_host(values, ()) == {strata.LOCAL: values}
    one_host = strata.weigh_by_host({strata.LOCAL: values}, {strata.LOCAL: [v / 1.2 for v in values]})
    assert dataclasses.replace(one_host, hosts=()) == weigh(values, [v / 1.2 for v in values])


def test_the_json_pairs_carry_the_hosts_and_the_reason(tmp_path, two_hosts):
    (tmp_path / "matrix.yaml").write_text(TWO_CELLS)
    plan = session.plan(tmp_path / "matrix.yaml")
    result = session.run_placed(plan, placements.make("two-hosts", plan, placements.Asked(), Progress()), tmp_path / "results",
                                None, None, Progress(), seed=5)
    (pair,) = json.loads(report.as_json(analyze(result.records)))["comparisons"]
    assert pair["hosts"] == ["box-a", "box-b"] or pair["hosts"] == ["box-b", "box-a"]
    assert (pair["verdict"] == "not_comparable") == (pair["reason"] is not None)


def test_the_text_report_says_why_a_pair_is_not_comparable(tmp_path, two_hosts):
    (tmp_path / "matrix.yaml").write_text(TWO_CELLS)
    plan = session.plan(tmp_path / "matrix.yaml")
    result = session.run_placed(plan, placements.make("two-hosts", plan, placements.Asked(), Progress()), tmp_path / "results",
                                None, None, Progress(), seed=0)  # seed 0: box-a takes the baseline 5 times, the other cell once
    text = report.as_text(analyze(result.records))
    assert "| not comparable |" in text
    assert ("- cpu-tf2.21-mnist against cpu-tf2.20-mnist: host box-a ran the baseline 5 time(s) and the other cell 1: "
            "too unequal to pool over hosts") in text.splitlines()
