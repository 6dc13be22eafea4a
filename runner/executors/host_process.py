"""The workload as a plain process on this host -> a RawRun: what the venv and local executors share.

Both run `python workload/benchmark.py --job JSON` with an interpreter and differ
only in how they prepare it: venv builds a virtualenv per environment, local
takes the interpreter it is given as it is. The output is shown as it comes and
kept whole; at the time limit, on an interrupt, and when the runner dies, the
workload's whole process group is killed.

Without isolation nothing limits a cell's memory or processes, and nothing tells
running out of memory apart from any other kill: a cell the kernel killed shows
as a negative exit code (-9), and the outcome ladder reports it as such.
"""

from __future__ import annotations

import codecs
import ctypes
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from runner.cells import Cell
from runner.config import Limits
from runner.errors import UserError
from runner.environments import EnvironmentSpec
from runner.executors import Prepared
from runner.outcome import RawRun
from runner.progress import Progress
from workload.contract import RECORD_PREFIX, JobSpec

BENCHMARK = Path(__file__).resolve().parents[2] / "workload" / "benchmark.py"
ISOLATION = "none"
NO_LIMITS = ("none: cells run as plain processes, so limits.memory and limits.pids do not apply, "
             "and running out of memory shows as a kill (exit code -9), not as out of memory")
MEMORY_FAULT_REFUSED = ("not run: the memory fault would fill this host's memory, as no container limits it; "
                        "run it with --executor docker")
PR_SET_PDEATHSIG = 1  # from linux/prctl.h
# Looked up here, not in the child between fork and exec, where loading a library is unsafe.
PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

# Asked of an interpreter, in it: what it is and every distribution it can import.
QUERY = """
import importlib.metadata, json, os, platform, sys
print(json.dumps({"executable": sys.executable, "version": platform.python_version(),
                  "real_path": os.path.realpath(sys.executable),
                  "packages": {d.metadata["Name"]: d.version for d in importlib.metadata.distributions() if d.metadata["Name"]}}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter on this host, as it describes itself."""

    executable: str  # what to run: its sys.executable (for a venv, the venv's python, not the one it links to)
    version: str  # "3.11.7"
    real_path: str  # the binary it is, links resolved
    packages: dict[str, str]  # canonical distribution name -> installed version

    def installed(self, requirements: tuple[str, ...]) -> str:
        """The installed versions of the packages the requirements name: "tensorflow==2.21.0 keras==3.15.1"."""
        names = [requirement.name for requirement in map(parse, requirements) if requirement]
        versions = [(name, self.packages.get(canonicalize_name(name))) for name in names]
        return " ".join(f"{name}=={version}" for name, version in versions if version)


def interpreter(python: str) -> Interpreter:
    """Ask the interpreter once what it is and has; one that cannot answer is a usage error."""
    try:
        asked = subprocess.run([python, "-c", QUERY], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError(f"cannot run the Python interpreter {python} ({getattr(error, 'strerror', None) or error}): check --python")
    try:
        data = json.loads(asked.stdout.strip().splitlines()[-1])  # the last line: a sitecustomize may have printed before it
    except (IndexError, ValueError):
        last = (asked.stderr.strip().splitlines() or [f"exit code {asked.returncode}"])[-1]
        raise UserError(f"the Python interpreter {python} cannot say what it has installed ({last}): it needs Python 3.8 or later")
    packages = {canonicalize_name(name): version for name, version in data.pop("packages").items()}
    return Interpreter(**data, packages=packages)


def parse(line: str) -> Requirement | None:
    """A pip requirement, less its options (a lock's --hash), or None for what names no package (an option line such as --extra-index-url)."""
    if line.lstrip().startswith("-"):
        return None
    try:
        return Requirement(line.split(" --")[0])
    except InvalidRequirement:
        return None


def provenance(spec: EnvironmentSpec, python: Interpreter, **more: str) -> tuple[tuple[str, str], ...]:
    """A record's `environment`: where it ran, without isolation, and what it really had installed."""
    return tuple({"name": spec.name, "isolation": ISOLATION, "python": python.executable, "python_version": python.version,
                  **more, "installed": python.installed(spec.requirements + spec.libraries)}.items())


@dataclass(frozen=True)
class Finished:
    exit_code: int  # negative: killed by that signal
    output: str  # stdout and stderr together, whole
    timed_out: bool


def follow(command: list[str], on_line: Callable[[str], None], env: dict[str, str] | None = None,
           timeout_seconds: float | None = None) -> Finished:
    """Run a command in a process group of its own, passing each line of its output on as it comes.

    The group is killed at the deadline, and on anything that interrupts the reading (Ctrl-C,
    SIGTERM): whatever ends this, nothing it started is left running. Its own session keeps a
    Ctrl-C on the terminal from reaching it directly, so that the runner decides how it ends.
    """
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          start_new_session=True, preexec_fn=_die_with_runner if PRCTL else None) as process:
        try:
            lines, timed_out = _read(process, on_line, deadline)
        except BaseException:
            _kill_group(process)
            raise
        if timed_out:
            _kill_group(process)
        return Finished(process.wait(), "\n".join(lines), timed_out)


def _read(process: subprocess.Popen, on_line: Callable[[str], None], deadline: float | None) -> tuple[list[str], bool]:
    """The process's output lines until it closes its output, and whether the deadline came first."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines, pending = [], ""
    descriptor = process.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(descriptor, selectors.EVENT_READ)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return lines + [pending] * bool(pending), True
            if not selector.select(remaining):
                continue
            chunk = os.read(descriptor, 65536)
            complete = (pending + decoder.decode(chunk, final=not chunk)).split("\n")
            pending = complete.pop()
            if not chunk and pending:  # a last line without its newline
                complete.append(pending)
            for line in complete:
                lines.append(line)
                on_line(line)
            if not chunk:
                return lines, False


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the process and all it started; only called before it is waited for, so its id cannot have been reused."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # every process of the group has ended already


def _die_with_runner() -> None:
    """In the child, before it runs: be killed when the runner dies, even by kill -9, which no handler of ours sees."""
    PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def visible_devices(kind: str, devices: str) -> str | None:
    """CUDA_VISIBLE_DEVICES for a cell: none for CPU cells, so that they never time a GPU the host has; None leaves the host's."""
    if kind != "gpu" or devices == "none":
        return ""
    return None if devices == "all" else devices


def gpu_unavailable(devices: str) -> str | None:
    """Why GPU cells cannot have the GPUs asked for on this host, or None; asked of nvidia-smi, as the driver sees them."""
    if devices == "none":
        return None  # the cells run without one, and the workload's own check says so, as in containers
    if shutil.which("nvidia-smi") is None:
        return "no GPU on this host: nvidia-smi, which comes with the NVIDIA driver, is not installed"
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no GPU on this host: nvidia-smi -L failed ({error})"
    gpus = [line for line in listing.stdout.splitlines() if line.startswith("GPU ")]
    if listing.returncode != 0 or not gpus:
        said = (listing.stdout + listing.stderr).strip().splitlines()
        return f"no GPU on this host: nvidia-smi -L lists none ({said[-1] if said else f'exit code {listing.returncode}'})"
    missing = [index for index in devices.split(",") if int(index) >= len(gpus)] if devices != "all" else []
    if missing:
        return f"no GPU {','.join(missing)} on this host: nvidia-smi -L lists {len(gpus)}; check gpu.devices or --gpus"
    return None


class ProcessExecutor:
    """An executor that runs the workload as a plain process on this host; subclasses say how to prepare an environment."""

    name: str
    isolation = ISOLATION

    def __init__(self, python: str, gpu_devices: str, progress: Progress):
        self.python = interpreter(python)  # asked now, so that a wrong --python stops the run before anything is done
        self.gpu_devices = gpu_devices  # "all", "none" or indices: what GPU cells are given
        self.progress = progress

    def describe_host(self) -> dict:
        return {"python": self.python.executable, "python_version": self.python.version, "limits": NO_LIMITS}

    def unavailable(self, kind: str, probe: Prepared) -> str | None:
        return gpu_unavailable(self.gpu_devices) if kind == "gpu" else None

    def gpu_outlook(self) -> str | None:
        return gpu_unavailable(self.gpu_devices)  # nvidia-smi on this host: as cheap before as after

    def run(self, cell: Cell, job: JobSpec, prepared: Prepared, limits: Limits, run_folder: Path) -> RawRun:
        if job.fault == "memory":
            return RawRun(exit_code=None, output="", error=MEMORY_FAULT_REFUSED)

        def show(line: str) -> None:
            if not line.startswith(RECORD_PREFIX):
                self.progress.cell_line(cell.id, line.rstrip("\r"))

        command = [prepared.handle, str(BENCHMARK), "--job", job.to_json()]
        try:
            finished = follow(command, show, self._environment(cell, prepared), cell.workload.timeout_minutes * 60.0)
        except OSError as error:
            return RawRun(exit_code=None, output="", error=f"cannot start {prepared.handle}: {error.strerror or error}")
        return RawRun(exit_code=finished.exit_code, output=finished.output, timed_out=finished.timed_out)

    def _environment(self, cell: Cell, prepared: Prepared) -> dict[str, str]:
        """The host's variables, the spec's and the environment's own; unbuffered, so that progress shows as it comes."""
        variables = {**os.environ, **dict(prepared.spec.variables), **dict(prepared.variables), "PYTHONUNBUFFERED": "1"}
        visible = visible_devices(cell.kind, self.gpu_devices)
        if visible is not None:
            variables["CUDA_VISIBLE_DEVICES"] = visible
        return variables

    def cleanup(self, run_folder: Path) -> int:
        """Nothing is left to remove: `run` kills the workload's process group however it ends, and it dies with the runner."""
        return 0
