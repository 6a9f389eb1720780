"""The MSA stage: one cached alignment per unique chain, one paired alignment per heteromer.

Every protein and RNA chain gets a main alignment: its own precomputed file when it has one (A3M
or Stockholm, in any mode; named in its query, or found in `msa.folder`), else one from the
mode's source (`single_sequence`: the chain alone; `server` and `local`: proteins are searched,
RNA chains stand alone; `precomputed`: a chain without a file fails). Every query with two or
more distinct protein sequences also gets a paired alignment from `server` or `local` (unless
its chains bring their own paired files). Unique sequences are looked up in the cache first;
the missing ones are fetched in one call.

A chain whose alignment fails fails its query (status `failed`, with the reason); a failed
pairing only leaves the query without paired rows (status `ok`, the reason noted). Nothing that
failed is cached.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..contracts import MSA_COLUMNS, Chain, chain_hash, load_queries
from ..io import file_sha256, write_parquet
from . import cache
from .formats import read_alignment
from .results import NoAlignment
from .sources import MODES, MsaSettings, SingleSequence, Source, make_source

__all__ = ["MODES", "build_msa_table", "build_msas", "retry_record"]

log = logging.getLogger("foldscreen.msa")

ALIGNED_TYPES = ("protein", "rna")
FOLDER_SUFFIXES = (".a3m", ".sto", ".stockholm")
UNPAIRED = "no paired alignment (the query is predicted without one)"
Queries = Sequence[tuple[str, tuple[Chain, ...]]]
ChainKey = tuple[str, str, str | None]  # the chain's type, sequence and own alignment file, if any


@dataclass(frozen=True)
class MsaResult:
    source: str
    path: str | None
    reason: str = ""


def build_msas(queries: Queries, settings: MsaSettings | str, root: Path | None = None) -> pd.DataFrame:
    """Alignments for every aligned chain of the queries, as rows of the MSA table.

    `settings` may be a mode name; `root` overrides the settings' cache folder.
    """
    if isinstance(settings, str):
        settings = MsaSettings(mode=settings)
    root = Path(root if root is not None else settings.cache)
    if settings.folder is not None:
        queries = [(query_id, with_folder_files(query_id, chains, settings.folder))
                   for query_id, chains in queries]
    source = make_source(settings)
    mains = main_alignments(queries, settings.mode, source, root)
    paired = paired_alignments(queries, mains, source, root)
    own = {(c.paired_msa_path, c.sequence): c for _, chains in queries for c in _aligned(chains)
           if c.paired_msa_path}
    own_paired = {key: _precomputed(c, Path(key[0]), root, paired=True) for key, c in own.items()}
    hashes = {key: chain_hash(key[0], key[1]) for key in mains}
    columns: dict[str, list[Any]] = {name: [] for name in MSA_COLUMNS}
    for query_id, chains in queries:
        for chain in _aligned(chains):
            key = _chain_key(chain)
            main = mains[key]
            pair, note = _pair_of(chain, paired.get(query_id), own_paired)
            failed = main.path is None or (chain.paired_msa_path is not None and pair is None)
            for name, value in zip(MSA_COLUMNS, (
                    query_id, ",".join(chain.chain_ids), hashes[key], main.source, main.path, pair,
                    "failed" if failed else "ok", main.reason or note)):
                columns[name].append(value)
    table = pd.DataFrame(columns, columns=MSA_COLUMNS)
    _log_summary(table, paired)
    return table


def build_msa_table(queries_table: Path, settings: MsaSettings | Mapping[str, Any],
                    out: Path) -> pd.DataFrame:
    """The MSA stage of one chunk: align the chunk's ingested queries, write its MSA table."""
    if not isinstance(settings, MsaSettings):
        settings = MsaSettings.from_config(settings)
    table = build_msas(load_queries(queries_table), settings)
    write_parquet(out, table)
    return table


def retry_record(table: pd.DataFrame, failed_runs: int) -> dict[str, Any]:
    """What the next run needs: how many runs of the chunk ended with failed alignments or
    pairings (`failed_runs` before this one), and which failed this time."""
    unpaired = table["reason"].astype(str).str.startswith(UNPAIRED)  # str: an empty table's is float
    failed = table[(table["status"] == "failed") | unpaired]
    return {"failed_runs": failed_runs + int(not failed.empty),
            "failed": [f"{row.query_id} chain {row.chain_ids}: {row.reason}" for row in failed.itertuples()]}


def with_folder_files(query_id: str, chains: tuple[Chain, ...], folder: Path) -> tuple[Chain, ...]:
    """The chains, those without a file of their own given the folder's file for them, if any.

    Per chain: `<folder>/<query>/<chain id>.a3m` or `<folder>/<query>_<chain id>.a3m`; per query
    (when its aligned chains are all one sequence): `<folder>/<query>.a3m`. Stockholm (`.sto`)
    files are found too.
    """
    aligned = _aligned(chains)
    one_sequence = len({chain.sequence for chain in aligned}) == 1
    found = []
    for chain in chains:
        if chain.msa_path or chain not in aligned:
            found.append(chain)
            continue
        stems = [f"{query_id}/{cid}" for cid in chain.chain_ids]
        stems += [f"{query_id}_{cid}" for cid in chain.chain_ids] + ([query_id] if one_sequence else [])
        files = [folder / f"{stem}{suffix}" for stem in stems for suffix in FOLDER_SUFFIXES]
        path = next((str(file) for file in files if file.is_file()), None)
        found.append(replace(chain, msa_path=path) if path else chain)
    return tuple(found)


def _aligned(chains: tuple[Chain, ...]) -> list[Chain]:
    return [chain for chain in chains if chain.molecule_type in ALIGNED_TYPES]


def _chain_key(chain: Chain) -> ChainKey:
    return chain.molecule_type, chain.sequence or "", chain.msa_path


def main_alignments(queries: Queries, mode: str, source: Source, root: Path) -> dict[ChainKey, MsaResult]:
    """The main alignment of every unique aligned chain; each unique sequence fetched at most once."""
    results: dict[ChainKey, MsaResult] = {}
    wanted: dict[str, list[ChainKey]] = {}
    sources = {source.name: source, SingleSequence.name: SingleSequence()}
    for _, chains in queries:
        for chain in _aligned(chains):
            key = _chain_key(chain)
            if key in results:
                continue
            if chain.msa_path:
                results[key] = _precomputed(chain, Path(chain.msa_path), root)
            elif mode == "precomputed":
                results[key] = MsaResult("precomputed", None,
                                         "msa mode is 'precomputed' but the chain has no MSA file")
            else:
                name = source.name if chain.molecule_type == "protein" else SingleSequence.name
                wanted.setdefault(name, []).append(key)
                results[key] = MsaResult(name, None, "pending")
    for name, chains in wanted.items():
        results.update(_search(sources[name], chains, root))
    return results


def _search(source: Source, chains: list[ChainKey], root: Path) -> dict[ChainKey, MsaResult]:
    """Cached or fetched alignments of chains from one source."""
    version = (source.version,) if source.version else ()
    keys = {ck: cache.entry_key(ck[0], ck[1], *version) for ck in chains}
    sequences = {keys[ck]: ck[1] for ck in chains}

    def fetch(todo: dict[str, str], deliver: cache.Deliver) -> dict[str, Any]:
        log.info("%s: aligning %d sequences", source.name, len(todo))
        key_of = {sequence: key for key, sequence in todo.items()}
        found = source.align(list(todo.values()), root / ".work",
                             lambda sequence, result: deliver(key_of[sequence], result))
        return {key: found.get(sequence) for key, sequence in todo.items()}

    failures = cache.fill(root, source.name, sequences, fetch,
                          lambda key, text: cache.store(root, source.name, key, text))
    return {ck: MsaResult(source.name, None, f"{source.name}: {failures[key]}") if key in failures
            else MsaResult(source.name, cache.main_path_str(root, source.name, key))
            for ck, key in keys.items()}


def paired_alignments(queries: Queries, mains: Mapping[ChainKey, MsaResult], source: Source,
                      root: Path) -> dict[str, dict[str, str] | str]:
    """For each query with >= 2 distinct protein sequences: sequence -> paired A3M, or why none."""
    if not source.pairs:
        return {}
    folder = f"{source.name}.paired"
    query_keys: dict[str, str] = {}
    chain_sets: dict[str, tuple[str, ...]] = {}
    unpaired: dict[tuple[str, ...], list[str]] = {}
    for query_id, chains in queries:
        proteins = [c for c in chains if c.molecule_type == "protein"]
        if len(proteins) < 2 or any(c.paired_msa_path for c in chains):
            continue  # nothing to pair, or the user's own pairing
        main = {c.sequence or "": mains[_chain_key(c)].path for c in proteins}
        if len(main) < 2 or None in main.values():
            continue  # a homomer, or a query that fails anyway
        chain_set = tuple(sorted(main))
        if chain_set not in unpaired:
            unpaired[chain_set] = [main[s] or "" for s in chain_set]
        # The unpaired entries are part of the key: species pairing is made from them.
        parts = (os.path.basename(os.path.dirname(path)) for path in unpaired[chain_set])
        key = cache.paired_key(chain_set, source.version, *parts)
        query_keys[query_id], chain_sets[key] = key, chain_set

    def fetch(todo: dict[str, tuple[str, ...]], deliver: cache.Deliver) -> dict[str, Any]:
        log.info("%s: pairing %d chain sets", source.name, len(todo))
        key_of = {chain_set: key for key, chain_set in todo.items()}
        inputs = {chain_set: [Path(p) for p in unpaired[chain_set]] for chain_set in todo.values()}
        found = source.pair(list(todo.values()), inputs, lambda chain_set, result: deliver(
            key_of[chain_set], _checked_pairing(result, len(chain_set))))
        return {key: _checked_pairing(found.get(chain_set), len(chain_set))
                for key, chain_set in todo.items()}

    failures = cache.fill(root, folder, chain_sets, fetch,
                          lambda key, texts: cache.store_paired(root, folder, key, texts))
    files: dict[str, dict[str, str] | str] = {}
    for key, chain_set in chain_sets.items():
        paths = cache.paired_path_strs(root, folder, key, len(chain_set))
        files[key] = failures.get(key) or dict(zip(chain_set, paths))
    return {query_id: files[key] for query_id, key in query_keys.items()}


def _checked_pairing(result: Any, n_chains: int) -> Any:
    if isinstance(result, list) and len(result) != n_chains:
        return NoAlignment(f"{len(result)} paired alignments came back for {n_chains} chains")
    return result


def _pair_of(chain: Chain, paired: dict[str, str] | str | None,
             own: Mapping[tuple[str, str | None], MsaResult]) -> tuple[str | None, str]:
    """The chain's paired alignment, and a note when its query has none."""
    if chain.paired_msa_path:
        result = own[(chain.paired_msa_path, chain.sequence)]
        return result.path, result.reason
    if chain.molecule_type != "protein" or paired is None:
        return None, ""
    if isinstance(paired, str):
        return None, f"{UNPAIRED}: {paired}"
    return paired[chain.sequence or ""], ""


def _precomputed(chain: Chain, source: Path, root: Path, paired: bool = False) -> MsaResult:
    """Copy a chain's own alignment file (A3M or Stockholm) into the cache, after checking it."""
    kind = "precomputed.paired" if paired else "precomputed"
    try:
        text = read_alignment(source)
    except (OSError, ValueError) as err:
        return MsaResult(kind, None, f"cannot read {source}: {getattr(err, 'strerror', None) or err}")
    if first_a3m_sequence(text) != chain.sequence:
        return MsaResult(kind, None, f"{source.name}: its first sequence is not the chain's sequence")
    sequence = chain.sequence or ""
    if paired:
        key = cache.paired_key((sequence,), file_sha256(source))
        return MsaResult(kind, str(cache.store_paired(root, kind, key, [text])[0]))
    key = cache.entry_key(chain.molecule_type, sequence, file_sha256(source))
    return MsaResult(kind, str(cache.store(root, kind, key, text)))


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


def _log_summary(table: pd.DataFrame, paired: Mapping[str, dict[str, str] | str]) -> None:
    failed = table[table["status"] == "failed"]
    n_pair_failed = sum(isinstance(p, str) for p in paired.values())
    log.info("%d chains of %d queries: %d unique alignments, %d chains failed; %d queries paired, %d without",
             len(table), table["query_id"].nunique(), table["path"].nunique(), len(failed),
             len(paired) - n_pair_failed, n_pair_failed)
    for row in failed.itertuples(index=False):
        log.warning("%s chain %s: %s", row.query_id, row.chain_ids, row.reason)
