"""The matrix's `slurm:` and `hosts:` sections and `placement:`: how `run --dispatch slurm` asks for nodes, which engines
`--dispatch ssh` uses, and whether a comparison group may spread over them.

Every value reaches sbatch or ssh as one argument of its own, never through a shell.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from runner.yaml_reader import Document, describe, shown

SLURM_NAMES = re.compile(r"[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64}){0,15}")  # a partition (or several, comma-separated), an account
# Slurm's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; or no limit.
SLURM_TIME = re.compile(r"[0-9]{1,6}|[0-9]{1,6}:[0-9]{2}|[0-9]{1,4}:[0-9]{2}:[0-9]{2}|[0-9]{1,4}-[0-9]{1,2}(:[0-9]{2}(:[0-9]{2})?)?|UNLIMITED|INFINITE")
SBATCH_OPTION = re.compile(r"--[a-z][a-z0-9-]{0,40}(=[^\s]{1,256})?")
# What the dispatcher sets itself, from the matrix and the cell: given in slurm.options they would contradict it.
SBATCH_OWN_OPTIONS = ("account", "chdir", "error", "exclusive", "export", "gpus", "gres", "input", "job-name", "no-requeue",
                      "nodes", "ntasks", "output", "parsable", "partition", "requeue", "signal", "time", "wrap")


@dataclass(frozen=True)
class SlurmSettings:
    """How `run --dispatch slurm` asks Slurm for nodes: one job per cell and repeat."""

    partition: str | None  # None: the cluster's default partition
    gpu_partition: str | None  # for GPU cells; None: partition
    account: str | None
    time: str | None  # sbatch --time; None: the partition's default limit
    exclusive: bool  # GPU cells get whole nodes too (CPU cells always do)
    options: tuple[str, ...]  # further sbatch options, passed as they are: ("--qos=high",)
    poll_seconds: float  # how often squeue is asked about the jobs


SLURM_DEFAULTS = SlurmSettings(partition=None, gpu_partition=None, account=None, time=None, exclusive=True, options=(), poll_seconds=5.0)


# A user and a host begin with a letter or digit, so that ssh never reads one as an option.
HOST = re.compile(r"ssh://(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63}@)?[A-Za-z0-9][A-Za-z0-9._-]{0,252}(?::(?P<ssh_port>[0-9]{1,5}))?"
                  r"|tcp://[A-Za-z0-9][A-Za-z0-9._-]{0,252}:(?P<tcp_port>[0-9]{1,5})|[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HOST_EXPECTED = "ssh://user@host[:port], tcp://host:port (a port from 1 to 65535) or a Docker context name"
MAX_HOSTS = 64


def host_urls(values: list, error) -> tuple[str, ...]:
    """Remote Docker hosts as `hosts:` and `--host` name them, each once; error(index, expected, found) makes the UserError."""
    if len(values) > MAX_HOSTS:
        raise error(None, f"at most {MAX_HOSTS} hosts", str(len(values)))
    for index, value in enumerate(values):
        match = HOST.fullmatch(value) if isinstance(value, str) else None
        port = match and (match.group("ssh_port") or match.group("tcp_port"))
        if not match or (port and not 1 <= int(port) <= 65535):
            raise error(index, HOST_EXPECTED, describe(value))
        if value in values[:index]:
            raise error(index, "each host once", f"{shown(value)} a second time")
    return tuple(values)



PLACEMENTS = ("spread", "same-node")


def placement_setting(document: Document, value: Any) -> str:
    """`placement:`: spread (each round of a comparison group on any node or host) or same-node (each group on one)."""
    if not isinstance(value, str) or value not in PLACEMENTS:
        raise document.error(("placement",), "spread or same-node", value)
    return value


def hosts_section(document: Document, value: Any) -> tuple[str, ...]:
    """`hosts:`, the remote Docker engines `run --dispatch ssh` spreads the cells over."""
    if not isinstance(value, list):
        raise document.error(("hosts",), f"a list of at most {MAX_HOSTS} hosts such as [ssh://me@box1, tcp://box2:2376]", value)
    return host_urls(value, lambda index, expected, found: document.error(("hosts",) if index is None else ("hosts", index), expected, found=found))



def slurm_section(document: Document, value: Any) -> SlurmSettings:
    """The `slurm:` settings. Every value reaches sbatch as one argument of its own, never through a shell."""
    settings = document.mapping(value if value is not None else {}, ("slurm",), required=set(),
                                optional={"partition", "gpu_partition", "account", "time", "exclusive", "options", "poll_seconds"})

    def name(key: str) -> str | None:
        if key not in settings:
            return None
        return document.string(settings[key], ("slurm", key), SLURM_NAMES, "a Slurm name of letters, digits, _ . and - (partitions: several, comma-separated)")

    time = settings.get("time")
    if time is not None and (not isinstance(time, str) or not SLURM_TIME.fullmatch(time)):
        # YAML reads an unquoted 2:00:00 as the number 7200 (base 60): a time limit is a quoted string.
        raise document.error(("slurm", "time"), 'a Slurm time limit in quotes, such as "02:00:00", "90" (minutes) or "1-00:00:00"', time)
    options = settings.get("options", [])
    if not isinstance(options, list) or len(options) > 32:
        raise document.error(("slurm", "options"), 'a list of at most 32 sbatch options such as ["--qos=high", "--constraint=ib"]', options)
    for index, option in enumerate(options):
        key_path = ("slurm", "options", index)
        document.string(option, key_path, SBATCH_OPTION, "a long sbatch option without spaces, such as --qos=high")
        own = option[2:].partition("=")[0]
        if own in SBATCH_OWN_OPTIONS:
            hint = {"partition": "slurm.partition", "account": "slurm.account", "time": "slurm.time", "exclusive": "slurm.exclusive",
                    "gres": "gpu.gpu_type", "gpus": "gpu.gpu_type"}.get(own, "nothing: the dispatcher sets it for every job")
            raise document.error(key_path, f"an option the dispatcher does not set itself (for --{own} use {hint})", option)
    poll = settings.get("poll_seconds", SLURM_DEFAULTS.poll_seconds)
    if isinstance(poll, bool) or not isinstance(poll, (int, float)) or not math.isfinite(poll) or not 0.1 <= poll <= 600:
        raise document.error(("slurm", "poll_seconds"), "a number of seconds from 0.1 to 600", poll)
    return SlurmSettings(
        partition=name("partition"), gpu_partition=name("gpu_partition"), account=name("account"), time=time,
        exclusive=document.boolean(settings.get("exclusive", True), ("slurm", "exclusive")),
        options=tuple(options), poll_seconds=float(poll),
    )

