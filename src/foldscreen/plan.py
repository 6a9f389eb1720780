"""The screen plan: which queries there are and how they are grouped into chunk jobs.

The plan is made when the workflow is parsed, from a cheap read of the query sources (no
chemistry), so the Snakemake DAG is known up front without checkpoints. Chunks are filled in
source order, so appending queries to a screen only appends chunks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .queries import Query, read_queries


@dataclass(frozen=True)
class Chunk:
    """A group of queries run by one job of each stage."""

    name: str
    query_ids: tuple[str, ...]
    n_tokens: int
    digest: str


def plan_chunks(queries: list[Query], chunk_size: int, token_budget: int, salt: str) -> list[Chunk]:
    """Fill chunks in order: at most `chunk_size` queries and `token_budget` tokens each.

    A query larger than the budget gets a chunk of its own. The digest of a chunk changes when
    any of its queries or the settings in `salt` change, which reruns that chunk's jobs.
    """
    groups: list[list[Query]] = []
    tokens = 0
    for query in queries:
        if not groups or len(groups[-1]) >= chunk_size or tokens + query.n_tokens > token_budget:
            groups.append([])
            tokens = 0
        groups[-1].append(query)
        tokens += query.n_tokens
    chunks = []
    for index, group in enumerate(groups):
        digest = hashlib.sha256((salt + "".join(q.digest() for q in group)).encode()).hexdigest()
        chunks.append(Chunk(f"chunk_{index:05d}", tuple(q.query_id for q in group),
                            sum(q.n_tokens for q in group), digest[:16]))
    return chunks


def settings_salt(config: dict[str, Any]) -> str:
    """The settings that change what a chunk produces (not how it is split)."""
    inference = {k: v for k, v in config["inference"].items() if k not in ("chunk_size", "token_budget")}
    return json.dumps([config["ingest"], config["msa"], inference], sort_keys=True, default=str)


def plan_screen(config: dict[str, Any]) -> tuple[list[Query], list[Chunk]]:
    """Read the screen's sources and split its readable queries into chunks."""
    queries = [item for item in read_queries(Path(p) for p in config["queries"]) if isinstance(item, Query)]
    inference = config["inference"]
    chunks = plan_chunks(queries, inference["chunk_size"], inference["token_budget"], settings_salt(config))
    return queries, chunks
