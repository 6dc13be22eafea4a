"""The local executor: cells run in an interpreter that is already there, installing nothing.

For machines that can reach neither a registry nor a package index (an air-gapped
GPU host): the cells whose requirements the interpreter meets run in it; the
others are excluded, naming what it has instead.
"""

from __future__ import annotations

from packaging.utils import canonicalize_name

from runner.environments import NVML_REQUIREMENT, EnvironmentSpec
from runner.executors import Prepared, Unsuitable
from runner.executors.host_process import ProcessExecutor, parse, provenance


class LocalExecutor(ProcessExecutor):
    name = "local"

    def prepare(self, spec: EnvironmentSpec) -> Prepared | Unsuitable:
        unsuitable = self.outlook(spec)
        if isinstance(unsuitable, Unsuitable):
            return unsuitable
        self.progress(f"{spec.name}: {self.python.executable} as it is ({self.python.installed(spec.requirements)})")
        return Prepared(spec, self.python.executable, provenance(spec, self.python))

    def outlook(self, spec: EnvironmentSpec) -> str | Unsuitable:
        # Only the requirements: a pinned cuDNN (libraries) may come from the system rather than pip,
        # and the workload itself checks the cuDNN it loaded against the cell's. Nor the telemetry's
        # NVML binding: without it the record says GPU telemetry is not available, and the timing stands.
        wrong = mismatches(tuple(r for r in spec.requirements if r != NVML_REQUIREMENT), self.python.packages)
        if wrong:
            return Unsuitable(spec, f"{self.python.executable} has {', '.join(wrong)}: the local executor installs nothing")
        return f"{self.python.executable} as it is"


def mismatches(requirements: tuple[str, ...], packages: dict[str, str]) -> list[str]:
    """What an interpreter with these packages (canonical name -> version) has instead of each requirement it does not meet."""
    wrong = []
    for requirement in filter(None, map(parse, requirements)):
        installed = packages.get(canonicalize_name(requirement.name))
        if installed is None:
            wrong.append(f"no {requirement.name} ({requirement} asked for)")
        elif not requirement.specifier.contains(installed, prereleases=True):  # what is installed is what would run
            wrong.append(f"{requirement.name} {installed} ({requirement} asked for)")
    return wrong
