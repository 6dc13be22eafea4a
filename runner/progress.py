"""What the user sees while a matrix runs, on stderr: quiet by default.

A line for each stage and decision and for each finished repeat, with an estimate of what is left
of the run, learnt from the repeats finished so far. On a terminal, one live line below them says
which cell runs, at which epoch (rich draws it); elsewhere (CI logs, a file) the start of each
repeat is a line too. A cell's own output — the framework's and the container's — goes to its log
file in the run folder (logs/), and its tail to its record; `-v` streams it here as well, and
every build line with it.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from workload.contract import EPOCH_LINE


@dataclass
class RunClock:
    """How much of a run is left: the repeats to go, at the mean time of those finished."""

    repeats: int
    finished: list[float] = field(default_factory=list)

    def left(self) -> str:
        to_go = self.repeats - len(self.finished)
        if not self.finished or to_go <= 0:
            return ""
        seconds = sum(self.finished) / len(self.finished) * to_go
        return f"about {seconds / 60:.0f} min left" if seconds >= 90 else f"about {seconds:.0f} s left"


class Progress:
    def __init__(self, stream=None, verbose: bool = False):
        self._stream = stream  # None: whatever sys.stderr is when a line is written
        self.verbose = verbose
        self.logs: dict[str, TextIO] = {}  # per running cell, its log file (dispatchers run several at once)
        self.clock: RunClock | None = None
        self.live: Live | None = None
        self.status = ""
        self.lock = threading.Lock()

    @property
    def stream(self):
        return self._stream or sys.stderr

    @property
    def terminal(self) -> bool:
        return self.stream.isatty()

    def __call__(self, message: str) -> None:
        """A line everyone sees: stages, decisions, each repeat's outcome."""
        with self.lock:
            if self.live:
                self.live.console.print(Text(message), soft_wrap=True)  # above the live line
            else:
                print(message, file=self.stream, flush=True)

    def build_line(self, image: str, line: str) -> None:
        if self.verbose or line.startswith(("Step ", "Successfully ")):
            self(f"{image} | {line}")

    def cell_line(self, cell_id: str, line: str) -> None:
        log = self.logs.get(cell_id)
        if log:
            try:
                log.write(line + "\n")
                log.flush()
            except OSError:  # a full disk: the log stops there; the record keeps the tail, and the run goes on
                self._drop_log(cell_id)
        if self.verbose:
            self(f"{cell_id} | {line}")
        epoch = EPOCH_LINE.match(line)
        if epoch and self.live:
            self._show(f"{self.status}, epoch {epoch.group(1)}/{epoch.group(2)}")

    def start_run(self, repeats: int) -> None:
        """A run of this many repeats begins: from now on each finished one says what is left, and a terminal gets the live line."""
        self.clock = RunClock(repeats)
        if self.terminal and not self.verbose:
            self.live = Live(Text(""), console=Console(file=self.stream), transient=True, refresh_per_second=4)
            self.live.start()

    def start_repeat(self, cell_id: str, label: str, log: Path | None) -> None:
        if log:
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
                self.logs[cell_id] = open(log, "a", encoding="utf-8")
            except OSError as error:  # a full or read-only disk costs the log, not the run
                self(f"warning: no log for this repeat at {log} ({error.strerror or error}); its record keeps the output's tail")
        self.status = label
        if self.live:
            self._show(label)
        else:
            self(label)

    def end_repeat(self, cell_id: str, outcome: str, seconds: float) -> None:
        self._drop_log(cell_id)
        if self.clock:
            self.clock.finished.append(seconds)
        left = self.clock.left() if self.clock else ""
        self(f"{outcome}{'; ' + left if left else ''}")

    def end_run(self) -> None:
        for cell_id in list(self.logs):
            self._drop_log(cell_id)
        if self.live:
            self.live.stop()
            self.live = None
        self.clock = None

    def _drop_log(self, cell_id: str) -> None:
        log = self.logs.pop(cell_id, None)
        if log:
            try:
                log.close()
            except OSError:
                pass  # what a full disk would not take is lost from the log alone

    def _show(self, status: str) -> None:
        left = self.clock.left() if self.clock else ""
        self.live.update(Text(f"{status}{'; run ' + left if left else ''}"))
