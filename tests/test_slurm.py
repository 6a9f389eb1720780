"""The screen through the Slurm workflow profile on a real single-node Slurm (tests/slurm_cluster.py):
the same tables as the local run, and a job killed by Slurm (scancel) redone by the next invocation
without redoing the tasks it had finished."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, make_screen, run_snakemake, snakemake_cmd

pytestmark = pytest.mark.slow

OUT = Path("results") / "test"
# The plugin's first status check comes 3 s after a submission (its default is 40 s, and the wait
# grows by 10 s after each check that sees nothing finish): seconds, not minutes, for tiny jobs.
CLUSTER = ("--workflow-profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account",
           "--slurm-init-seconds-before-status-checks", "3")
# Columns that differ between two runs of the same screen (wall times).
TIMING = {"task_seconds"}


def slurm_jobs(rule: str) -> list[str]:
    """Ids of the running Slurm jobs of `rule` (the plugin puts the rule in the job's comment)."""
    out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i %k"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if f"rule_{rule}" in line]


@pytest.fixture(scope="module")
def cluster_screen(slurm, tmp_path_factory):
    """The small screen through Slurm: its inference job scancelled after its first task, then
    run again. Returns the folder and the task files' times before the second run."""
    folder = make_screen(tmp_path_factory.mktemp("slurm"), chunk_size=5)
    predictions = folder / OUT / "predictions"
    first = subprocess.Popen(snakemake_cmd(folder, *CLUSTER, "--retries", "0"), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 200
    while not list(predictions.glob("*/seed_7/task.json")):
        assert time.time() < deadline and first.poll() is None, "inference never started"
        time.sleep(0.2)
    (job,) = slurm_jobs("inference_chunk")
    subprocess.run(["scancel", job], check=True)
    log = first.communicate(timeout=200)[0]
    assert first.returncode != 0 and f"SLURM-job '{job}' failed" in log, log
    done = {p: p.stat().st_mtime_ns for p in predictions.glob("*/seed_7/task.json")}
    assert 1 <= len(done) < 3  # killed part-way

    second = run_snakemake(folder, *CLUSTER)
    assert "Submitted" in second.stdout + second.stderr or "submitted with SLURM jobid" in second.stderr
    return folder, done


def read(folder: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(folder / OUT / f"{table}.parquet")
    frame = frame.drop(columns=sorted(TIMING & set(frame.columns)))
    return frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)


def test_killed_job_is_redone_without_redoing_its_finished_tasks(cluster_screen):
    folder, done = cluster_screen
    assert {p: p.stat().st_mtime_ns for p in done} == done
    assert len(list((folder / OUT / "predictions").glob("*/seed_7/task.json"))) == 3
    assert "Nothing to be done" in run_snakemake(folder, *CLUSTER, "-n").stdout


@pytest.mark.parametrize("table", ["samples", "queries", "chains", "chain_pairs", "residues", "failures"])
def test_the_cluster_run_gives_the_local_tables(cluster_screen, finished_screen, table):
    folder, _ = cluster_screen
    cluster, local = read(folder, table), read(finished_screen, table)
    if table == "failures":
        assert set(cluster["query_id"]) == {"bad_letters", "bad_smiles"}
    pd.testing.assert_frame_equal(cluster, local)
