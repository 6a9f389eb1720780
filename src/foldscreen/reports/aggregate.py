"""The aggregate stage: per-chunk partial tables combined into the screen's tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..io import write_parquet
from ..msa.build import MSA_COLUMNS
from ..queries.ingest import FAILURE_COLUMNS
from .tables import SAMPLE_COLUMNS, best_per_query, failures_table, rank_samples, read_tables


def aggregate(ingest_table: Path, ingest_failures: Path, msa_tables: Sequence[Path],
              sample_tables: Sequence[Path], failure_tables: Sequence[Path],
              out_samples: Path, out_queries: Path, out_failures: Path) -> None:
    """Write samples.parquet (ranked), queries.parquet (best sample each) and failures.parquet."""
    ingested = pd.read_parquet(ingest_table)
    samples = read_tables(sample_tables, SAMPLE_COLUMNS)
    ranked = rank_samples(samples)
    failures = failures_table(pd.read_parquet(ingest_failures),
                              read_tables(msa_tables, MSA_COLUMNS),
                              read_tables(failure_tables, FAILURE_COLUMNS))
    write_parquet(out_samples, ranked)
    write_parquet(out_queries, best_per_query(ingested, ranked, failures))
    write_parquet(out_failures, failures)
