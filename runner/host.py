"""Facts about the machine a run happens on, for the run's manifest: results must carry their provenance."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path

from workload.machine import cpu_model

PROJECT = Path(__file__).resolve().parent.parent


def facts() -> dict:
    """The machine and the project's commit; where the run placed its cells, and with what, its placement adds."""
    return {
        "hostname": socket.gethostname(),  # what the results site tells machines apart by
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "gpus": gpus(),
        "project_commit": _git("rev-parse", "HEAD"),
        "project_dirty": bool(_git("status", "--porcelain")),
    }


# What every GPU inventory asks nvidia-smi, here or in a probe container on a remote host.
NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader"]


def gpus() -> list[dict]:
    """The host's NVIDIA GPUs and driver as nvidia-smi reports them; none where it is absent."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return parse_gpus(output)


def parse_gpus(output: str) -> list[dict]:
    """nvidia-smi's CSV lines ("0, NVIDIA H200, 580.65.06, 143771 MiB") as dicts; lines that are not such rows are left out."""
    keys = ("index", "name", "driver", "memory")
    rows = [[part.strip() for part in line.split(",")] for line in output.strip().splitlines()]
    return [dict(zip(keys, row)) for row in rows if len(row) == len(keys) and row[0].isdigit()]


def describe_gpus(found: list[dict]) -> str:
    """One line for a record's facts: "0: NVIDIA H100 80GB HBM3 (driver 580.65.06); 1: ..." or "none"."""
    return "; ".join(f"{gpu.get('index', '?')}: {gpu.get('name', '?')} (driver {gpu.get('driver', '?')})" for gpu in found) or "none"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(PROJECT), *args], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return "unknown"
