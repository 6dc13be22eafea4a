"""An environment's lock: every distribution pip installed in it, at which version, from which wheel.

An environment's spec asks for ranges (tensorflow==2.21.*, pillow>=10); what pip resolves them to
depends on the day. Each executor that installs (Docker, venv) keeps pip's installation report
(`pip install --report`, pip 22.2 and later: images install with one pinned pip, INSTALLER; a venv
with its own pip where that is new enough, so that an offline wheelhouse needs no pip wheel), and a
lock is made from it: each distribution's name, version and wheel sha256, the base it was installed on, and the
base's Debian packages where it has them. Every record names its environment's lock by digest and
the run folder keeps the lock (environments/NAME.DIGEST.lock), so that `reproduce` can install
the same package set again, in pip's hash-checking mode, anywhere.

Pure, but for `keep` (a file in the run folder) and `unavailable` (asks the package index).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from runner.environments import EnvironmentSpec
from runner.errors import UserError

# The pip that installs every image, and a venv whose own pip is too old to write a report
# (--report needs pip 22.2; Ubuntu 22.04's venvs bring 22.0.2); pinned, so that resolutions are comparable.
INSTALLER = "pip==26.3"
REPORTING_PIP = "22.2"
LOCKS_FOLDER = "environments"  # in a run folder: the lock of every environment its records name
LOCK_SCHEMA = 1
DEFAULT_INDEX = "https://pypi.org/simple"


class IndexUnreachable(UserError):
    """The package index could not be asked: what a lock holds is then not known to be there, nor known to be gone."""


@dataclass(frozen=True)
class Pin:
    """One installed distribution: its canonical name, exact version, and the sha256 of the file it came from (if pip said)."""

    name: str
    version: str
    sha256: str = ""

    def requirement(self, hashed: bool) -> str:
        return f"{self.name}=={self.version}" + (f" --hash=sha256:{self.sha256}" if hashed else "")


@dataclass(frozen=True)
class Lock:
    environment: str  # the environment's name
    installer: str  # the pip that installed it, as its report says
    base: tuple[tuple[str, str], ...]  # what it was installed on: a base image's id and digest, or a venv's interpreter
    requirements: tuple[Pin, ...]  # what `pip install -r requirements.txt` installed
    libraries: tuple[Pin, ...] = ()  # what `pip install --no-deps -r libraries.txt` installed (a pinned cuDNN)
    debian: tuple[str, ...] = ()  # the base's Debian packages, package=version

    def text(self) -> str:
        """The lock file's content: JSON, keys sorted, so that the same lock is always the same bytes."""
        data = {"schema": LOCK_SCHEMA, **dataclasses.asdict(self), "base": dict(self.base)}
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest()[:16]

    @property
    def hashed(self) -> bool:
        """Whether pip gave a hash for every file: pip's hash-checking mode is all or nothing."""
        return all(pin.sha256 for pin in self.requirements + self.libraries)

    def file_name(self) -> str:
        return f"{self.environment}.{self.digest}.lock"


def from_reports(environment: str, base: dict[str, str], requirements: dict, libraries: dict | None = None,
                 debian: str = "") -> Lock:
    """A lock from pip's installation reports (the JSON `pip install --report` writes) and `dpkg-query -W`'s lines."""
    return Lock(environment, f"pip=={requirements.get('pip_version', '')}", tuple(sorted(base.items())), _pins(requirements), _pins(libraries or {"install": []}),
                tuple(sorted(line.strip() for line in debian.splitlines() if line.strip())))


def _pins(report: dict) -> tuple[Pin, ...]:
    pins = [Pin(canonicalize_name(item["metadata"]["name"]), item["metadata"]["version"], _sha256(item)) for item in report["install"]]
    return tuple(sorted(pins, key=lambda pin: pin.name))


def _sha256(item: dict) -> str:
    """The sha256 of the file pip installed the item from: `hashes` (pip 23.1 and later), else `hash`, "name=value"; "" for none."""
    archive = item.get("download_info", {}).get("archive_info", {})
    algorithm, _, value = archive.get("hash", "").partition("=")
    return archive.get("hashes", {}).get("sha256") or (value if algorithm == "sha256" else "")


def parse(text: str, where: str) -> Lock:
    """A lock file's content, checked: one line naming the file and what was expected if it is not a lock."""
    try:
        data = json.loads(text)
        if data.get("schema") != LOCK_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {LOCK_SCHEMA}")
        pins = {key: tuple(Pin(**pin) for pin in data[key]) for key in ("requirements", "libraries")}
        return Lock(data["environment"], data["installer"], tuple(sorted(data["base"].items())), pins["requirements"],
                    pins["libraries"], tuple(data["debian"]))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{where}: not a lock cudnn-matrix wrote ({error})")


def keep(run_folder: Path, lock: Lock) -> Path:
    """The lock in the run folder, written whole (several runners of a dispatched run may write the same one at once)."""
    path = run_folder / LOCKS_FOLDER / lock.file_name()
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(lock.text())
        os.replace(partial, path)
    return path


def read(run_folder: Path, environment: str, digest: str) -> Lock:
    path = run_folder / LOCKS_FOLDER / f"{environment}.{digest}.lock"
    try:
        return parse(path.read_text(), str(path))
    except OSError as error:
        raise UserError(f"{path}: the lock its records name cannot be read ({error.strerror or error})")


def locked_spec(spec: EnvironmentSpec, lock: Lock) -> EnvironmentSpec:
    """The spec, asking for exactly what the lock holds (with its hashes, where pip gave them all) instead of ranges."""
    hashed = lock.hashed
    return dataclasses.replace(spec, requirements=tuple(pin.requirement(hashed) for pin in lock.requirements),
                               libraries=tuple(pin.requirement(hashed) for pin in lock.libraries), lock=lock.digest)


def package_index() -> str:
    """The index pip installs from, as it would choose: $PIP_INDEX_URL, else PyPI."""
    return os.environ.get("PIP_INDEX_URL", DEFAULT_INDEX).rstrip("/")


def unavailable(locks: list[Lock], index: str | None = None) -> list[str]:
    """The pins of these locks the index no longer has (that version, or a file with the locked hash): asked before any build."""
    pins = sorted({pin for lock in locks for pin in lock.requirements + lock.libraries}, key=lambda pin: (pin.name, pin.version))
    projects = _projects(index or package_index(), {pin.name for pin in pins})
    missing = []
    for pin in pins:
        project = projects[pin.name]
        if project is None or not _listed(pin.version, project["versions"]):
            missing.append(f"{pin.name}=={pin.version}")
        elif pin.sha256 and not any(file.get("hashes", {}).get("sha256") == pin.sha256 for file in project["files"]):
            missing.append(f"{pin.name}=={pin.version} (no file with the locked sha256)")
    return missing


def download_bytes(lock: Lock, index: str | None = None) -> int | None:
    """What installing the lock downloads: the size the index gives of each locked file; None where one is not known."""
    if not lock.hashed:
        return None
    pins = lock.requirements + lock.libraries
    projects = _projects(index or package_index(), {pin.name for pin in pins})
    sizes = [next((file.get("size") for file in (projects[pin.name] or {}).get("files", ())
                   if file.get("hashes", {}).get("sha256") == pin.sha256), None) for pin in pins]
    return None if None in sizes else sum(sizes)


def _projects(index: str, names: set[str]) -> dict[str, dict | None]:
    """Each project's page in the index, asked in parallel (a framework's lock names 40 projects)."""
    ordered = sorted(names)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(ordered, pool.map(lambda name: _project(index, name), ordered)))


def _listed(version: str, versions: list[str]) -> bool:
    """Whether the index lists the version, compared as versions are (2.21 is 2.21.0), not as text."""
    def parsed(text: str) -> Version | None:
        try:
            return Version(text)
        except InvalidVersion:
            return None
    return version in versions or (parsed(version) or "") in {parsed(listed) for listed in versions}


def _project(index: str, name: str) -> dict | None:
    """A project's page in the index's JSON form (PEP 691, with PEP 700's versions); None when the index has no such project."""
    request = urllib.request.Request(f"{index}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            project = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise IndexUnreachable(f"cannot check the locked packages against {index}: {name}: HTTP {error.code}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise IndexUnreachable(f"cannot check the locked packages against {index}: {getattr(error, 'reason', None) or error}")
    if "versions" not in project:
        raise IndexUnreachable(f"cannot check the locked packages against {index}: it does not list versions (PEP 700); set PIP_INDEX_URL to one that does")
    return project
