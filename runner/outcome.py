"""A cell's outcome from what its run left behind. Pure: no executor, no files.

Whatever executor ran the workload, the same ladder decides: the workload's own
verdict (a failed GPU or cuDNN check) first, then the time limit, running out
of memory, a non-zero exit, and an output without a readable measurement.
A failure is data: each rung gives a reason a user can act on.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass

from workload.contract import RECORD_PREFIX, ContractError, Measurement

LOG_TAIL_LINES = 20
MAX_REASON = 300  # characters of the workload's last words a reason quotes
# TensorFlow ends an error in a graph (tf.data's input pipeline) with the ops it ran in: "[[{{node ReadFile}}]]",
# "[[IteratorGetNext]] [Op:__inference_...]". The cause ("/data/x.jpg; Is a directory") is the line before them.
OP_TRAILER = re.compile(r"\[\[.*\]\](?:\s*\[Op:[^\]]*\])?")
GRAPH_ERROR = re.compile(r"(?:[\w.]+\.)?(\w+): Graph execution error:")  # the exception's class comes first, the cause after


@dataclass(frozen=True)
class RawRun:
    """What an executor saw of one run of the workload."""

    exit_code: int | None  # None when the workload never ran to an exit status
    output: str  # stdout and stderr together, as printed
    timed_out: bool = False
    out_of_memory: bool = False
    error: str = ""  # why the executor could not run it at all; "" when it ran
    environment: tuple[tuple[str, str], ...] = ()  # the executor's provenance of where it ran


@dataclass(frozen=True)
class Outcome:
    status: str  # "ok" or "failed"
    reason: str
    measurement: Measurement | None
    log_tail: str


def decide(raw: RawRun, time_limit: str, memory_limit: str) -> Outcome:
    """The outcome ladder. time_limit and memory_limit name the limits and the keys that set them."""
    tail, record_line = split_output(raw.output)
    log_tail = "\n".join(tail)
    measurement, unreadable = read_measurement(record_line)
    if raw.error:
        return Outcome("failed", raw.error, measurement, log_tail)
    if measurement is not None and measurement.failure:
        # The workload's own checks failed (no GPU, wrong cuDNN): keep what it saw as evidence.
        return Outcome("failed", measurement.failure, measurement, log_tail)
    if raw.timed_out:
        return Outcome("failed", f"exceeded its time limit of {time_limit}", None, log_tail)
    if raw.out_of_memory:
        return Outcome("failed", f"killed for running out of memory ({memory_limit})", None, log_tail)
    if raw.exit_code != 0:
        return Outcome("failed", f"the workload exited with code {raw.exit_code}: {_last_words(tail)}", None, log_tail)
    if measurement is None or not measurement.epochs:
        reason = "the workload printed no readable result record" + (f" ({unreadable})" if unreadable else "")
        return Outcome("failed", reason, None, log_tail)
    if len(measurement.epochs) <= measurement.warmup_epochs:
        return Outcome("failed", f"the workload's result has no timed epoch ({len(measurement.epochs)} epoch(s), "
                                 f"{measurement.warmup_epochs} of them warm-up)", None, log_tail)
    return Outcome("ok", "", measurement, log_tail)


def split_output(output: str) -> tuple[deque[str], str | None]:
    """The last lines of the output, and the last record line in it."""
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    record_line = None
    for line in output.splitlines():
        if line.startswith(RECORD_PREFIX):
            record_line = line[len(RECORD_PREFIX):]
        else:
            tail.append(line)
    return tail, record_line


def read_measurement(record_line: str | None) -> tuple[Measurement | None, str]:
    """The measurement on the record line, or None and why it could not be read."""
    try:
        data = json.loads(record_line) if record_line is not None else None
    except ValueError:
        return None, ""  # cut short or garbled: nothing to say beyond "no readable record"
    if not isinstance(data, dict):
        return None, ""
    try:
        return Measurement.from_dict(data), ""
    except ContractError as error:
        return None, str(error)


def _last_words(lines) -> str:
    """The workload's last meaningful line: the cause of its failure, with TensorFlow's exception class where it split the two."""
    meaningful = [line.strip() for line in lines if line.strip() and not OP_TRAILER.fullmatch(line.strip())]
    if not meaningful:
        return "no output"
    error_class = next((found[1] for line in reversed(meaningful) if (found := GRAPH_ERROR.fullmatch(line))), None)
    words = f"{error_class}: {meaningful[-1]}" if error_class and not GRAPH_ERROR.fullmatch(meaningful[-1]) else meaningful[-1]
    return words if len(words) <= MAX_REASON else words[:MAX_REASON] + "..."
