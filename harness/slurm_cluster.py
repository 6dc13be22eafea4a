"""A real Slurm cluster on this machine, for the tests and the dispatch benchmark: one controller, three nodes.

    n1: 2 CPUs, two GPUs of type h100    n2: 1 CPU, one GPU of type h200    n3: 1 CPU, no GPU

Everything is real Slurm (Debian's slurmctld, slurmd and client commands) but the GPUs:
slurmd accepts only character or block devices as gres `File=` entries, so the cluster
makes its own, copies of /dev/null (major 1, minor 3), which nothing reads. Slurm
schedules them as typed GPUs and tells each job which it was granted (SLURM_JOB_GPUS,
CUDA_VISIBLE_DEVICES); no cell can compute on them.

The daemons live in a network namespace of their own with only a loopback interface:
with auth/none (no munge) anyone who reached their ports could run jobs as root, so
nothing outside this machine's test can. Client commands enter that namespace through
wrappers in <folder>/bin (put first on PATH, as `environment` does); every byte goes to
127.0.0.1. Stopping ends exactly the processes started here, by their ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
NODES = {"n1": {"cpus": 2, "gpus": ("h100", 2)}, "n2": {"cpus": 1, "gpus": ("h200", 1)}, "n3": {"cpus": 1, "gpus": None}}


def missing() -> str:
    """Why a cluster cannot be started here; "" when it can."""
    absent = [name for name in (*DAEMONS, *CLIENTS, "unshare", "nsenter", "ip") if shutil.which(name) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (apt-get install slurmctld slurmd slurm-client iproute2)"
    if os.geteuid() != 0:
        return "slurmd, device nodes and network namespaces need root (CI runs as root)"
    return ""


class LocalCluster:
    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs = []
        self.conf = folder / "slurm.conf"

    @property
    def environment(self) -> dict[str, str]:
        """What a client needs: the wrappers first on PATH, and this cluster's slurm.conf."""
        return {"PATH": f"{self.folder / 'bin'}:{os.environ['PATH']}", "SLURM_CONF": str(self.conf)}

    def start(self, deadline_seconds: float = 60) -> None:
        try:
            self._start(deadline_seconds)
        except BaseException:
            self.stop()
            raise

    def _start(self, deadline_seconds: float) -> None:
        for sub in ("state", "spool", "log", "dev", "bin"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        # The namespace, held open by a sleeping process: its loopback up, with a second loopback address,
        # since Slurm resolves with AI_ADDRCONFIG, which finds nothing where 127.0.0.1 is the only address.
        holder = subprocess.Popen(["unshare", "--net", "sh", "-c",
                                   "ip link set lo up && ip addr add 127.0.0.2/32 dev lo && echo up && exec sleep 86400"],
                                  stdout=subprocess.PIPE, text=True)
        self.processes["namespace"] = holder
        if holder.stdout.readline().strip() != "up":
            raise RuntimeError("could not make a network namespace with its loopback up")
        enter = ["nsenter", f"--net=/proc/{holder.pid}/ns/net"]
        for client in CLIENTS:
            wrapper = self.folder / "bin" / client
            wrapper.write_text(f"#!/bin/sh\nexec {' '.join(enter)} {shutil.which(client)} \"$@\"\n")
            wrapper.chmod(0o755)
        self._write_configuration()
        environment = {**os.environ, "SLURM_CONF": str(self.conf)}
        log = self.folder / "log"
        daemons = {"slurmctld": ["slurmctld", "-D", "-c"], **{node: ["slurmd", "-D", "-N", node] for node in NODES}}
        for name, command in daemons.items():
            self.logs.append(open(log / f"{name}.out", "w"))
            self.processes[name] = subprocess.Popen([*enter, *command, "-f", str(self.conf)], env=environment,
                                                    stdout=self.logs[-1], stderr=subprocess.STDOUT)
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}: {self.log_tail()}")
            if self.idle_nodes() == set(NODES):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the nodes were not idle within {deadline_seconds} s: {self.log_tail()}")

    def _write_configuration(self) -> None:
        ports = [6817, 6818, *range(6901, 6901 + len(NODES))]  # the namespace's own: nothing else listens there
        user = _user()
        folder = self.folder
        lines = [
            "ClusterName=cudnnmatrix",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            "AuthType=auth/none",  # no munge: the daemons are reachable from this namespace's loopback only
            "CredType=cred/none",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool'}/%n",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd'}-%n.pid",
            f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'log'}/slurmd-%n.log",
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",  # no accounting database: states come from squeue and scontrol
            "SchedulerType=sched/backfill",
            "SchedulerParameters=bf_interval=1",  # else a free node idles about 30 s behind a blocked job
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",  # else nodes whose CPU count differs from the machine's are drained
            "GresTypes=gpu",
            "InactiveLimit=0",
            "KillWait=30",  # Slurm's default: SIGTERM, then SIGKILL this much later
        ]
        gres = []
        device = 0
        for node, (name, spec) in enumerate(NODES.items()):
            entry = (f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={ports[2 + node]} "
                     f"CPUs={spec['cpus']} RealMemory=1000")
            if spec["gpus"]:
                gpu_type, count = spec["gpus"]
                entry += f" Gres=gpu:{gpu_type}:{count}"
                files = []
                for _ in range(count):
                    path = folder / "dev" / f"gpu{device}"
                    if not path.exists():
                        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 3))  # a character device, like /dev/null
                    files.append(str(path))
                    device += 1
                gres += [f"NodeName={name} Name=gpu Type={gpu_type} File={path}" for path in files]
            lines.append(entry)
        lines.append(f"PartitionName=debug Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        (folder / "gres.conf").write_text("\n".join(gres) + "\n")

    def client(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=check, env={**os.environ, **self.environment})

    def idle_nodes(self) -> set[str]:
        done = self.client("sinfo", "--noheader", "--Node", "--format=%N %t", check=False)
        return {line.split()[0] for line in done.stdout.splitlines() if line.split()[1:] == ["idle"]}

    def jobs(self) -> dict[str, tuple[str, str]]:
        """Every job the controller knows: id -> (state, node)."""
        done = self.client("squeue", "--noheader", "--states=all", "--format=%i|%T|%N", check=False)
        return {parts[0]: (parts[1], parts[2]) for parts in (line.split("|") for line in done.stdout.splitlines()) if len(parts) == 3}

    def settle(self, deadline_seconds: float = 90) -> None:
        """Cancel every job and wait until none is running, so that the next test starts on idle nodes."""
        self.client("scancel", "--user", _user(), check=False)
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            live = [job for job, (state, _) in self.jobs().items() if state in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")]
            if not live and self.idle_nodes() == set(NODES):
                return
            time.sleep(0.3)
        raise RuntimeError(f"jobs still running after {deadline_seconds} s: {self.jobs()}")

    def stop(self) -> None:
        """Cancel the jobs, then end exactly the processes started here, by their ids: nodes, controller, namespace."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                self.settle(60)
            except (RuntimeError, subprocess.SubprocessError):
                pass
        for name in [*NODES, "slurmctld", "namespace"]:
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        for log in self.logs:
            log.close()
        self.logs.clear()

    def log_tail(self, lines: int = 15) -> str:
        text = []
        for log in sorted((self.folder / "log").glob("*")):
            content = log.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {log.name}\n" + "\n".join(content))
        return "\n".join(text)


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name
