"""What the user sees while a matrix runs, on stderr.

On a terminal: the build log and each container's output as they come, and
after each epoch the cell's elapsed time and an estimate of what is left.
Elsewhere (CI logs, a file): only build steps and one line per cell, so logs
stay readable; the full output of each cell is kept in its record's log tail.
"""

from __future__ import annotations

import sys
import time

from workload.contract import EPOCH_LINE


class Progress:
    def __init__(self, stream=None):
        self._stream = stream  # None: whatever sys.stderr is when a line is written
        self.cell_started: dict[str, float] = {}

    @property
    def stream(self):
        return self._stream or sys.stderr

    @property
    def live(self) -> bool:
        return self.stream.isatty()

    def __call__(self, message: str) -> None:
        """A line everyone sees: stages, decisions, each cell's outcome."""
        print(message, file=self.stream, flush=True)

    def build_line(self, image: str, line: str) -> None:
        if self.live or line.startswith(("Step ", "Successfully ")):
            self(f"{image} | {line}")

    def cell_line(self, cell_id: str, line: str) -> None:
        started = self.cell_started.setdefault(cell_id, time.monotonic())
        if not self.live:
            return
        self(f"{cell_id} | {line}")
        epoch = EPOCH_LINE.match(line)
        if epoch:
            done, total = int(epoch.group(1)), int(epoch.group(2))
            elapsed = time.monotonic() - started
            self(f"{cell_id}: epoch {done}/{total}, {elapsed:.0f} s elapsed, about {elapsed / done * (total - done):.0f} s left")
