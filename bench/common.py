"""What every bench/ script shares: running the runner, the machine's facts, and writing RESULTS.md.

Each script answers one question with ratios measured side by side in one run, and rewrites its own
section of bench/RESULTS.md (between `<!-- bench:NAME -->` markers), leaving every other section —
the GPU check's among them — as it is.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS_MD = BENCH / "RESULTS.md"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "workload"))

from workload.machine import cpu_model  # noqa: E402


def replace_section(text: str, name: str, body: str) -> str:
    """text with the section NAME (between its markers) replaced by body, or body appended as a new section."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text.split(start, 1)[1]:
        before, rest = text.split(start, 1)
        return before + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def divert(path: Path) -> None:
    """Write sections to path instead of bench/RESULTS.md: a --quick smoke run checks a script, it measures nothing worth keeping."""
    global RESULTS_MD
    path.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD = path


def write_section(name: str, body: str) -> None:
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    partial = RESULTS_MD.with_name(f".{RESULTS_MD.name}.partial")
    partial.write_text(replace_section(text, name, body))
    os.replace(partial, RESULTS_MD)
    print(f"written: {RESULTS_MD} (section {name})", file=sys.stderr)


def load() -> str:
    """The 1, 5 and 15 minute load averages, as uptime prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def calibration(rounds: int = 3_000_000) -> float:
    """Seconds of a fixed pure-Python loop on one core: its spread is the machine's own noise."""
    started = time.perf_counter()
    total = 0
    for number in range(rounds):
        total += number * number
    return time.perf_counter() - started


def spread(values) -> float:
    """Largest over smallest: 1.00 is perfectly stable."""
    values = list(values)
    return max(values) / min(values)


def judged(ratio: float, high: float | None, target: float) -> str:
    """A ratio against its target: met only when the interval's upper bound is within it too."""
    if ratio > target:
        return f"not met (> {target:.2f})"
    if high is None or high > target:
        return f"not shown: the ratio is within {target:.2f}, its interval is not"
    return f"met (<= {target:.2f})"


def provenance(command: str, load_before: str, load_after: str, versions: dict[str, str] | None = None) -> str:
    """The lines every section starts with: when, where, what software, the exact command, how loaded the machine was."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS.md"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    software = {"python": platform.python_version(), "cudnn-matrix commit": commit + (" (with changes)" if dirty else ""), **(versions or {})}
    return "\n".join([
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; no GPU",
        f"- versions: {', '.join(f'{name} {version}' for name, version in software.items())}",
        f"- command: `{command}`",
        f"- load average (1, 5, 15 min) before: {load_before}; after: {load_after} "
        f"(other engineers' tests ran on the same {os.cpu_count()} cores)",
    ])


def docker_version() -> str:
    done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    return done.stdout.strip() or "not reachable"


def runner(*args: str, quiet: bool = True) -> tuple[int, float, str]:
    """Run `python -m runner ARGS`; its exit code, wall seconds and progress (stderr), shown only when it fails."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE if quiet else None, text=True)
    seconds = time.perf_counter() - started
    if quiet and done.returncode not in (0, 1):
        sys.stderr.write(done.stderr[-3000:])
    return done.returncode, seconds, done.stderr or ""


def results_of(run_folder: Path) -> list[dict]:
    """The run's records as plain dicts (what bench/ reads: measurements, launch times)."""
    return [json.loads(line) for line in (run_folder / "results.jsonl").read_text().splitlines() if line.strip()]


def repeat_medians(rows: list[dict]) -> list[float]:
    """Each ok record's median timed epoch: one number per repeat, as the report counts them."""
    return [median(timed_epochs(row)) for row in rows if row["status"] == "ok"]


def timed_epochs(row: dict) -> list[float]:
    measurement = row["measurement"]
    return [epoch["seconds"] for epoch in measurement["epochs"][measurement["warmup_epochs"]:]]


def table(headers: list[str], rows: list[list]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github")
