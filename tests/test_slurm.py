"""The screen through the Slurm workflow profile on a real single-node Slurm (tests/slurm_cluster.py):
the same tables as the local run, and an inference job killed by Slurm, by scancel (redone by
Snakemake's retry) and by the loss of its node (redone by the next invocation), without redoing
the tasks it had finished."""

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
# Columns that differ between two runs of the same screen (wall times).
TIMING = {"task_seconds"}


def inference_jobs(folder: Path, chunk: str) -> list[str]:
    """Ids of the running Slurm jobs of the screen in `folder` that do `chunk`'s inference (the
    plugin puts the rule and its wildcards in the job's comment)."""
    out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i %k %Z"], capture_output=True, text=True,
                         check=True).stdout
    return [job for job, comment, workdir in (line.split(" ", 2) for line in out.splitlines())
            if comment == f"rule_inference_chunk_wildcards_{chunk}" and Path(workdir) == folder]


def done_tasks(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (folder / OUT / "predictions").glob("*/seed_7/task.json")}


def chunk_of(folder: Path, query: str) -> str:
    """The chunk whose ingest table holds `query`."""
    return next(p.stem for p in (folder / OUT / "ingest").glob("chunk_?????.parquet")
                if query in set(pd.read_parquet(p, columns=["query_id"])["query_id"]))


def cancel(job: str) -> None:
    subprocess.run(["scancel", job], check=True)


def lose_node(job: str) -> None:
    slurm_cluster.lose_node(job)
    slurm_cluster.bring_back_node()


def next_inference_job(folder: Path, tasks: int, killed: list[str], run: subprocess.Popen) -> str:
    """Wait until `tasks` tasks are done and an inference job not in `killed` does the rest; its id."""
    deadline, chunk = time.time() + 200, None
    while True:
        if chunk is None and (done := done_tasks(folder)):
            chunk = chunk_of(folder, next(iter(done)).parts[-3])
        if chunk and len(done_tasks(folder)) >= tasks:
            jobs = [job for job in inference_jobs(folder, chunk) if job not in killed]
            if len(jobs) == 1:
                return jobs[0]
        assert time.time() < deadline and run.poll() is None, "the inference job never got there"
        time.sleep(0.1)


def run_with_kills(folder: Path, kills, *args: str) -> tuple[list[str], list[dict[Path, int]], str]:
    """Run the screen through Slurm; for each (tasks, kill) of `kills`, once `tasks` tasks are done,
    `kill` the inference job (a new one each time) doing them. The jobs killed, the tasks done just
    after each kill, and the log of the run, which must fail."""
    run = subprocess.Popen(snakemake_cmd(folder, *CLUSTER, *args), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    jobs: list[str] = []
    done: list[dict[Path, int]] = []
    try:
        for tasks, kill in kills:
            job = next_inference_job(folder, tasks, jobs, run)
            kill(job)
            jobs.append(job)
            done.append(done_tasks(folder))
        log = run.communicate(timeout=300)[0]
    finally:
        if run.poll() is None:
            run.terminate()  # Snakemake cancels its Slurm jobs
            run.wait(timeout=120)
    assert run.returncode != 0, log
    return jobs, done, log


@pytest.fixture(scope="module")
def cluster_screen(slurm, tmp_path_factory, request):
    """The small screen through Slurm, its inference job (3 tasks) killed twice in one run: scancelled
    after its first task, then, in Snakemake's retry, its node lost under it after one more task;
    then run again, to the end. Returns the folder and the task files' times at each kill."""
    if not slurm_cluster.ours():
        pytest.skip("these tests lose the node of the test Slurm; the Slurm here is another one")
    folder = make_screen(tmp_path_factory.mktemp("slurm"), chunk_size=5)
    request.addfinalizer(lambda: slurm_cluster.cancel_jobs_in(folder))
    request.addfinalizer(slurm_cluster.bring_back_node)  # healthy for the tests after, even on failure

    # --slurm-no-requeue: without it Slurm requeues the job itself, to start again 2 minutes later
    (cancelled_job, lost_job), (cancelled, lost), log = run_with_kills(
        folder, [(1, cancel), (2, lose_node)], "--retries", "1", "--slurm-no-requeue")
    assert f"SLURM-job '{cancelled_job}' failed, SLURM status is: 'CANCELLED'" in log, log
    assert f"SLURM-job '{lost_job}' failed due to a node failure, SLURM status is: 'NODE_FAIL'" in log, log
    # killed part-way each time: the retry kept the first task, and left one for the next run
    assert len(cancelled) == 1 and len(lost) == 2 and cancelled.items() <= lost.items(), (cancelled, lost)

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
