"""`cudnn-matrix doctor`: what a run depends on, checked before one is started.

The matrix, the executor (the engine reachable, or the interpreter as it is), what a run would say
first (the cells that would run, why the others would not, the environments to make: preflight),
the disk for results and images, the base images or debootstrap, and the data. Each check is a
line: ok, warning (a run goes on, with less than asked for) or problem (it cannot).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from runner import datasets, host, preflight
from runner.cells import environments_of
from runner.errors import UserError
from runner.executors import Executor
from runner.session import Plan

RESULTS_GIB = 1  # records, logs and charts: a run needs little
IMAGES_GIB = 20  # a CUDA image with a framework is 3 to 6 GB, and builds need room besides


@dataclass(frozen=True)
class Check:
    what: str
    state: str  # ok, warning or problem
    detail: str

    def line(self) -> str:
        return f"{self.state:<8} {self.what}: {self.detail}"


def checks(plan: Plan, executor_name: str, make_executor: Callable[[], Executor], results_dir: Path) -> list[Check]:
    found = [Check("matrix", "ok", f"{plan.matrix.path}: {len(plan.cells)} cell(s), {len(plan.selected)} selected")]
    try:
        executor = make_executor()
    except UserError as error:
        return found + [Check(f"executor {executor_name}", "problem", str(error))]
    found.append(Check(f"executor {executor_name}", "ok", _described(executor)))
    seen = preflight.outlook(plan.selected, executor, plan.matrix.repeats, results_dir)  # what a run would say first
    found.append(Check("cells", "ok" if seen.to_run else "problem", f"{len(seen.to_run)} of the {len(plan.selected)} selected would run"))
    found += [Check(f"{len(cells)} cell(s)", "warning", f"not run: {reason}") for reason, cells in seen.not_run.items()]
    found += [Check(f"environment {name}", "ok", what) for name, what in seen.environments]
    if any(cell.kind == "gpu" for cell in seen.to_run):
        found.append(Check("GPU", "ok", f"nvidia-smi here lists {host.describe_gpus(host.gpus())}; "
                                        "whether GPU cells get one is checked with their first environment"))
    found.append(_free("disk for results", results_dir, RESULTS_GIB))
    if executor_name == "docker":
        found += [_free("disk for images", Path(executor.client.info().get("DockerRootDir", "/var/lib/docker")), IMAGES_GIB),
                  *_bases(executor, plan, seen.to_run)]
    found += [_data(workload) for workload in dict.fromkeys(cell.workload for cell in seen.to_run)]
    return found


def exit_code(found: list[Check]) -> int:
    return 1 if any(check.state == "problem" for check in found) else 0


def _described(executor: Executor) -> str:
    return ", ".join(f"{key} {value}" for key, value in executor.describe_host().items() if isinstance(value, (str, int)))


def _free(what: str, path: Path, wanted_gib: float) -> Check:
    existing = next((folder for folder in (path, *path.parents) if folder.exists()), Path("/"))
    try:
        free = shutil.disk_usage(existing).free / 2**30
    except OSError as error:
        return Check(what, "warning", f"cannot tell how much is free at {existing} ({error.strerror or error})")
    state = "ok" if free >= wanted_gib else "warning"
    return Check(what, state, f"{free:.1f} GiB free at {existing}" + ("" if state == "ok" else f", under the {wanted_gib} GiB advised"))


def _bases(executor, plan: Plan, to_run: tuple) -> list[Check]:
    """Each base image the cells to run need: here already, else pulled from a registry or, for the CPU base, made with debootstrap."""
    found = []
    debootstrap = shutil.which("debootstrap") and os.geteuid() == 0
    cpu_base = plan.matrix.cpu.base_image if plan.matrix.cpu else None
    for base in dict.fromkeys(spec.base for spec in environments_of(list(to_run))):
        if executor.client.images.list(name=base):
            found.append(Check(f"base image {base}", "ok", "here already"))
        elif base == cpu_base:
            state = "ok" if debootstrap else "warning"
            found.append(Check(f"base image {base}", state, "not here: pulled from a registry, else made with debootstrap"
                                                            + ("" if debootstrap else ", which needs root and `apt-get install debootstrap`")))
        else:
            found.append(Check(f"base image {base}", "warning", "not here: a registry must serve it"))
    return found


def _data(workload) -> Check:
    real = datasets.real_data(workload)
    if real:
        return Check(f"data for {workload.name}", "ok", f"real data in {real}")
    return Check(f"data for {workload.name}", "ok", f"none in {workload.data_dir}: a synthetic set will be generated "
                                                    "(timings are real, accuracy meaningless)")
