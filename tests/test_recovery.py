"""The README's recovery (`snakemake --unlock`, then run again) after a SIGKILL at each stage.

The hard moment is a kill that lands when a job's output is complete but Snakemake has not yet
recorded it (the output exists, its `.snakemake/incomplete` marker too). It is made here
deterministically: snakemake is stopped (SIGSTOP) once the job's own log shows the job running,
the job is left to finish and write its output, and then the whole process group is killed.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import make_screen, run_snakemake, snakemake_cmd

OUT = Path("results") / "test"
# The first job of each stage: its log (written by the job itself) and one of its outputs.
STAGES = {
    "ingest": ("logs/ingest/chunk_00000.log", "ingest/chunk_00000.parquet"),
    "msa": ("logs/msa/chunk_00000.log", "msa/chunk_00000.parquet"),
    "inference": ("logs/inference/chunk_00000.log", "inference/chunk_00000.parquet"),
    "tables": ("logs/tables/chunk_00000.log", "tables/chunk_00000.samples.parquet"),
    "aggregate": ("logs/aggregate.log", "samples.parquet"),
    "report": ("logs/report.log", "report.html"),
}
# The small screen of conftest: 3 good queries (1, 2 and 2 chains; 0, 1 and 1 chain pairs; 20, 25
# and 26 tokens) x 1 seed x 2 samples; 2 queries rejected at ingest.
ROWS = {"samples": 6, "queries": 3, "failures": 2, "chains": 10, "chain_pairs": 4, "residues": 142}


def group_busy(pgid: int, leader: int) -> bool:
    """Whether any process of the group but its leader is still alive (zombies are done)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and int(stat.parent.name) != leader and fields[0] != "Z":
            return True
    return False


def kill_at(folder: Path, log: Path, unrecorded: bool, timeout: float = 300) -> None:
    """Run the workflow and SIGKILL it all once the job writing `log` runs: at once, or, when
    `unrecorded`, after freezing snakemake and letting the job finish and write its output."""
    log.unlink(missing_ok=True)  # the job's own log: it appears when the job has started
    stderr = folder / "snakemake.stderr"
    with stderr.open("w") as sink:
        process = subprocess.Popen(snakemake_cmd(folder, "--cores", "2"), start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.time() + timeout
    while not log.is_file():
        assert time.time() < deadline and process.poll() is None, \
            f"{log} never started:\n{stderr.read_text()[-3000:]}"
        time.sleep(0.01)
    if unrecorded:
        os.kill(process.pid, signal.SIGSTOP)  # snakemake can record nothing from here on
        while group_busy(process.pid, process.pid):
            assert time.time() < deadline, "the job never finished"
            time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def incomplete_marker(folder: Path, output: Path) -> Path:
    """Where Snakemake marks an output whose job started and was never recorded as finished."""
    name = base64.urlsafe_b64encode(str(output).encode()).decode()
    return folder / ".snakemake" / "incomplete" / name


def assert_every_file_reads(out: Path) -> None:
    import gemmi

    for path in out.rglob("*"):
        if path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".cif":
            assert len(gemmi.read_structure(str(path))[0]) > 0, path
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary files left behind"


@pytest.mark.slow
def test_kill_at_each_stage_mid_job_and_output_complete_but_unrecorded_then_unlock_and_rerun(tmp_path):
    folder = make_screen(tmp_path / "killed", chunk_size=10)  # one chunk of the good queries
    for stage, (log, output) in STAGES.items():
        kill_at(folder, folder / OUT / log, unrecorded=False)  # in the middle of the job
        run_snakemake(folder, "--unlock")  # the README's recovery; the next kill runs again
        kill_at(folder, folder / OUT / log, unrecorded=True)
        assert (folder / OUT / output).is_file(), f"{stage}: the job's output is complete"
        assert incomplete_marker(folder, OUT / output).is_file(), f"{stage}: ... but not recorded"
        run_snakemake(folder, "--unlock")
    run_snakemake(folder, "--cores", "2")

    out = folder / OUT
    assert_every_file_reads(out)
    for table, rows in ROWS.items():
        assert pq.read_metadata(out / f"{table}.parquet").num_rows == rows, table
    tasks = list((out / "predictions").glob("*/seed_7/task.json"))
    assert len(tasks) == 3
    n_samples = sum(len(json.loads(task.read_text())["samples"]) for task in tasks)
    assert n_samples == ROWS["samples"]
    assert "Nothing to be done" in run_snakemake(folder, "-n").stdout
