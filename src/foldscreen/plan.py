"""The screen plan: the queries of the screen, grouped into chunks, known before any job runs.

The plan is made when the workflow is parsed, from a cheap read of the query sources (no
chemistry), so the Snakemake DAG is known up front without checkpoints. A chunk is a run of
consecutive source items (queries, and rows that could not be read); chunks are filled in
source order, so appending queries to a screen only changes the last chunk and adds new ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .queries import Query, read_queries
from .queries.readers import Item


@dataclass(frozen=True)
class Chunk:
    """Source items [start, end) of the screen, run by one job of each stage."""

    name: str
    start: int
    end: int
    n_tokens: int
    digest: str


def plan_chunks(items: list[Item], chunk_size: int, token_budget: int, salt: str) -> list[Chunk]:
    """At most `chunk_size` items and `token_budget` tokens per chunk, in source order.

    A query larger than the budget gets a chunk of its own. A chunk's digest changes when any
    of its items or the settings in `salt` change; that reruns the chunk's jobs.
    """
    bounds: list[list[int]] = []  # [start, end, tokens]
    for index, item in enumerate(items):
        tokens = item.n_tokens if isinstance(item, Query) else 0
        last = bounds[-1] if bounds else None
        if last is None or last[1] - last[0] >= chunk_size or last[2] + tokens > token_budget:
            bounds.append([index, index, 0])
        bounds[-1][1] = index + 1
        bounds[-1][2] += tokens
    return [
        Chunk(f"chunk_{n:05d}", start, end, tokens, items_digest(items[start:end], salt))
        for n, (start, end, tokens) in enumerate(bounds)
    ]


def items_digest(items: list[Item], salt: str) -> str:
    payload = json.dumps([salt, [asdict(item) for item in items]], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def settings_salt(config: dict[str, Any]) -> str:
    """The settings that decide whether a query is accepted (how chunks are cut is not one)."""
    return json.dumps(config["ingest"], sort_keys=True)


def source_paths(config: dict[str, Any]) -> list[Path]:
    return [Path(p) for p in config["queries"]]


def plan_screen(config: dict[str, Any]) -> list[Chunk]:
    """Read the screen's sources and split them into chunks."""
    items = read_queries(source_paths(config))
    inference = config["inference"]
    return plan_chunks(items, inference["chunk_size"], inference["token_budget"], settings_salt(config))


def chunk_items(config: dict[str, Any], start: int, end: int, digest: str) -> list[Item]:
    """The items of one chunk, read again by its job; refuses sources changed since planning."""
    items = read_queries(source_paths(config))[start:end]
    if items_digest(items, settings_salt(config)) != digest:
        raise RuntimeError("the query files changed after the workflow was planned; run snakemake again")
    return items
