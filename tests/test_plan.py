"""The screen plan: chunks of one size bucket in source order, and the sources read once per content."""

from __future__ import annotations

from pathlib import Path

import pytest

from foldscreen import plan, resources
from foldscreen.contracts import Failure, Query
from foldscreen.contracts.sizes import token_bucket


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
    assert [c.items for c in first] == [(0, 1), (2, 3), (4,)]
    assert first[0].n_tokens == 8 + 9 and first[0].tokens_squared == 8**2 + 9**2 and first[0].bucket == 64
    write_sheet(tmp_path, 6)
    second = plan.plan_screen(config(tmp_path))
    assert second[:2] == first[:2]  # same items, same digests: their jobs are not redone
    assert second[2].digest != first[2].digest and second[2].items == (4, 5)


def test_sources_are_read_once_per_content(tmp_path, monkeypatch):
    write_sheet(tmp_path, 5)
    chunks = plan.plan_screen(config(tmp_path))
    cached = sorted((tmp_path / "results" / "s" / "plan").glob("items-*"))
    assert [p.suffix for p in cached] == [".items", ".pickle"]  # the items, their index

    def no_reading(_):
        raise AssertionError("the sources were read again")
    monkeypatch.setattr(plan, "read_queries", no_reading)
    assert plan.plan_screen(config(tmp_path)) == chunks
    items = plan.chunk_items(config(tmp_path), list(chunks[1].items), chunks[1].digest)
    assert [item.query_id for item in items] == ["q2", "q3"]
    monkeypatch.undo()

    write_sheet(tmp_path, 4)  # changed content: read again, and the old items are dropped
    plan.plan_screen(config(tmp_path))
    now = sorted((tmp_path / "results" / "s" / "plan").glob("items-*"))
    assert len(now) == 2 and not set(now) & set(cached)

    whole = now[0].read_bytes()
    now[0].write_bytes(whole[:-1])  # an items file cut short is not used: the sources are read again
    chunk = plan.plan_screen(config(tmp_path))[1]
    assert now[0].read_bytes() == whole
    items = plan.chunk_items(config(tmp_path), list(chunk.items), chunk.digest)
    assert [item.query_id for item in items] == ["q2", "q3"]


def test_a_chunk_job_refuses_sources_changed_since_planning(tmp_path):
    write_sheet(tmp_path, 5)
    chunk = plan.plan_screen(config(tmp_path))[0]
    (tmp_path / "q.csv").write_text("id,sequence\nq0,GGGG\nq1,MKTAYIAKG\n")
    with pytest.raises(RuntimeError, match="changed after the workflow was planned"):
        plan.chunk_items(config(tmp_path), list(chunk.items), chunk.digest)


def sized_sheet(folder: Path, lengths: list[int]) -> None:
    rows = "".join(f"q{i},{'A' * n}\n" for i, n in enumerate(lengths))
    (folder / "q.csv").write_text("id,sequence\n" + rows)


def test_chunks_hold_queries_of_one_size_bucket_and_appending_changes_one_chunk_per_bucket(tmp_path):
    # a thousand tiny queries and one huge one, interleaved with mid-sized ones
    lengths = [10] * 5 + [900] + [10] * 995 + [100, 100, 10]
    sized_sheet(tmp_path, lengths)
    chunks = plan.plan_screen(config(tmp_path, chunk_size=20))
    for chunk in chunks:
        assert {token_bucket(lengths[i]) for i in chunk.items} == {chunk.bucket}  # one compiled shape
        assert len(chunk.items) <= 20 and list(chunk.items) == sorted(chunk.items)
    huge = next(c for c in chunks if 5 in c.items)
    assert huge.items == (5,) and huge.bucket == token_bucket(900)
    assert [c.name for c in chunks] == [f"chunk_{n:05d}" for n in range(len(chunks))]
    assert [c.items[0] for c in chunks] == sorted(c.items[0] for c in chunks)  # numbered by first item

    sized_sheet(tmp_path, lengths + [100, 10, 900])  # appended: one of each size
    grown = plan.plan_screen(config(tmp_path, chunk_size=20))
    changed = [c for c in chunks if c not in grown]
    assert len(changed) <= 3  # at most the last chunk of each bucket the new queries joined
    assert [g.name for g in grown[:len(chunks)]] == [c.name for c in chunks]  # none renamed
    assert all(c.items == g.items[:len(c.items)] for c, g in zip(chunks, grown))  # only grown


def test_a_query_too_large_for_the_gpu_fails_at_planning_with_a_reason(tmp_path):
    sized_sheet(tmp_path, [50, 2000, 60])
    cfg = config(tmp_path, chunk_size=5)
    cfg["inference"]["gpu_memory_gb"] = 80  # about 1,200 tokens unchunked
    chunks = plan.plan_screen(cfg)
    refused = next(c for c in chunks if 1 in c.items)
    assert refused.bucket == plan.NO_INFERENCE and refused.items == (1,)
    (failure,) = plan.chunk_items(cfg, list(refused.items), refused.digest)
    assert isinstance(failure, Failure) and failure.query_id == "q1" and failure.field == "n_tokens"
    assert "2000 tokens" in failure.reason and "inference.gpu_memory_gb = 80" in failure.reason
    ok = next(c for c in chunks if 0 in c.items)
    assert ok.items == (0, 2) and all(isinstance(i, Query) for i in plan.chunk_items(cfg, [0, 2], ok.digest))

    cfg["inference"]["model_chunk_size"] = 128  # chunked: the big one fits
    assert all(c.bucket != plan.NO_INFERENCE for c in plan.plan_screen(cfg))


def test_job_resources_grow_with_sizes_and_attempts():
    assert resources.max_tokens_within(80, chunked=False) == 1194
    assert resources.task_gib(resources.max_tokens_within(80, False), False) <= 80
    small, large = (resources.job_runtime_min(20, 20 * n**2, gpu=True, attempt=1) for n in (100, 1000))
    assert small < large and resources.job_runtime_min(20, 20 * 100**2, True, attempt=2) == 2 * small
    assert resources.job_mem_mb(1000, gpu=False, chunked=False, attempt=1) > 50_000  # the model on the host
    assert resources.job_mem_mb(1000, gpu=True, chunked=False, attempt=2) == 2 * resources.HOST_BASE_MB


def test_auto_chunks_double_with_the_screen_and_a_given_size_wins():
    auto = {"chunk_size": "auto", "token_budget": "auto"}
    assert plan.chunk_limits(auto, 5) == (20, 20_000)  # a screen of before: cut as before
    assert plan.chunk_limits(auto, 20_000) == (20, 20_000)
    assert plan.chunk_limits(auto, 20_001) == (40, 40_000)  # one step: both doubled
    assert plan.chunk_limits(auto, 90_000) == (160, 160_000)
    assert plan.chunk_limits(auto, 100_000) == (160, 160_000)
    assert plan.chunk_limits(auto, 1_000_000) == (1280, 1_280_000)
    assert plan.chunk_limits({**auto, "chunk_size": 50}, 100_000) == (50, 20_000)  # a number wins
    assert plan.chunk_limits({**auto, "token_budget": 9000}, 100_000) == (160, 9000)
    for n in (1, 19_999, 20_001, 39_999, 40_001, 10**6):
        size, _ = plan.chunk_limits(auto, n)
        assert -(-n // size) <= plan.AUTO_MAX_CHUNKS and (size == 20 or -(-n // (size // 2)) > 1000)


def test_a_screen_of_100000_queries_fills_about_a_thousand_auto_chunks():
    # token counts of the benchmark's sheet (50-300 residues), no sources read
    tokens = [50 + (i * 7919) % 251 for i in range(100_000)]
    screen = plan.ScreenItems([f"{i:064x}" for i in range(len(tokens))], tokens, [], Path())
    size, budget = plan.chunk_limits({"chunk_size": "auto", "token_budget": "auto"}, len(tokens))
    chunks = plan.plan_chunks(screen, size, budget, salt="")
    assert 625 <= len(chunks) <= 1000 and max(len(c.items) for c in chunks) == 160
    assert sorted(i for c in chunks for i in c.items) == list(range(len(tokens)))


def test_job_resources_follow_the_arms_samples_and_diffusion_steps():
    base = resources.job_runtime_min(20, 20 * 384**2, gpu=True, attempt=1)
    assert resources.job_runtime_min(20, 20 * 384**2, True, 1, samples=5, steps=None) == base
    assert resources.job_runtime_min(20, 20 * 384**2, True, 1, samples=25, steps=200) > 2 * base
    assert resources.job_runtime_min(20, 20 * 384**2, True, 1, samples=5, steps=20) < base
    one, many = (resources.job_mem_mb(1000, gpu=False, chunked=True, attempt=1, samples=n) for n in (1, 25))
    assert many - one > 5000  # about 9 GiB more on the host for 24 more samples of 1,000 tokens
    assert resources.job_mem_mb(1000, gpu=True, chunked=True, attempt=1, samples=25) == resources.HOST_BASE_MB
