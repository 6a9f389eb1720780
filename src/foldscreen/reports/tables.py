"""The screen's tables: every sample ranked (the one place samples are ranked), its chains, chain
pairs and tokens, the best sample per query, and every failure. Columns, types and meanings:
workflow/schemas/tables/*.yaml."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..contracts import ARM_COLUMNS, FACTOR_COLUMNS, FAILURE_COLUMNS, SCORE_COLUMNS
from ..contracts.schema import table_schema
from .interface import pair_scores
from .structure import Tokens

SAMPLE_KEY = ["query_id", "seed", "sample", "rank", *ARM_COLUMNS]  # carried to its chains, pairs, tokens


def columns(table: str) -> list[str]:
    return table_schema(table).names


def read_tables(paths: Iterable[Path], names: list[str]) -> pd.DataFrame:
    """The `names` columns of Parquet files, concatenated; a column that a file lacks (written
    before the column existed, as the design factors) is null."""
    tables = [t for t in (_read_columns(p, names) for p in paths) if t.num_rows]
    if not tables:
        return pd.DataFrame(columns=names)
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def _read_columns(path: Path, names: list[str]) -> pa.Table:
    table = pq.read_table(path, columns=[n for n in names if n in pq.read_schema(path).names])
    for name in names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return table.select(names)


def rank_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """Rank samples within each query by ranking score (1 = best; ties by seed, then sample)."""
    ordered = samples.sort_values(
        ["query_id", "sample_ranking_score", "seed", "sample"],
        ascending=[True, False, True, True], kind="mergesort",
    ).reset_index(drop=True)
    ordered["rank"] = ordered.groupby("query_id").cumcount() + 1
    return ordered


def samples_table(ranked: pd.DataFrame) -> pd.DataFrame:
    """The samples table of a chunk: its ranked inference table, in the samples schema."""
    table = ranked.copy()
    table["has_clash"] = table["has_clash"].astype(float) > 0.5
    return table[columns("samples")]


def sample_details(sample: dict[str, Any], tokens: Tokens, confidences: dict[str, Any]
                   ) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """Rows of chains and chain_pairs, and the columns of residues, for one sample."""
    pae = np.asarray(confidences["pae"], dtype=float)
    atom_plddt = np.asarray(confidences["plddt"], dtype=float)
    if pae.shape != (len(tokens), len(tokens)) or len(atom_plddt) != tokens.n_atoms:
        raise ValueError(f"the structure has {len(tokens)} tokens and {tokens.n_atoms} atoms, the "
                         f"confidences a {pae.shape} PAE and {len(atom_plddt)} atom pLDDTs")
    plddt = tokens.token_plddt(atom_plddt)
    key = {k: sample[k] for k in SAMPLE_KEY}
    chain_ptm = json.loads(sample["chain_ptm"])
    pair_iptm, bespoke = json.loads(sample["chain_pair_iptm"]), json.loads(sample["bespoke_iptm"])
    chains = [{**key, "chain_id": c.chain_id, "molecule_type": c.molecule_type, "n_residues": c.n_residues,
               "n_tokens": len(c.tokens), "chain_ptm": chain_ptm.get(c.chain_id),
               "mean_plddt": float(atom_plddt[c.atoms].mean())} for c in tokens.chains]
    pairs = []
    ordered = sorted(tokens.chains, key=lambda c: c.chain_id)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            nucleic = bool({a.molecule_type, b.molecule_type} & {"rna", "dna"})
            scores = pair_scores(pae, plddt, tokens.positions, a.tokens, b.tokens, nucleic)
            name = f"({a.chain_id}, {b.chain_id})"
            pairs.append({**key, "chain_a": a.chain_id, "chain_b": b.chain_id,
                          "chain_pair_iptm": pair_iptm.get(name), "bespoke_iptm": bespoke.get(name),
                          **scores.as_row()})
    residues = {**{k: [v] * len(tokens) for k, v in key.items()}, "token_index": list(range(len(tokens))),
                "chain_id": tokens.chain_id, "residue_number": tokens.residue_number,
                "residue_name": tokens.residue_name, "atom_name": tokens.atom_name, "plddt": plddt}
    return chains, pairs, residues


def best_per_query(ingested: pd.DataFrame, samples: pd.DataFrame, best_pairs: pd.DataFrame,
                   failures: pd.DataFrame, ranked_paths: dict[str, str], arm: dict[str, Any]) -> pd.DataFrame:
    """One row per ingested query, with its best sample's scores in the arm `arm` (the samples,
    pairs and failures are the arm's); best ranking score first."""
    scores = samples.groupby("query_id", sort=False)["sample_ranking_score"]
    best = samples[samples["rank"] == 1].set_index("query_id")
    best = best[SCORE_COLUMNS + ["seed", "sample", "model_path", "demo_weights"]].rename(
        columns={"seed": "best_seed", "sample": "best_sample", "model_path": "best_model_path"})
    frame = (ingested[["query_id", "n_tokens", "n_chains", "molecule_types", "notes", *FACTOR_COLUMNS]]
             .set_index("query_id")
             .join(best)
             .join(pd.DataFrame({"n_samples": scores.size(), "ranking_score_std": scores.std(ddof=0),
                                 "ranking_score_spread": scores.max() - scores.min()}))
             .join(best_pairs.groupby("query_id")[["ipsae", "pdockq2", "lis"]].max()))
    predicted = frame.index.isin(best.index)
    frame["status"] = np.where(predicted, "predicted",
                               np.where(frame.index.isin(failures["query_id"]), "failed", "pending"))
    frame["n_samples"] = frame["n_samples"].fillna(0).astype(int)
    frame["ranked_model_path"] = frame.index.map(ranked_paths)
    frame = frame.reset_index().assign(**arm)[columns("queries")]
    return frame.sort_values(["sample_ranking_score", "query_id"], ascending=[False, True],
                             na_position="last", kind="mergesort").reset_index(drop=True)


def failures_table(ingest_failures: pd.DataFrame, msa: pd.DataFrame, later: pd.DataFrame,
                   ingested: pd.DataFrame) -> pd.DataFrame:
    """Every failure of every stage, with its query's design factors (an ingest failure brings
    its own; the others take their query's from `ingested`); an MSA failure is reported once per
    query and chain."""
    msa_failed = msa[msa["status"] == "failed"]
    msa_rows = pd.DataFrame({
        "query_id": msa_failed["query_id"], "source": "", "stage": "msa",
        "field": "chain " + msa_failed["chain_ids"], "reason": msa_failed["reason"],
    }, columns=FAILURE_COLUMNS)
    names = [*FAILURE_COLUMNS, *FACTOR_COLUMNS]  # the arm's columns are the caller's
    frames = [f for f in (msa_rows, later) if len(f)]
    if frames:
        factors = ingested[["query_id", *FACTOR_COLUMNS]]
        frames = [pd.concat(frames, ignore_index=True)[FAILURE_COLUMNS].merge(factors, "left", "query_id")]
    frames = [f for f in (ingest_failures, *frames) if len(f)]
    if not frames:
        return pd.DataFrame(columns=names)
    return pd.concat(frames, ignore_index=True)[names].drop_duplicates(ignore_index=True)
