"""The gpu_type axis on this host: "the same cell on an H100 and an H200" as one matrix.

`gpu.gpu_type` names GPU models the way the cluster's Slurm names them (its gres
types, `--gres=gpu:h200:1`). Every GPU cell then becomes one cell per type (the
product in cells.gpu_combinations, where gpu.include and gpu.exclude may name a
type too); the type is an axis and part of the id, right after the kind:

    gpu-cuda12.8-cudnn9.8-tf2.21-dogs-vs-cats  ->  gpu-h100-cuda12.8-cudnn9.8-tf2.21-dogs-vs-cats
                                                   gpu-h200-cuda12.8-cudnn9.8-tf2.21-dogs-vs-cats

The type is a run axis, not a build axis: both cells share one environment (one
image runs on either GPU). Here: whether a GPU's name is of a type, and whether this
host has one, asking nvidia-smi.
"""

from __future__ import annotations

import functools
import re

from runner import host
from runner.cells import Cell
from runner.config import GPU_TYPE_AXIS as AXIS


def not_here(cell: Cell) -> str:
    """Why a cell of a GPU type cannot run on this host ("" when it can, or names no type).

    For runs on this host: a record saying h200 must not hold an A100's numbers. A job that
    Slurm placed on a node by its gres type asks `misplaced` instead.
    """
    wanted = cell.axis(AXIS)
    if not wanted:
        return ""
    names = host_gpu_names()
    if not names:
        return f"GPU type {wanted}: this host's GPUs cannot be named (no nvidia-smi); dispatch it to a cluster (run --dispatch slurm)"
    if matching(wanted, names):
        return ""
    return f"GPU type {wanted}: this host has {', '.join(sorted(set(names)))}; dispatch it to a cluster (run --dispatch slurm)"


def misplaced(cell: Cell) -> str:
    """Why the node a scheduler placed a typed cell on has no GPU of its type ("" when it has one, or its GPUs cannot be named).

    Slurm places by the gres types its gres.conf declares; a type written wrong there must not
    turn an H100's numbers into an H200 record.
    """
    wanted, names = cell.axis(AXIS), host_gpu_names()
    if not wanted or not names or matching(wanted, names):
        return ""
    return (f"GPU type {wanted}: the scheduler placed this job on a node whose GPUs are {', '.join(sorted(set(names)))}; "
            f"check the gres types in the cluster's gres.conf")


def matching(wanted: str, names: list[str] | tuple[str, ...]) -> list[int]:
    """The positions of the GPU names that are of type wanted ("h100" is "NVIDIA H100 80GB HBM3"); [] when none is."""
    return [position for position, name in enumerate(names) if _squeezed(wanted) in _squeezed(name)]


@functools.cache
def host_gpu_names() -> tuple[str, ...]:
    return tuple(gpu["name"] for gpu in host.gpus())


def _squeezed(name: str) -> str:
    """h100 matches "NVIDIA H100 80GB HBM3", and so does nvidia_h100_80gb_hbm3 (Slurm's autodetected type name)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())
