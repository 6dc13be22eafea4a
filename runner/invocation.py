"""How this runner was called, and the commands it prints for the user to type next, called the same way.

Imports nothing of the runner at module level: records and the site word their hints with it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def program() -> list[str]:
    """This runner as it was called: the console script by the path typed (.venv/bin/cudnn-matrix), else python -m runner."""
    return [sys.argv[0]] if Path(sys.argv[0]).name == "cudnn-matrix" else ["python", "-m", "runner"]


def command(*words: str) -> str:
    """A command to paste, as this runner was called: `.venv/bin/cudnn-matrix run --resume X`, or `python -m runner ...`."""
    return shlex.join([*program(), *words])


def resume_command(args, run_id: str) -> str:
    """The command that goes on with a run as this one ran it, wherever it ran: pasted as printed, it selects the same cells the same way."""
    from runner.executors import HOST_PROCESSES

    words = [*program(), "reproduce", args.run] if args.command == "reproduce" else [*program(), "run", "-f", str(args.file)]
    if args.results != Path("results"):
        words += ["--results", str(args.results)]
    for option, value in (("--dispatch", args.dispatch if args.dispatch != "local" and not args.hosts else None), ("-k", args.pattern),
                          ("--executor", args.executor if args.executor != "docker" else None),
                          ("--python", args.python if args.executor in HOST_PROCESSES else None), ("--gpus", args.gpus),
                          ("--repeats", args.repeats and str(args.repeats))):
        if value:
            words += [option, value]
    words += [word for url in args.hosts or () for word in ("--host", url)]
    words += ["--ship-images"] * getattr(args, "ship_images", False)
    words += ["--offline-base"] * args.offline_base + ["--strict"] * getattr(args, "strict", False) + ["--force"] * getattr(args, "force", False)
    return shlex.join(words + ["--resume", run_id])
