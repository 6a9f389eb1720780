"""The aggregate stage: per-chunk partial tables, then the screen's tables combined from them.

`tables_chunk` reads a chunk's predictions once (its inference table, structures and full
confidences) and writes the chunk's partial tables, every row with its arm's columns;
`aggregate` only concatenates partials (every arm's, arm after arm), so a new chunk costs one
`tables_chunk` and a cheap combine.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..contracts import (
    FACTOR_COLUMNS,
    FAILURE_COLUMNS,
    INFERENCE_COLUMNS,
    INGEST_COLUMNS,
    INGEST_FAILURE_COLUMNS,
    MSA_COLUMNS,
    PARTS,
)
from ..contracts.schema import table_writer, to_arrow, write_table
from ..io import atomic_path
from .metadata import run_metadata
from .structure import read_tokens
from .tables import (
    best_per_query,
    columns,
    failures_table,
    rank_samples,
    read_tables,
    sample_details,
    samples_table,
)

log = logging.getLogger("foldscreen.aggregate")

STREAMED = ("chains", "chain_pairs", "residues")  # combined partial by partial, never all in memory
ROW_GROUP = 1 << 20


def part_path(folder: Path, chunk: str, table: str) -> Path:
    """Where `tables_chunk` writes one partial table of a chunk."""
    return Path(folder) / f"{chunk}.{table}.parquet"


def tables_chunk(inference_table: Path, ingest_table: Path, outputs: Mapping[str, Path],
                 arm: Mapping[str, Any]) -> None:
    """The chunk's partial tables (PARTS), its samples ranked, every row with the columns of its
    arm (ARM_COLUMNS) and its query's design factors (from the chunk's ingest table); a sample
    whose files cannot be read becomes a failure."""
    ranked = rank_samples(pd.read_parquet(inference_table, columns=INFERENCE_COLUMNS)).assign(**arm)
    factors = read_tables([ingest_table], ["query_id", *FACTOR_COLUMNS])
    ranked = ranked.merge(factors, "left", "query_id")
    chains: list[dict] = []
    pairs: list[dict] = []
    residues: list[pa.Table] = []
    failures: list[dict] = []
    for sample in ranked.to_dict("records"):
        try:
            tokens = read_tokens(Path(sample["tokens_path"]), Path(sample["model_path"]))
            confidences = read_confidences(Path(sample["confidences_path"]))
            sample_chains, sample_pairs, sample_residues = sample_details(sample, tokens, confidences)
        except Exception as err:  # one unreadable sample never stops the chunk
            log.error("%s seed %s sample %s: %s", sample["query_id"], sample["seed"], sample["sample"], err)
            field = f"seed {sample['seed']} sample {sample['sample']}"
            failures.append({"query_id": sample["query_id"], "source": sample["model_path"],
                             "stage": "aggregate", "field": field, "reason": f"{type(err).__name__}: {err}"})
            continue
        chains += sample_chains
        pairs += sample_pairs
        residues.append(pa.table(sample_residues))
    write_table(outputs["samples"], samples_table(ranked), "samples")
    write_table(outputs["chains"], pd.DataFrame(chains, columns=columns("chains")), "chains")
    write_table(outputs["chain_pairs"], pd.DataFrame(pairs, columns=columns("chain_pairs")), "chain_pairs")
    write_table(outputs["residues"], _concat(residues, "residues"), "residues")
    failed = (pd.DataFrame(failures, columns=FAILURE_COLUMNS).assign(**arm)
              .merge(factors, "left", "query_id"))
    write_table(outputs["failures"], failed, "failures")


def read_confidences(path: Path) -> dict[str, Any]:
    """OpenFold3's full confidences JSON (orjson: about 9x faster than json on these matrices)."""
    return orjson.loads(path.read_bytes())


@dataclass(frozen=True)
class ArmTables:
    """One arm's chunk tables, in chunk order, and the folder of its ranked/ structures."""

    columns: Mapping[str, Any]  # the arm's columns in every table (ARM_COLUMNS)
    msa: Sequence[Path]  # the msa tables of the arm's mode (shared with the arms of that mode)
    inference_failures: Sequence[Path]
    parts: Mapping[str, Sequence[Path]]  # the partial tables of tables_chunk, by table
    ranked: Path


def aggregate(ingest_tables: Sequence[Path], ingest_failures: Sequence[Path], arms: Sequence[ArmTables],
              out: Path, config_digest: str, created: datetime | None = None) -> None:
    """Combine every arm's partials into out/<table>.parquet (TABLES), arm after arm, and link
    each arm's best structures into its `ranked` folder."""
    samples_arrow = _concat([pq.read_table(p) for arm in arms for p in arm.parts["samples"]], "samples")
    samples = samples_arrow.to_pandas()
    metadata = run_metadata(samples, config_digest, created)
    write_table(out / "samples.parquet", samples_arrow, "samples", metadata)
    for name in STREAMED:
        _stream([p for arm in arms for p in arm.parts[name]], out / f"{name}.parquet", name, metadata)

    ingested = read_tables(ingest_tables, INGEST_COLUMNS)
    ingest_failed = read_tables(ingest_failures, INGEST_FAILURE_COLUMNS)
    queries, failures = [], []
    for arm in arms:
        arm_samples = samples[samples["arm"] == arm.columns["arm"]]
        best = arm_samples[arm_samples["rank"] == 1]
        ranked = link_ranked(arm.ranked, dict(zip(best["query_id"], best["model_path"])))
        arm_failures = failures_table(
            ingest_failed, read_tables(arm.msa, MSA_COLUMNS),
            read_tables([*arm.inference_failures, *arm.parts["failures"]], FAILURE_COLUMNS), ingested)
        queries.append(best_per_query(ingested, arm_samples, _best_pairs(arm.parts["chain_pairs"]),
                                      arm_failures, ranked, dict(arm.columns)))
        failures.append(arm_failures.assign(**arm.columns))
    write_table(out / "queries.parquet", _rows(queries, "queries"), "queries", metadata)
    write_table(out / "failures.parquet", _rows(failures, "failures"), "failures", metadata)


def _rows(frames: list[pd.DataFrame], name: str) -> pd.DataFrame:
    """Frames of the table `name` one after another (its empty frame if none has rows)."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns(name))


def _concat(tables: list[pa.Table], name: str) -> pa.Table:
    """Tables cast to the schema `name` and concatenated (its empty table if none)."""
    if not tables:
        return to_arrow(pd.DataFrame(columns=columns(name)), name)
    return pa.concat_tables([to_arrow(t, name) for t in tables])


def _best_pairs(paths: Sequence[Path]) -> pd.DataFrame:
    """The interface scores of every best sample (rank 1), read from the chain_pairs partials."""
    names = ["query_id", "rank", "ipsae", "pdockq2", "lis"]
    frames = [pq.read_table(p, columns=names, filters=[("rank", "=", 1)]).to_pandas() for p in paths]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=names)


def _stream(paths: Sequence[Path], path: Path, name: str, metadata: dict[str, str]) -> None:
    """Write the partials one after another into one file, atomically, in row groups of about
    ROW_GROUP rows; only one row group is in memory at a time."""
    with table_writer(path, name, metadata) as write:
        pending: list[pa.Table] = []
        for part in paths:
            pending.append(pq.read_table(part))
            if sum(t.num_rows for t in pending) >= ROW_GROUP:
                write(_concat(pending, name))
                pending = []
        if any(t.num_rows for t in pending):
            write(_concat(pending, name))


def link_ranked(folder: Path, best: dict[str, str]) -> dict[str, str]:
    """`<query>_rank_1.cif` for each query's best model (a hard link, else a copy); stale ones removed."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for query_id, source in best.items():
        target = folder / f"{query_id}_rank_1.cif"
        try:
            os.link(source, target)  # a new name appears whole: no temporary name needed
        except FileExistsError:
            if not os.path.samefile(source, target):
                _link_or_copy(Path(source), target)
        except OSError:  # another file system, or too many links
            _link_or_copy(Path(source), target)
        paths[query_id] = str(target)
    wanted = {Path(p).name for p in paths.values()}
    for stale in folder.glob("*_rank_1.cif"):
        if stale.name not in wanted:
            stale.unlink()
    return paths


def _link_or_copy(source: Path, target: Path) -> None:
    """Replace `target` by a link to `source` (a copy if that fails) through a temporary name."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def chunk_parts(folder: Path, chunks: Sequence[str]) -> dict[str, list[Path]]:
    """The partial tables of `chunks`, by table."""
    return {name: [part_path(folder, chunk, name) for chunk in chunks] for name in PARTS}
