"""A real single-node Slurm on this machine, for the cluster tests (Debian's slurm-wlm and munge).

Started as root: munged, then slurmctld and slurmd with `/etc/slurm/slurm.conf` (the path the
Slurm commands read by default: the executor plugin's job step drops SLURM_CONF). One node of
this machine's CPUs and memory, one partition, no accounting database (so Snakemake's Slurm
plugin watches jobs with squeue; MinJobAge keeps finished jobs visible to it).

    python tests/slurm_cluster.py start    # what the test fixture does; prints the daemons' pids
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
STATE = Path("/var/lib/foldscreen-slurm")
MARK = "# written by foldscreen tests/slurm_cluster.py"
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")


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
                              timeout=10).stdout.strip() in ("idle", "mix", "alloc")
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
    node = socket.gethostname().split(".")[0]
    for folder in (STATE / "ctld", STATE / "d"):
        folder.mkdir(parents=True, exist_ok=True)
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(slurm_conf(node, os.cpu_count() or 1, node_memory_mb()))
    pids = []
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        subprocess.run(["munged", "--force"], check=True)  # --force: a root-owned key is fine here
        pids.append(int(Path("/run/munge/munged.pid").read_text()))
    subprocess.run(["slurmctld", "-i"], check=True)  # -i: ignore state left by an earlier run
    subprocess.run(["slurmd"], check=True)
    deadline = time.time() + 60
    while not responding():
        if time.time() > deadline:
            log = (STATE / "slurmctld.log").read_text()[-2000:]
            raise RuntimeError(f"Slurm did not come up in 60 s; slurmctld.log ends:\n{log}")
        time.sleep(0.5)
    return pids + [int((STATE / f"{name}.pid").read_text()) for name in ("slurmctld", "slurmd")]


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
