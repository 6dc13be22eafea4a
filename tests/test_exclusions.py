"""The session with an executor that will not make some environments, as local will not: their cells are excluded, not failed."""

import io

from fake_executor import FakeExecutor
from runner import session
from runner.executors import PrepareFailure, Unsuitable
from runner.progress import Progress

SMALL = "model: mnist, epochs: 2, train_images: 64, validation_images: 32"
MATRIX = f"""workloads: {{crash: {{{SMALL}, fault: crash}}, garbage: {{{SMALL}, fault: garbage}}}}
cpu: {{tensorflow: ["2.21"]}}
build: {{ca_certificates: []}}
"""


def plan_of(folder, matrix, pattern=None):
    (folder / "matrix.yaml").write_text(matrix)
    return session.plan(folder / "matrix.yaml", pattern)


class Excluding(FakeExecutor):
    """A fake that, like local, will not make some environments."""

    def __init__(self, unsuitable, **options):
        super().__init__(**options)
        self.unsuitable = set(unsuitable)
        self.asked = []

    def prepare(self, spec):
        if spec.name in self.unsuitable:
            self.prepared.append(spec.name)
            return Unsuitable(spec, f"{spec.name}: not here")
        return super().prepare(spec)

    def unavailable(self, kind, probe):
        self.asked.append(probe.spec.name)
        return super().unavailable(kind, probe)


GPU_MATRIX = """workloads: {mnist: {model: mnist, epochs: 2, train_images: 64, validation_images: 32}}
cpu: {tensorflow: ["2.20"]}
gpu: {cuda: ["12.5"], cudnn: ["9.3"], tensorflow: ["2.20", "2.21"]}
build: {ca_certificates: []}
"""


def test_cells_of_an_environment_the_executor_will_not_make_are_excluded_not_failed(tmp_path):
    plan = plan_of(tmp_path, MATRIX, "cpu-tf2.21-[cg]")
    result = session.run(plan, Excluding({"cpu-tf2.21"}), tmp_path / "results", None, 1, Progress(io.StringIO()))
    assert sorted((r.cell_id, r.status, r.reason, r.executor) for r in result.records) == [
        ("cpu-tf2.21-crash", "excluded", "cpu-tf2.21: not here", "fake"),
        ("cpu-tf2.21-garbage", "excluded", "cpu-tf2.21: not here", "fake"),
    ]
    assert result.failed == 0


def test_build_says_which_environments_are_excluded_and_does_not_fail_for_them(tmp_path):
    said = io.StringIO()
    prepared = session.build(plan_of(tmp_path, MATRIX), Excluding({"cpu-tf2.21"}), Progress(said))
    assert not any(isinstance(environment, PrepareFailure) for environment in prepared)
    assert "cpu-tf2.21: excluded: cpu-tf2.21: not here" in said.getvalue()


def test_gpu_cells_are_asked_about_with_any_environment_the_executor_makes(tmp_path):
    executor = Excluding({"cpu-tf2.20", "gpu-cuda12.5-cudnn9.3-tf2.20"}, no_gpu="no GPU here")
    records = session.run(plan_of(tmp_path, GPU_MATRIX), executor, tmp_path / "results", None, 1, Progress(io.StringIO())).records
    assert executor.asked == ["gpu-cuda12.5-cudnn9.3-tf2.21"]
    assert {r.cell_id: r.status for r in records} == {"cpu-tf2.20-mnist": "excluded", "gpu-cuda12.5-cudnn9.3-tf2.20-mnist": "skipped",
                                                      "gpu-cuda12.5-cudnn9.3-tf2.21-mnist": "skipped"}
