"""The venv executor: a virtualenv per environment spec, built once with pip and reused.

For hosts with a package index but no Docker. A venv is named by its spec and a
hash of everything it is made from (requirements, libraries, variables, the
interpreter), so an unchanged matrix rebuilds nothing and a changed spec gets a
new one. It is built in a folder of its own and put under its name only once
pip has succeeded, so a failed or interrupted build is never taken for a ready one,
and of runners building the same venv at once (jobs on several nodes sharing
$CUDNN_MATRIX_VENVS) the first to finish names it, and the others use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections import deque
from pathlib import Path

from packaging.version import InvalidVersion, Version

from runner.environments import EnvironmentSpec
from runner.errors import UserError
from runner.executors import Prepared, PrepareFailure
from runner.executors.host_process import Interpreter, ProcessExecutor, follow, interpreter, provenance
from runner.locks import INSTALLER, REPORTING_PIP, Lock, from_reports
from runner.outcome import LOG_TAIL_LINES
from runner.progress import Progress

VENVS_VARIABLE = "CUDNN_MATRIX_VENVS"
LOCK_FOLDER = "lock"  # in a venv: pip's installation reports, as /opt/lock in an image


def venvs_folder() -> Path:
    """Where venvs are kept: $CUDNN_MATRIX_VENVS, else the user's cache folder."""
    chosen = os.environ.get(VENVS_VARIABLE)
    if chosen:
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cudnn-matrix" / "venvs"


def venv_name(spec: EnvironmentSpec, python: Interpreter) -> str:
    """The spec's name and a hash of all the venv is made from; variables are set at run time, hashed all the same, as for images."""
    recipe = {"requirements": spec.requirements, "libraries": spec.libraries, "variables": dict(spec.variables),
              "python": python.version, "interpreter": python.real_path, "locked": "pip install --report"}
    return f"{spec.name}-{hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]}"


class VenvExecutor(ProcessExecutor):
    name = "venv"

    def __init__(self, python: str, gpu_devices: str, progress: Progress, folder: Path | None = None):
        super().__init__(python, gpu_devices, progress)
        self.folder = folder or venvs_folder()

    def describe_host(self) -> dict:
        return {**super().describe_host(), "venvs": str(self.folder)}

    def prepare(self, spec: EnvironmentSpec) -> Prepared | PrepareFailure:
        venv = self.folder / venv_name(spec, self.python)
        if venv.exists():  # only a complete build is ever given this name
            self.progress(f"{spec.name}: up to date ({venv})")
        else:
            failure = self._build(spec, venv)
            if failure:
                return failure
        return self._prepared(spec, venv.resolve())

    def outlook(self, spec: EnvironmentSpec) -> str:
        venv = self.folder / venv_name(spec, self.python)
        return f"venv {venv} up to date" if venv.exists() else f"venv {venv} to build with pip"

    def _build(self, spec: EnvironmentSpec, venv: Path) -> PrepareFailure | None:
        self.progress(f"{spec.name}: building {venv} with Python {self.python.version} ({self.python.executable})")
        self.folder.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{venv.name}.", dir=self.folder))
        kept = False
        try:
            failure = self.install(spec, building)
            kept = failure is None and _put_in_place(building, venv)
            if failure is None and not kept:
                self.progress(f"{spec.name}: another runner finished {venv} first: using it")
            return failure
        finally:
            if not kept:  # failed, interrupted, or another runner built the same venv first
                shutil.rmtree(building, ignore_errors=True)

    def install(self, spec: EnvironmentSpec, venv: Path) -> PrepareFailure | None:
        """python -m venv, then the requirements, then the libraries without their dependencies, as the Dockerfiles do.

        pip's installation reports go to the venv's lock folder, as an image's do; a venv whose pip is
        too old to write one gets the images' pinned pip first. The step that needs pip and a package
        index: the tests of what `prepare` decides around it replace it.
        """
        (venv / "requirements.txt").write_text("".join(f"{line}\n" for line in spec.requirements))
        (venv / "libraries.txt").write_text("".join(f"{line}\n" for line in spec.libraries))
        (venv / LOCK_FOLDER).mkdir()
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

        def keep(line: str) -> None:
            if line.strip():
                tail.append(line)
                self.progress.build_line(spec.name, line)

        for step, command in self._steps(spec, venv):
            finished = follow(command, keep)
            if finished.exit_code != 0:
                return self._failure(spec, step, finished.exit_code, tail)
        return None

    def _steps(self, spec: EnvironmentSpec, venv: Path):
        """(step, command) in order, each decided once the one before it has run."""
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
        yield "python -m venv", [self.python.executable, "-m", "venv", str(venv)]
        if not _reports(venv):
            yield f"pip install {INSTALLER}", [*pip, INSTALLER]
        yield "pip install -r requirements.txt", [*pip, "--report", str(venv / LOCK_FOLDER / "requirements.json"),
                                                  "-r", str(venv / "requirements.txt")]
        if spec.libraries:
            yield "pip install --no-deps -r libraries.txt", [*pip, "--no-deps", "--report", str(venv / LOCK_FOLDER / "libraries.json"),
                                                              "-r", str(venv / "libraries.txt")]

    def _failure(self, spec: EnvironmentSpec, step: str, exit_code: int, tail: deque[str]) -> PrepareFailure:
        """A failed build is a failed cell, except a full disk, which fails every build after it."""
        log = "\n".join(tail)
        if "No space left on device" in log:
            raise UserError(f"no space left on device while building the venv of {spec.name} in {self.folder}: "
                            f"free space there, or set {VENVS_VARIABLE} to a folder on a larger disk, and run again")
        return PrepareFailure(spec, f"venv build failed: {step} exited with code {exit_code}: {tail[-1] if tail else 'no output'}", log)

    def _prepared(self, spec: EnvironmentSpec, venv: Path) -> Prepared:
        python = interpreter(str(venv / "bin" / "python"))
        lock = _lock(spec, venv, self.python)
        facts = provenance(spec, python, venv=str(venv), base_python=self.python.executable)
        return Prepared(spec, python.executable, facts + ((("lock", lock.digest),) if lock else ()),
                        variables=_pinned_cudnn_first(spec, venv), lock=lock)


def _reports(venv: Path) -> bool:
    """Whether the venv's own pip writes installation reports (pip 22.2 and later): then it installs, offline wheelhouses and all."""
    try:
        asked = subprocess.run([str(venv / "bin" / "python"), "-c", "import pip; print(pip.__version__)"], capture_output=True, text=True,
                               timeout=120)
        return asked.returncode == 0 and Version(asked.stdout.strip()) >= Version(REPORTING_PIP)
    except (subprocess.TimeoutExpired, InvalidVersion):
        return False


def _lock(spec: EnvironmentSpec, venv: Path, python: Interpreter) -> Lock | None:
    """The venv's lock, from pip's reports in it; None for one a test made without pip."""
    reports = {path.stem: json.loads(path.read_text()) for path in (venv / LOCK_FOLDER).glob("*.json")}
    if "requirements" not in reports:
        return None
    base = {"python": python.version, "interpreter": python.real_path}
    return from_reports(spec.name, base, reports["requirements"], reports.get("libraries"))


def _put_in_place(built: Path, venv: Path) -> bool:
    """Give the built venv its name, atomically; False when another runner gave it first.

    A link, not a rename: a venv cannot be moved, as pip writes its path into the scripts it installs.
    Runners on several nodes may build the same venv in a shared folder at once: the first link
    made wins, and the others use it.
    """
    if venv.is_symlink() and not venv.exists():
        venv.unlink(missing_ok=True)  # what it named was deleted by hand; another runner may be removing it too
    try:
        os.symlink(built.name, venv)
    except FileExistsError:
        return False
    return True


def _pinned_cudnn_first(spec: EnvironmentSpec, venv: Path) -> tuple[tuple[str, str], ...]:
    """A pinned cuDNN (from libraries) first on the loader's path, ahead of the host's, as Dockerfile.gpu does with /opt/cudnn-pinned."""
    pinned = sorted(venv.glob("lib/python*/site-packages/nvidia/cudnn/lib"))
    if not (spec.libraries and pinned):
        return ()
    host = os.environ.get("LD_LIBRARY_PATH")
    return (("LD_LIBRARY_PATH", f"{pinned[0]}:{host}" if host else str(pinned[0])),)
