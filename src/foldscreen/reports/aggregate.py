"""The aggregate stage: per-chunk partial tables combined into the screen's tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..io import write_parquet
from ..msa.build import MSA_COLUMNS
from ..queries.ingest import FAILURE_COLUMNS, INGEST_COLUMNS
from .tables import SAMPLE_COLUMNS, best_per_query, failures_table, rank_samples, read_tables


def aggregate(ingest_tables: Sequence[Path], ingest_failures: Sequence[Path], msa_tables: Sequence[Path],
              sample_tables: Sequence[Path], failure_tables: Sequence[Path],
              out_samples: Path, out_queries: Path, out_failures: Path) -> None:
    """Write samples.parquet (ranked), queries.parquet (best sample each) and failures.parquet."""
    ingested = read_tables(ingest_tables, INGEST_COLUMNS)
    samples = read_tables(sample_tables, SAMPLE_COLUMNS)
    ranked = rank_samples(samples)
    failures = failures_table(read_tables(ingest_failures, FAILURE_COLUMNS),
                              read_tables(msa_tables, MSA_COLUMNS),
                              read_tables(failure_tables, FAILURE_COLUMNS))
    write_parquet(out_samples, ranked)
    write_parquet(out_queries, best_per_query(ingested, ranked, failures))
    write_parquet(out_failures, failures)
