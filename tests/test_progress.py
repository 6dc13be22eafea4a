"""Progress: quiet by default — a line per finished repeat with what is left of the run, a live line on a terminal — with
each cell's own output in its log file, and all of it with -v."""

import io
import re

from fake_executor import FakeExecutor
from runner import session
from runner.progress import Progress, RunClock

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NOISE = [f"I0000 framework says something at start-up, line {n}" for n in range(30)]


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Chatty(FakeExecutor):
    """A workload that prints what frameworks print: thirty lines of start-up, then its epochs."""

    def __init__(self, progress):
        super().__init__()
        self.progress = progress

    def run(self, cell, job, prepared, limits, run_folder):
        for line in [*NOISE, *(f"epoch {n}/{job.epochs}: 1.00 s (training 0.80 s, 80 images/s)" for n in range(1, job.epochs + 1))]:
            self.progress.cell_line(cell.id, line)
        return super().run(cell, job, prepared, limits, run_folder)


def run_three_cells(tmp_path, progress):
    path = tmp_path / "matrix.yaml"
    small = "model: mnist, epochs: 3, train_images: 64, validation_images: 32"
    path.write_text(f'workloads: {{a: {{{small}}}, b: {{{small}}}, c: {{{small}}}}}\ncpu: {{tensorflow: ["2.21"]}}\n'
                    "repeats: 2\nbuild: {ca_certificates: []}\n")
    return session.run(session.plan(path), Chatty(progress), tmp_path / "results", None, None, progress)


def test_on_a_terminal_a_run_of_three_cells_prints_a_few_lines_per_repeat_and_keeps_the_rest_in_logs(tmp_path):
    terminal = Terminal()
    result = run_three_cells(tmp_path, Progress(terminal))

    shown = [line for line in ANSI.sub("", terminal.getvalue()).replace("\r", "\n").splitlines() if line.strip()]
    assert len(shown) <= 10 * 6  # 3 cells x 2 repeats, the plan and the summary lines included
    assert not any("framework says something" in line for line in shown)
    assert any(re.match(r"\[6/6\] cpu-tf2\.21-[abc] \(repeat 2/2\): ok \(", line) for line in shown)  # the order: the seed's
    log = (result.folder / "logs" / "cpu-tf2.21-a.1.log").read_text().splitlines()
    assert log[:30] == NOISE and log[-1] == "epoch 3/3: 1.00 s (training 0.80 s, 80 images/s)"
    assert sorted(path.name for path in (result.folder / "logs").iterdir()) == [
        f"cpu-tf2.21-{cell}.{repeat}.log" for cell in "abc" for repeat in (1, 2)]


def test_in_a_log_each_repeat_starts_and_ends_on_a_line_and_the_end_says_what_is_left(tmp_path):
    stream = io.StringIO()
    run_three_cells(tmp_path, Progress(stream))
    lines = stream.getvalue().splitlines()
    assert any(re.fullmatch(r"\[1/6\] cpu-tf2\.21-[abc] \(repeat 1/2\)", line) for line in lines)
    ends = [line for line in lines if line.startswith("[") and ": ok (" in line]
    assert len(ends) == 6 and all(end.endswith(" s left") for end in ends[:-1]) and ends[-1].endswith(" s)")  # the last: none left
    assert not any("framework says something" in line for line in lines)


def test_verbose_streams_every_cell_and_build_line():
    stream = io.StringIO()
    progress = Progress(stream, verbose=True)
    progress.cell_line("cell-a", "loading")
    progress.build_line("cpu-tf2.21", "Collecting tensorflow==2.21.*")
    assert stream.getvalue().splitlines() == ["cell-a | loading", "cpu-tf2.21 | Collecting tensorflow==2.21.*"]


def test_quiet_builds_show_their_steps_only():
    stream = io.StringIO()
    progress = Progress(stream)
    progress.build_line("cpu-tf2.21", "Step 3/20 : RUN pip install")
    progress.build_line("cpu-tf2.21", "Collecting tensorflow==2.21.*")
    assert stream.getvalue().splitlines() == ["cpu-tf2.21 | Step 3/20 : RUN pip install"]


def test_what_is_left_is_learnt_from_the_repeats_finished():
    clock = RunClock(repeats=5)
    assert clock.left() == ""  # nothing finished: nothing to learn from
    clock.finished += [10.0, 20.0]
    assert clock.left() == "about 45 s left"
    clock.finished += [60.0, 30.0]
    assert clock.left() == "about 30 s left"
    clock.finished += [30.0]
    assert clock.left() == ""
