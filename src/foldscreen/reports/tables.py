"""The screen's tables: every sample ranked, the best sample per query, and every failure."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..queries.ingest import FAILURE_COLUMNS

# OpenFold3's aggregated confidence fields, in its order; the dict-valued ones are JSON text.
SCORE_COLUMNS = ["sample_ranking_score", "iptm", "ptm", "avg_plddt", "gpde", "disorder", "has_clash"]
JSON_COLUMNS = ["chain_ptm", "chain_pair_iptm", "bespoke_iptm"]
SAMPLE_COLUMNS = (
    ["query_id", "seed", "sample", "rank"] + SCORE_COLUMNS + JSON_COLUMNS
    + ["model_path", "confidences_path", "aggregated_path", "task_seconds",
       "backend", "weights", "demo_weights"]
)
QUERY_COLUMNS = (
    ["query_id", "status", "n_tokens", "n_chains", "molecule_types", "n_samples",
     "best_seed", "best_sample"] + SCORE_COLUMNS
    + ["ranking_score_spread", "best_model_path", "demo_weights", "notes"]
)


def read_tables(paths: Iterable[Path], columns: list[str]) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def rank_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """Rank samples within each query by ranking score (1 = best; ties by seed, then sample)."""
    ordered = samples.sort_values(
        ["query_id", "sample_ranking_score", "seed", "sample"],
        ascending=[True, False, True, True], kind="mergesort",
    ).reset_index(drop=True)
    ordered["rank"] = ordered.groupby("query_id").cumcount() + 1
    return ordered[SAMPLE_COLUMNS]


def best_per_query(ingested: pd.DataFrame, ranked: pd.DataFrame, failures: pd.DataFrame) -> pd.DataFrame:
    """One row per ingested query, with its best sample's scores (ranked by ranking score)."""
    best = ranked[ranked["rank"] == 1].set_index("query_id")
    counts = ranked.groupby("query_id").size()
    spread = ranked.groupby("query_id")["sample_ranking_score"].agg(lambda s: s.max() - s.min())
    failed = set(failures["query_id"])
    rows = []
    for query in ingested.itertuples(index=False):
        row = {
            "query_id": query.query_id, "n_tokens": query.n_tokens, "n_chains": query.n_chains,
            "molecule_types": query.molecule_types, "notes": query.notes,
        }
        if query.query_id in best.index:
            top = best.loc[query.query_id]
            row.update({column: top[column] for column in SCORE_COLUMNS})
            row.update(status="predicted", n_samples=int(counts[query.query_id]),
                       best_seed=int(top["seed"]), best_sample=int(top["sample"]),
                       ranking_score_spread=float(spread[query.query_id]),
                       best_model_path=top["model_path"], demo_weights=bool(top["demo_weights"]))
        else:
            row.update(status="failed" if query.query_id in failed else "pending", n_samples=0)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=QUERY_COLUMNS)
    return frame.sort_values(["sample_ranking_score", "query_id"], ascending=[False, True],
                             na_position="last", kind="mergesort").reset_index(drop=True)


def failures_table(ingest_failures: pd.DataFrame, msa: pd.DataFrame,
                   inference_failures: pd.DataFrame) -> pd.DataFrame:
    """Every failure of every stage; an MSA failure is reported once per query and chain."""
    msa_failed = msa[msa["status"] == "failed"]
    msa_rows = pd.DataFrame({
        "query_id": msa_failed["query_id"], "source": "", "stage": "msa",
        "field": "chain " + msa_failed["chain_ids"], "reason": msa_failed["reason"],
    }, columns=FAILURE_COLUMNS)
    frames = [f for f in (ingest_failures, msa_rows, inference_failures) if len(f)]
    if not frames:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[FAILURE_COLUMNS].drop_duplicates(ignore_index=True)
