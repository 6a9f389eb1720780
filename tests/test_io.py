"""Atomic writes: whole files under their final names, readable as the umask says."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from foldscreen.contracts import FACTOR_COLUMNS, FAILURE_COLUMNS
from foldscreen.contracts.schema import write_table
from foldscreen.io import atomic_write_json, fresh_dir, write_parquet


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    failures = pd.DataFrame([["q", "s.csv:2", "ingest", "id", "why"]], columns=FAILURE_COLUMNS)
    previous = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "record.json", {"a": 1})
        write_parquet(tmp_path / "ingest.parquet", failures)
        arm = {"arm": "default", "samples_per_seed": 1, "recycles": 3, "diffusion_steps": 200,
               "precision": "float32", "msa_mode": "single_sequence"}
        final = failures.reindex(columns=[*FAILURE_COLUMNS, *FACTOR_COLUMNS]).assign(**arm)
        write_table(tmp_path / "failures.parquet", final, "failures")
        folder = fresh_dir(tmp_path, ".seed_1.")
    finally:
        os.umask(previous)
    for name in ("record.json", "ingest.parquet", "failures.parquet"):
        assert mode(tmp_path / name) == file_mode, name
    assert mode(folder) == dir_mode
    assert pd.read_parquet(tmp_path / "failures.parquet")[FAILURE_COLUMNS].equals(failures)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["record.json", "ingest.parquet", "failures.parquet", folder.name])  # no temporary left


def test_a_rerun_job_removes_what_its_killed_run_left(tmp_path):
    from foldscreen.io import remove_leftovers

    for name in (".a.parquet.1f2e.tmp", ".b.parquet.77aa.tmp", "a.parquet"):
        (tmp_path / name).write_text("x")
    remove_leftovers([str(tmp_path / "a.parquet")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.parquet.77aa.tmp", "a.parquet"]


def test_a_rerun_ingest_removes_the_record_its_killed_run_was_writing(tmp_path):
    """A query's record is not a declared output of its ingest job: the job removes its leftover."""
    from foldscreen.contracts.records import Chain, Query
    from foldscreen.queries.ingest import ingest
    from foldscreen.queries.validate import Limits

    records = tmp_path / "queries"
    records.mkdir()
    (records / ".q1.json.d4dfe04aefddb5ae.tmp").write_text('{"queries": ')  # killed mid-write
    (records / ".q2.json.0123456789abcdef.tmp").write_text("{")  # another chunk's, writing now
    query = Query(query_id="q1", original_id="q1", source="s.fasta",
                  chains=[Chain(molecule_type="protein", chain_ids=("A",), sequence="MKTAYIAKQR")])
    limits = Limits(max_tokens=100, max_chain_length=100)
    ingest([query], limits, records, tmp_path / "q.parquet", tmp_path / "f.parquet")
    assert sorted(p.name for p in records.iterdir()) == [".q2.json.0123456789abcdef.tmp", "q1.json"]
