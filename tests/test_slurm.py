"""The screen through the Slurm workflow profile on a real single-node Slurm (tests/slurm_cluster.py):
the same tables as the local run, and an inference job killed by Slurm, by scancel and by the loss
of its node, redone by the next invocation without redoing the tasks it had finished."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import slurm_cluster
from conftest import REPO, make_screen, run_snakemake, snakemake_cmd

pytestmark = pytest.mark.slow

OUT = Path("results") / "test"
# The plugin's first status check comes 3 s after a submission (its default is 40 s, and the wait
# grows by 10 s after each check that sees nothing finish): seconds, not minutes, for tiny jobs.
CLUSTER = ("--workflow-profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account",
           "--slurm-init-seconds-before-status-checks", "3")
# An invocation that stops at the first failed job, so that the next one must redo it.
ONCE = ("--retries", "0")
# Columns that differ between two runs of the same screen (wall times).
TIMING = {"task_seconds"}


def slurm_job(folder: Path, rule: str, chunk: str) -> str:
    """The id of the running Slurm job of the screen in `folder` for `rule` and `chunk` (the plugin
    puts the rule and its wildcards in the job's comment)."""
    out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i %k %Z"], capture_output=True, text=True,
                         check=True).stdout
    (job,) = [job for job, comment, workdir in (line.split(" ", 2) for line in out.splitlines())
              if comment == f"rule_{rule}_wildcards_{chunk}" and Path(workdir) == folder]
    return job


def done_tasks(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (folder / OUT / "predictions").glob("*/seed_7/task.json")}


def chunk_of(folder: Path, query: str) -> str:
    """The chunk whose ingest table holds `query`."""
    return next(p.stem for p in (folder / OUT / "ingest").glob("chunk_?????.parquet")
                if query in set(pd.read_parquet(p, columns=["query_id"])["query_id"]))


def kill_after(folder: Path, tasks: int, kill, *args: str) -> tuple[str, str]:
    """Run the screen through Slurm until `tasks` tasks are done, then `kill` the inference job doing
    them; the job's id and the log of the run, which must fail."""
    run = subprocess.Popen(snakemake_cmd(folder, *CLUSTER, *ONCE, *args), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 200
        while len(done := done_tasks(folder)) < tasks:
            assert time.time() < deadline and run.poll() is None, "the inference job never got there"
            time.sleep(0.1)
        job = slurm_job(folder, "inference_chunk", chunk_of(folder, next(iter(done)).parts[-3]))
        kill(job)
        log = run.communicate(timeout=200)[0]
    finally:
        if run.poll() is None:
            run.terminate()  # Snakemake cancels its Slurm jobs
            run.wait(timeout=60)
    assert run.returncode != 0, log
    return job, log


@pytest.fixture(scope="module")
def cluster_screen(slurm, tmp_path_factory, request):
    """The small screen through Slurm, its inference job (3 tasks) killed twice: scancelled after
    its first task; in the next run, its node lost under it after one more task; then run to the
    end. Returns the folder and the task files' times at each kill."""
    if not slurm_cluster.ours():
        pytest.skip("these tests lose the node of the test Slurm; the Slurm here is another one")
    folder = make_screen(tmp_path_factory.mktemp("slurm"), chunk_size=5)
    request.addfinalizer(lambda: slurm_cluster.cancel_jobs_in(folder))

    job, log = kill_after(folder, 1, lambda job: subprocess.run(["scancel", job], check=True))
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in log, log
    cancelled = done_tasks(folder)
    assert len(cancelled) == 1, cancelled  # killed part-way, with two tasks for the next run

    request.addfinalizer(slurm_cluster.bring_back_node)  # healthy for the tests after, even on failure

    def lose(job: str) -> None:
        slurm_cluster.lose_node(job)
        slurm_cluster.bring_back_node()

    # --slurm-no-requeue: without it Slurm requeues the job itself, to start again 2 minutes later
    job, log = kill_after(folder, 2, lose, "--slurm-no-requeue")
    assert f"SLURM-job '{job}' failed due to a node failure, SLURM status is: 'NODE_FAIL'" in log, log
    lost = done_tasks(folder)
    assert len(lost) == 2 and cancelled.items() <= lost.items(), lost  # killed part-way again

    last = run_snakemake(folder, *CLUSTER)
    assert "submitted with SLURM jobid" in last.stdout + last.stderr, last.stderr
    return folder, {"cancelled": cancelled, "lost": lost}


def read(folder: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(folder / OUT / f"{table}.parquet")
    frame = frame.drop(columns=sorted(TIMING & set(frame.columns)))
    return frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)


@pytest.mark.parametrize("kill", ["cancelled", "lost"])
def test_killed_job_is_redone_without_redoing_its_finished_tasks(cluster_screen, kill):
    folder, done = cluster_screen
    assert {p: p.stat().st_mtime_ns for p in done[kill]} == done[kill]
    assert len(done_tasks(folder)) == 3


def test_the_lost_node_takes_jobs_again_and_the_screen_is_done(cluster_screen):
    folder, _ = cluster_screen
    assert slurm_cluster.responding()
    assert "Nothing to be done" in run_snakemake(folder, *CLUSTER, "-n").stdout


@pytest.mark.parametrize("table", ["samples", "queries", "chains", "chain_pairs", "residues", "failures"])
def test_the_cluster_run_gives_the_local_tables(cluster_screen, finished_screen, table):
    folder, _ = cluster_screen
    cluster, local = read(folder, table), read(finished_screen, table)
    if table == "failures":
        assert set(cluster["query_id"]) == {"bad_letters", "bad_smiles"}
    pd.testing.assert_frame_equal(cluster, local)
