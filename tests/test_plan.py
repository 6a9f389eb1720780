"""The screen plan: chunks cut in source order, and the sources read once per content."""

from __future__ import annotations

from pathlib import Path

import pytest

from foldscreen import plan


def config(folder: Path, chunk_size: int = 2) -> dict:
    return {"screen": "s", "results": str(folder / "results"), "queries": [str(folder / "q.csv")],
            "ingest": {"max_tokens": 5120, "max_chain_length": 4000},
            "inference": {"chunk_size": chunk_size, "token_budget": 20000}}


def write_sheet(folder: Path, n: int) -> None:
    rows = "".join(f"q{i},MKTAYIAK{'G' * i}\n" for i in range(n))
    (folder / "q.csv").write_text("id,sequence\n" + rows)


def test_chunks_follow_the_sources_and_appending_keeps_old_chunks(tmp_path):
    write_sheet(tmp_path, 5)
    first = plan.plan_screen(config(tmp_path))
    assert [(c.start, c.end) for c in first] == [(0, 2), (2, 4), (4, 5)]
    assert first[0].n_tokens == 8 + 9
    write_sheet(tmp_path, 6)
    second = plan.plan_screen(config(tmp_path))
    assert second[:2] == first[:2]  # same items, same digests: their jobs are not redone
    assert second[2].digest != first[2].digest and second[2].end == 6


def test_sources_are_read_once_per_content(tmp_path, monkeypatch):
    write_sheet(tmp_path, 5)
    chunks = plan.plan_screen(config(tmp_path))
    cached = list((tmp_path / "results" / "s" / "plan").glob("items-*.pickle"))
    assert len(cached) == 1

    def no_reading(_):
        raise AssertionError("the sources were read again")
    monkeypatch.setattr(plan, "read_queries", no_reading)
    assert plan.plan_screen(config(tmp_path)) == chunks
    items = plan.chunk_items(config(tmp_path), chunks[1].start, chunks[1].end, chunks[1].digest)
    assert [item.query_id for item in items] == ["q2", "q3"]
    monkeypatch.undo()

    write_sheet(tmp_path, 4)  # changed content: read again, and the old items are dropped
    plan.plan_screen(config(tmp_path))
    now = list((tmp_path / "results" / "s" / "plan").glob("items-*.pickle"))
    assert len(now) == 1 and now != cached


def test_a_chunk_job_refuses_sources_changed_since_planning(tmp_path):
    write_sheet(tmp_path, 5)
    chunk = plan.plan_screen(config(tmp_path))[0]
    (tmp_path / "q.csv").write_text("id,sequence\nq0,GGGG\nq1,MKTAYIAKG\n")
    with pytest.raises(RuntimeError, match="changed after the workflow was planned"):
        plan.chunk_items(config(tmp_path), chunk.start, chunk.end, chunk.digest)
