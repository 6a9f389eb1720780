"""The MSA stage: one cached alignment per unique chain of a set of queries.

Sources so far: a precomputed A3M named by the query (any mode), and a single-sequence
alignment (the query alone) in `single_sequence` mode. `precomputed` mode requires a file for
every protein and RNA chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..io import file_sha256, write_parquet
from ..queries.ingest import load_queries
from ..queries.records import Chain
from . import cache

MODES = ("single_sequence", "precomputed")
ALIGNED_TYPES = ("protein", "rna")
MSA_COLUMNS = ["query_id", "chain_ids", "chain_hash", "source", "path", "status", "reason"]


@dataclass(frozen=True)
class MsaResult:
    source: str
    path: str | None
    reason: str = ""


def build_chain_msa(chain: Chain, mode: str, root: Path) -> MsaResult:
    """Find or make the cached alignment of one chain."""
    sequence = chain.sequence or ""
    if chain.msa_path:
        return _precomputed(chain, Path(chain.msa_path), root)
    if mode == "precomputed":
        return MsaResult("precomputed", None, "msa mode is 'precomputed' but the chain has no MSA file")
    key = cache.entry_key(chain.molecule_type, sequence)
    path = cache.lookup(root, "single_sequence", key) or cache.store(
        root, "single_sequence", key, f">query\n{sequence}\n")
    return MsaResult("single_sequence", str(path))


def _precomputed(chain: Chain, source: Path, root: Path) -> MsaResult:
    if source.suffix.lower() != ".a3m":
        return MsaResult("precomputed", None, f"{source.name}: only A3M alignments are supported")
    try:
        text = source.read_text()
    except OSError as err:
        return MsaResult("precomputed", None, f"cannot read {source}: {err.strerror}")
    first = first_a3m_sequence(text)
    if first != chain.sequence:
        return MsaResult("precomputed", None,
                         f"{source.name}: its first sequence is not the chain's sequence")
    key = cache.entry_key(chain.molecule_type, first, file_sha256(source))
    path = cache.lookup(root, "precomputed", key) or cache.store(root, "precomputed", key, text)
    return MsaResult("precomputed", str(path))


def first_a3m_sequence(text: str) -> str:
    """The first sequence of an A3M alignment, without gaps and insertions."""
    lines: list[str] = []
    started = False
    for line in text.splitlines():
        if line.startswith(">"):
            if started:
                break
            started = True
        elif started:
            lines.append(line.strip())
    return "".join(ch for ch in "".join(lines) if ch.isupper())


def build_msas(queries: list[tuple[str, tuple[Chain, ...]]], mode: str, root: Path) -> pd.DataFrame:
    """Alignments for every aligned chain of the queries; each unique chain is handled once."""
    if mode not in MODES:
        raise ValueError(f"unknown msa mode {mode!r} (use one of {', '.join(MODES)})")
    done: dict[tuple[str, str | None], MsaResult] = {}
    rows = []
    for query_id, chains in queries:
        for chain in chains:
            if chain.molecule_type not in ALIGNED_TYPES:
                continue
            key = (chain.hash, chain.msa_path)
            if key not in done:
                done[key] = build_chain_msa(chain, mode, root)
            result = done[key]
            rows.append({
                "query_id": query_id,
                "chain_ids": ",".join(chain.chain_ids),
                "chain_hash": chain.hash,
                "source": result.source,
                "path": result.path,
                "status": "ok" if result.path else "failed",
                "reason": result.reason,
            })
    return pd.DataFrame(rows, columns=MSA_COLUMNS)


def build_msa_table(queries_table: Path, mode: str, root: Path, out: Path) -> None:
    """The MSA stage of one chunk: align the chunk's ingested queries, write its MSA table."""
    write_parquet(out, build_msas(load_queries(queries_table), mode, root))
