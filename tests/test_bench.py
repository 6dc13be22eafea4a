"""The pure helpers of bench/: no runs, no timings asserted (bench/RESULTS.md holds the figures)."""

import ast
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import common  # noqa: E402
import executor_overhead  # noqa: E402
import flop_counts  # noqa: E402
import runner_cost  # noqa: E402


def test_a_section_is_replaced_between_its_markers_and_the_rest_is_kept():
    text = "# Results\n\n## GPU check\nkept\n\n<!-- bench:cache -->\nold\n<!-- /bench:cache -->\n\ntail\n"
    replaced = common.replace_section(text, "cache", "new\n")
    assert replaced == "# Results\n\n## GPU check\nkept\n\n<!-- bench:cache -->\nnew\n<!-- /bench:cache -->\n\ntail\n"
    appended = common.replace_section(replaced, "scaling", "more")
    assert appended.startswith(replaced.rstrip("\n")) and appended.endswith("<!-- bench:scaling -->\nmore\n<!-- /bench:scaling -->\n")


def test_flop_counts_set_each_frameworks_count_against_the_layer_count_and_skip_cells_without_one(tmp_path):
    def record(framework, counted, status="ok"):
        model = {"training_flops_per_image": 2e6, "counted_flops": counted}
        return json.dumps({"workload": "mnist", "axes": {"framework": framework}, "status": status,
                           "measurement": {"model": model, "settings": {"batch_size": 64}}})

    (tmp_path / "results.jsonl").write_text("\n".join([
        record("jax", {"method": "XLA", "training_flops_per_image": 2.05e6}), record("torch", "not counted: RuntimeError: x"),
        record("tensorflow", {"method": "profiler", "training_flops_per_image": 1e6}, status="failed")]))
    assert flop_counts.rows([tmp_path]) == [["mnist", "jax", "-", 64, "2.0", "2.0", "1.025", "XLA"]]


def test_the_fitted_line_recovers_constant_and_slope():
    assert runner_cost.fit_line([1, 4, 16, 1, 4, 16], [3.5, 5.0, 11.0, 3.5, 5.0, 11.0]) == pytest.approx((3.0, 0.5))


@pytest.mark.parametrize("ratio, high, verdict", [
    (1.01, 1.02, "met (<= 1.03)"), (1.01, 1.08, "not shown: the ratio is within 1.03, its interval is not"),
    (1.01, None, "not shown: the ratio is within 1.03, its interval is not"), (1.05, 1.06, "not met (> 1.03)"),
])
def test_a_target_is_met_only_when_the_interval_is_within_it(ratio, high, verdict):
    assert common.judged(ratio, high, 1.03) == verdict


def test_the_runners_part_before_the_first_step_leaves_out_the_frameworks():
    row = {"launched": 100.0, "measurement": {"timeline": {"process_started": 100.5, "framework_imported": 104.0, "inputs_ready": 104.25,
                                                           "model_built": 106.0, "first_step_ended": 120.0, "trained": 150.0}}}
    assert executor_overhead.runner_overhead_to_first_step(row) == pytest.approx(0.75)
    assert list(executor_overhead.stages(row).values()) == pytest.approx([0.5, 3.5, 0.25, 1.75, 14.0, 30.0])


def test_no_benchmark_imports_from_the_tests():
    """What both need (a Slurm cluster, sshd hosts) lives in harness/: a benchmark that reached into tests/ would break with them."""
    repo = Path(__file__).resolve().parent.parent
    test_modules = {path.stem for path in (repo / "tests").glob("*.py")} | {"tests"}
    for script in (repo / "bench").glob("*.py"):
        tree = ast.parse(script.read_text(), str(script))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        paths = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value == "tests"}
        assert not imported & test_modules and not paths, f"{script.name} imports from tests/: {sorted(imported & test_modules) or 'tests'}"
