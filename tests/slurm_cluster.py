"""A real single-node Slurm on this machine, for the cluster tests (Debian's slurm-wlm and munge).

Started as root: munged, then slurmctld and slurmd with `/etc/slurm/slurm.conf` (the path the
Slurm commands read by default: the executor plugin's job step drops SLURM_CONF). One node of
this machine's CPUs and memory, one partition, no accounting database (so Snakemake's Slurm
plugin watches jobs with squeue; MinJobAge keeps finished jobs visible to it). `lose_node` and
`bring_back_node` make the node fail under a running job, as a machine that hangs, and return it.

    python tests/slurm_cluster.py start    # what the test fixture does; prints the daemons' pids
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
STATE = Path("/var/lib/foldscreen-slurm")
MARK = "# written by foldscreen tests/slurm_cluster.py"
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")
UP = ("idle", "mix", "alloc")  # sinfo's short states of a node that takes jobs


def node_name() -> str:
    return socket.gethostname().split(".")[0]


def node_memory_mb() -> int:
    """RealMemory of the node: what the kernel reports, less a little (slurmd refuses more)."""
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    return total_kb // 1024 * 95 // 100


def slurm_conf(node: str, cpus: int, memory_mb: int) -> str:
    return f"""{MARK}
ClusterName=foldscreen
SlurmctldHost={node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={STATE}/ctld
SlurmdSpoolDir={STATE}/d
SlurmctldPidFile={STATE}/slurmctld.pid
SlurmdPidFile={STATE}/slurmd.pid
SlurmctldLogFile={STATE}/slurmctld.log
SlurmdLogFile={STATE}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# A DOWN node takes jobs again as soon as its slurmd answers, whatever downed it (1 would keep a
# node downed by scontrol down until `scontrol update State=RESUME`).
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName={node} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=main Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def responding() -> bool:
    """Whether a Slurm answers (any cluster, ours or one that was there before)."""
    try:
        return subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                              timeout=10).stdout.strip() in UP
    except (OSError, subprocess.TimeoutExpired):
        return False


def start() -> list[int]:
    """Start munged, slurmctld and slurmd (as root) unless a Slurm already answers; their pids."""
    if responding():
        return []
    if os.geteuid() != 0:
        raise RuntimeError("starting Slurm needs root (./install.sh installs slurm-wlm and munge as root)")
    if CONF.exists() and MARK not in CONF.read_text():
        raise RuntimeError(f"{CONF} exists and is not ours: not replacing it")
    node = node_name()
    for folder in (STATE / "ctld", STATE / "d"):
        folder.mkdir(parents=True, exist_ok=True)
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(slurm_conf(node, os.cpu_count() or 1, node_memory_mb()))
    pids = []
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        subprocess.run(["munged", "--force"], check=True)  # --force: a root-owned key is fine here
        pids.append(int(Path("/run/munge/munged.pid").read_text()))
    subprocess.run(["slurmctld", "-c"], check=True)  # -c: no jobs or node states of an earlier run
    subprocess.run(["slurmd"], check=True)
    deadline = time.time() + 60
    while not responding():
        if time.time() > deadline:
            log = (STATE / "slurmctld.log").read_text()[-2000:]
            raise RuntimeError(f"Slurm did not come up in 60 s; slurmctld.log ends:\n{log}")
        time.sleep(0.5)
    return pids + [int((STATE / f"{name}.pid").read_text()) for name in ("slurmctld", "slurmd")]


def ours() -> bool:
    """Whether the Slurm here is the test cluster this file writes (its nodes may be lost)."""
    return CONF.exists() and MARK in CONF.read_text()


def job_processes(job: str) -> set[int]:
    """Every process of a running job on this node: its steps' slurmstepd and all below them."""
    children: dict[int, list[int]] = {}
    roots = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        children.setdefault(parent, []).append(int(entry.name))
        if command.startswith(f"slurmstepd: [{job}.".encode()):
            roots.append(int(entry.name))
    found, todo = set(), roots
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def lose_node(job: str) -> None:
    """The node fails under the running `job`, as a machine that hangs: slurmd and every process of
    the job stop at once, the controller marks the node DOWN (what it does itself once slurmd has
    not answered for SlurmdTimeout, 300 s by default), and the job's processes die without a signal
    they could handle. Slurm ends the job NODE_FAIL, or requeues it unless it has --no-requeue."""
    os.kill(int((STATE / "slurmd.pid").read_text()), signal.SIGSTOP)
    stopped: set[int] = set()
    while new := job_processes(job) - stopped:  # again: a process may have forked meanwhile
        for pid in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= new
    if not stopped:
        raise RuntimeError(f"Slurm job {job} has no processes on this node")
    subprocess.run(["scontrol", "update", f"NodeName={node_name()}", "State=DOWN", "Reason=lost"],
                   check=True)
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def bring_back_node(timeout: float = 60) -> None:
    """The node back after `lose_node` (or anything that downed it): slurmd running again, and the
    node taking jobs (ReturnToService=2 returns it when slurmd answers; else RESUME)."""
    os.kill(int((STATE / "slurmd.pid").read_text()), signal.SIGCONT)
    node, start = node_name(), time.time()
    while (state := subprocess.run(["sinfo", "-h", "-n", node, "-o", "%t"], capture_output=True,
                                   text=True).stdout.strip()) not in UP:
        if time.time() > start + timeout:
            raise RuntimeError(f"node {node} is still {state!r} {timeout:.0f} s after slurmd resumed")
        if time.time() > start + 5:
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"],
                           capture_output=True)
        time.sleep(0.2)


def cancel_jobs_in(folder: Path) -> None:
    """Cancel the jobs still queued or running whose working directory is `folder`."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True,
                         check=True).stdout
    jobs = [job for job, workdir in (line.split(" ", 1) for line in out.splitlines())
            if Path(workdir).resolve() == folder.resolve()]
    if jobs:
        subprocess.run(["scancel", *jobs], check=True)


def stop(pids: list[int]) -> None:
    """Stop the daemons `start` started (by pid), slurmd and slurmctld first, then munged."""
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)


if __name__ == "__main__":
    if sys.argv[1:] == ["start"]:
        print(" ".join(map(str, start())))
    else:
        sys.exit(__doc__)
