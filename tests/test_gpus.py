"""GPU slots across concurrent inference jobs (the local executor with --resources gpu=N), on the CPU:
real processes holding real flock locks, each seeing only the GPU it holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from foldscreen.inference.gpus import hold_gpu, visible_gpus

# A job: hold a GPU, check that the process sees only it, claim it exclusively while holding it
# (O_EXCL: a second holder of the same GPU fails loudly), then give it back.
JOB = """
import os, sys, time
from pathlib import Path
from foldscreen.inference.gpus import hold_gpu
folder, hold_s = Path(sys.argv[1]), float(sys.argv[2])
with hold_gpu(folder / "locks", wait=lambda: 0.01) as gpu:
    assert os.environ["CUDA_VISIBLE_DEVICES"] == gpu, os.environ["CUDA_VISIBLE_DEVICES"]
    claim = folder / f"using-{gpu}"
    os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    with open(folder / "log", "a") as log:
        log.write(f"{os.getpid()} {gpu} {len(list(folder.glob('using-*')))}\\n")
    time.sleep(hold_s)
    claim.unlink()
"""


def start_job(folder: Path, hold_s: float) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    return subprocess.Popen([sys.executable, "-c", JOB, str(folder), str(hold_s)], env=env,
                            stderr=subprocess.PIPE, text=True)


def test_ten_jobs_on_four_gpus_never_share_one_and_a_killed_holder_frees_its_gpu(tmp_path):
    jobs = [start_job(tmp_path, 0.3) for _ in range(10)]
    for job in jobs:
        assert job.wait(60) == 0, job.stderr.read()
    lines = [line.split() for line in (tmp_path / "log").read_text().splitlines()]
    assert len(lines) == 10
    assert {gpu for _, gpu, _ in lines} == {"0", "1", "2", "3"}  # all four used
    assert max(int(n) for *_, n in lines) <= 4

    # a holder killed with SIGKILL: its GPU is free again for the next job
    (tmp_path / "log").unlink()
    holders = [start_job(tmp_path, 60) for _ in range(4)]
    while len(list(tmp_path.glob("using-*"))) < 4:
        assert all(h.poll() is None for h in holders)
        time.sleep(0.02)
    victim = holders[0]
    victim_gpu = next(line.split()[1] for line in (tmp_path / "log").read_text().splitlines()
                      if line.split()[0] == str(victim.pid))
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    (tmp_path / f"using-{victim_gpu}").unlink()  # the claim marker the killed job could not remove
    late = start_job(tmp_path, 0)
    assert late.wait(30) == 0, late.stderr.read()
    assert (tmp_path / "log").read_text().splitlines()[-1].split()[1] == victim_gpu
    for holder in holders[1:]:
        holder.kill()
        holder.wait()


def test_no_choice_without_several_gpus(tmp_path):
    environ = {"CUDA_VISIBLE_DEVICES": "5"}
    with hold_gpu(tmp_path, environ) as gpu:
        assert gpu is None and environ == {"CUDA_VISIBLE_DEVICES": "5"}
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
