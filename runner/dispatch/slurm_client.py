"""Slurm's client commands (sbatch, squeue, scontrol, scancel), each with a time limit, and what they say, parsed."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from runner.errors import UserError

COMMAND_SECONDS = 60  # a Slurm command that has not answered by then is treated as failed


class SlurmError(Exception):
    """A Slurm command failed or did not answer; its words."""


@dataclass(frozen=True)
class JobState:
    state: str  # PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, NODE_FAIL, TIMEOUT...
    node: str
    reason: str


class Slurm:
    """Slurm's client commands, each with a time limit, and what they say, parsed. Nothing reaches a shell."""

    def _call(self, *args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(list(args), capture_output=True, text=True, timeout=COMMAND_SECONDS)
        except FileNotFoundError:
            raise UserError(f"{args[0]} not found: --dispatch slurm needs Slurm's client commands (sbatch, squeue, scontrol, scancel) on PATH")
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{args[0]} did not answer within {COMMAND_SECONDS} s")

    def check(self) -> str:
        """Slurm's version, once the controller has answered; a UserError when it does not."""
        version = self._call("sbatch", "--version").stdout.strip()
        try:
            ping = self._call("scontrol", "ping")
        except SlurmError as error:
            raise UserError(f"the Slurm controller does not answer: {error}")
        if ping.returncode != 0 or "DOWN" in ping.stdout:
            raise UserError(f"the Slurm controller does not answer (scontrol ping: {_words(ping.stdout + ping.stderr)})")
        return version or "unknown"

    def submit(self, arguments: list[str]) -> tuple[str | None, str]:
        """sbatch: (job id, "") when accepted, (None, sbatch's own message) when refused."""
        try:
            done = self._call("sbatch", "--parsable", *arguments)
        except SlurmError as error:
            return None, str(error)
        if done.returncode != 0:
            return None, _words(done.stderr.replace("sbatch: error: ", "")) or f"sbatch exited with code {done.returncode}"
        return done.stdout.strip().split(";")[0], ""

    def states(self, job_ids: list[str]) -> dict[str, JobState]:
        """squeue's word on the jobs, those that ended still included (for MinJobAge); ids it no longer knows are absent."""
        if not job_ids:
            return {}
        done = self._call("squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", "--format=%i|%T|%N|%r")
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:
                return {}  # none of them is known any more
            raise SlurmError(f"squeue: {_words(done.stderr) or f'exit code {done.returncode}'}")
        known = {}
        for line in done.stdout.splitlines():
            parts = line.split("|", 3)
            if len(parts) == 4:
                known[parts[0].strip()] = JobState(parts[1].strip(), parts[2].strip(), parts[3].strip())
        return known

    def show(self, job_id: str) -> dict[str, str]:
        """scontrol show job: its state, reason, exit code, nodes; {} when Slurm no longer knows it."""
        try:
            done = self._call("scontrol", "--oneliner", "show", "job", job_id)
        except SlurmError:
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", done.stdout)) if done.returncode == 0 else {}

    def cancel(self, job_ids: list[str]) -> None:
        if job_ids:
            self._call("scancel", *job_ids)


def _words(text: str) -> str:
    """A command's message on one line."""
    return " ".join(text.split())[:500]
