"""The columns of every table that one stage writes and another reads.

Per chunk: the ingest table and its failures (`<out>/ingest/<chunk>[.failures].parquet`), the
MSA table (`msa/<chunk>.parquet`), the inference table and its failures
(`inference/<chunk>[.failures].parquet`), and the partial tables of the reports stage
(`tables/<chunk>.<part>.parquet`, PARTS). Per screen: the final tables (TABLES), whose columns,
types and meanings are written down in `schemas/tables/<table>.yaml` (see `schema`).
"""

from __future__ import annotations

from pathlib import Path

from .records import Chain, chains_from_json

# The `weights` value of the tiny random-weight demo model (config, tables and metadata).
DEMO_WEIGHTS = "demo"

# One failure (a row of every failures table): the query, where it came from, the stage, the
# field at fault and the reason.
FAILURE_COLUMNS = ["query_id", "source", "stage", "field", "reason"]

# The factors of a query made by a design (queries/designs.py; README "Designs"), null for the
# others: columns of the ingest tables (queries and failures) and of the final samples, queries
# and failures tables. The counts are integers, the rest strings.
FACTOR_COLUMNS = ["design", "design_kind", "bait", "prey", "target", "ligand_id", "mutation",
                  "copies", "bait_copies", "prey_copies"]
FACTOR_COUNTS = ("copies", "bait_copies", "prey_copies")

# The ingest table: one row per accepted query; `record` holds its chains as JSON.
INGEST_COLUMNS = ["query_id", "original_id", "source", "n_chains", "n_tokens",
                  "molecule_types", "chain_hashes", "digest", "record", "notes", *FACTOR_COLUMNS]

# The ingest failures table: a failure and the factors of its design's query.
INGEST_FAILURE_COLUMNS = [*FAILURE_COLUMNS, *FACTOR_COLUMNS]

# The MSA table: one row per aligned chain of a query (status ok or failed, with the reason).
MSA_COLUMNS = ["query_id", "chain_ids", "chain_hash", "source", "path", "paired_path", "status", "reason"]

# OpenFold3's aggregated confidence fields, in its order; the dict-valued ones are JSON text.
SCORE_COLUMNS = ["sample_ranking_score", "iptm", "ptm", "avg_plddt", "gpde", "disorder", "has_clash"]
JSON_COLUMNS = ["chain_ptm", "chain_pair_iptm", "bespoke_iptm"]

# The inference table: one row per predicted sample, unranked (the reports stage ranks);
# `tokens_path` is the task's token layout (`layout`).
INFERENCE_COLUMNS = (
    ["query_id", "seed", "sample", "n_tokens", "n_atoms"] + SCORE_COLUMNS + JSON_COLUMNS
    + ["model_path", "confidences_path", "aggregated_path", "tokens_path", "task_seconds",
       "backend", "device", "weights", "demo_weights"]
)

# The arm of a sweep (foldscreen.sweep) and its settings: columns of every final table, at the
# end of each; a screen without a sweep is the one arm "default" with the config's settings.
ARM_COLUMNS = ["arm", "samples_per_seed", "recycles", "diffusion_steps", "precision", "msa_mode"]

# The screen's final tables, and the partial tables each chunk contributes to them.
TABLES = ("samples", "queries", "chains", "chain_pairs", "residues", "failures")
PARTS = ("samples", "chains", "chain_pairs", "residues", "failures")


def load_queries(ingest_table: Path) -> list[tuple[str, tuple[Chain, ...]]]:
    """The queries of an ingest table, in order: each id with its chains."""
    import pandas as pd

    table = pd.read_parquet(ingest_table, columns=["query_id", "record"])
    return [(row.query_id, chains_from_json(row.record)) for row in table.itertuples(index=False)]
