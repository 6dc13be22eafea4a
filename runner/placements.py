"""The second seam of a run: where and how each (cell, repeat) is carried out, and how its record comes back.

session.run_placed is the one run loop: it opens or resumes the run folder, plans what is
left (run_plan), records the cells that do not run, marks the end and prints how to resume.
A placement does the rest: local runs each cell here, one after another, with an executor;
slurm submits one job per cell and repeat; ssh spreads them over remote Docker hosts.
Placements are chosen by name (--dispatch) from REGISTRY, as executors are from theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from runner import executors
from runner.errors import UserError
from runner.progress import Progress
from runner.run_plan import Here, Turn

if TYPE_CHECKING:
    from runner.cells import Cell
    from runner.session import Keeper, Plan, Session


class Placement(Protocol):
    name: str  # what --dispatch names it; the manifest's host.dispatch
    executor_name: str  # what records of cells it does not run name as their executor

    def start(self) -> None:
        """Reach the place before the run folder is opened: the controller answers, the hosts are connected."""

    def facts(self) -> dict:
        """What the manifest says of the place besides the machine's own facts (host.facts): executor, dispatch, hosts."""

    def resume(self, run_folder: Path) -> None:
        """Before a resumed run goes on: refuse what would mix its records, remove what its earlier runner left going."""

    def prepare(self, session: Session) -> Here:
        """Make ready for the cells left (data, environments); what the place offers them, for the not-run ladder."""

    def announce(self, to_run: list[tuple[Cell, int]]) -> None:
        """Say what it will carry out, before the first turn."""

    def carry_out(self, turn: Turn, keeper: Keeper) -> None:
        """Carry out one (cell, repeat), or start to: its record goes to keeper.keep when it comes back."""

    def finish(self, keeper: Keeper) -> None:
        """Wait for every turn started to come back."""

    def interrupt(self, run_folder: Path) -> None:
        """Ctrl-C: stop what runs (cancel jobs, stop host threads) before the run is noted as interrupted."""

    def clean_up(self, run_folder: Path, state: str) -> str:
        """After a run that did not finish: remove what it left; what is still going, said after the results' path ("" if nothing)."""


@dataclass(frozen=True)
class Asked:
    """What the command line asks of a run's placement."""

    executor: str = "docker"  # --executor: here, or on each Slurm node
    python: str = ""  # --python, for venv and local
    offline_base: bool = False
    hosts: tuple[str, ...] = ()  # --host: SSH's hosts, in place of the matrix's
    budget_minutes: float | None = None
    gpus: str | None = None
    ship_images: bool = False  # --ship-images: SSH's boxes load images built here instead of building them


def _local(plan: Plan, asked: Asked, progress: Progress) -> Placement:
    from runner.session import Budget, Local

    wanted = executors.Wanted(plan.matrix.build, plan.gpu_devices, asked.python, progress)
    budget = Budget.starting_now(asked.budget_minutes) if asked.budget_minutes else None
    return Local(executors.make(asked.executor, wanted), progress, budget)


def _slurm(plan: Plan, asked: Asked, progress: Progress) -> Placement:
    from runner.dispatch import slurm

    if asked.gpus:
        raise UserError("--gpus: with --dispatch slurm each job uses the GPUs Slurm grants it; gpu.gpu_type asks for a type")
    return slurm.SlurmPlacement(plan, progress, asked.offline_base, slurm.node_executor(asked.executor, asked.python))


def _ssh(plan: Plan, asked: Asked, progress: Progress) -> Placement:
    from runner.dispatch import ssh

    return ssh.SSHPlacement(plan, ssh.hosts_asked(plan, asked.hosts, asked.executor, asked.gpus), progress, ship_images=asked.ship_images)


# Placements by the name --dispatch gives them.
REGISTRY: dict[str, Callable[[Plan, Asked, Progress], Placement]] = {"local": _local, "slurm": _slurm, "ssh": _ssh}


def make(name: str, plan: Plan, asked: Asked, progress: Progress) -> Placement:
    """The placement of that name; what it cannot do is refused here, in one line, before any run folder is made."""
    if name != "local" and asked.budget_minutes:
        raise UserError("--budget-minutes: only for runs on this machine (--dispatch local), whose cells run one after another")
    if name != "ssh" and asked.ship_images:
        raise UserError("--ship-images: images are shipped to the remote Docker hosts of --host (--dispatch ssh); here and on Slurm they are built")
    return REGISTRY[name](plan, asked, progress)
