"""Progress: everything live on a terminal, one line per cell elsewhere."""

import io

from runner.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_container_output_and_an_eta_after_each_epoch():
    stream = Terminal()
    progress = Progress(stream)
    progress.cell_line("cell-a", "loading")
    progress.cell_line("cell-a", "epoch 1/4: 10.00 s (training 9.00 s, 222 images/s)")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "cell-a | loading"
    assert lines[1] == "cell-a | epoch 1/4: 10.00 s (training 9.00 s, 222 images/s)"
    assert lines[2].startswith("cell-a: epoch 1/4, ") and lines[2].endswith(" s left")


def test_in_a_log_only_build_steps_and_stage_lines():
    stream = io.StringIO()
    progress = Progress(stream)
    progress.cell_line("cell-a", "epoch 1/4: 10.00 s")
    progress.build_line("cpu-tf2.21", "Step 3/20 : RUN pip install")
    progress.build_line("cpu-tf2.21", "Collecting tensorflow==2.21.*")
    progress("[1/1] cell-a: ok (41 s)")
    assert stream.getvalue().splitlines() == ["cpu-tf2.21 | Step 3/20 : RUN pip install", "[1/1] cell-a: ok (41 s)"]
