"""Ingestion: every source query becomes a normalised record or a failure with a reason."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..contracts import FACTOR_COLUMNS, FACTOR_COUNTS, INGEST_COLUMNS, INGEST_FAILURE_COLUMNS, Failure, Query
from ..io import atomic_write_json, remove_leftovers, write_parquet
from .readers import Item
from .validate import Limits, ligand_atoms, validate


def ingest(items: Iterable[Item], limits: Limits, records_dir: Path,
           queries_table: Path, failures_table: Path) -> tuple[int, int]:
    """Validate every item; write one record per good query and the two ingest tables.

    Returns (accepted, rejected).
    """
    rows, failures, records = [], [], []
    for item in items:
        checked = validate(item, limits) if isinstance(item, Query) else item
        records.append(records_dir / f"{checked.query_id}.json")
        if isinstance(checked, Failure):
            failures.append(failure_row(checked))
            continue
        atomic_write_json(records[-1], checked.to_of3())
        rows.append(query_row(checked))
    remove_leftovers(records)  # of a killed run of this chunk: the records are not its outputs
    write_parquet(queries_table, factor_types(pd.DataFrame(rows, columns=INGEST_COLUMNS)))
    write_parquet(failures_table, factor_types(pd.DataFrame(failures, columns=INGEST_FAILURE_COLUMNS)))
    return len(rows), len(failures)


def failure_row(failure: Failure) -> dict:
    """One row of the ingest failures table: the failure and its design's factors."""
    row = {k: v for k, v in asdict(failure).items() if k != "factors"}
    return {**row, **{name: failure.factors.get(name) for name in FACTOR_COLUMNS}}


def factor_types(frame: pd.DataFrame) -> pd.DataFrame:
    """The factor columns typed (nullable strings and integers), whatever rows the chunk has."""
    return frame.astype({name: "Int64" if name in FACTOR_COUNTS else "string" for name in FACTOR_COLUMNS})


def query_row(query: Query) -> dict:
    """One row of the ingest table; `record` holds the full query as JSON."""
    return {
        "query_id": query.query_id,
        "original_id": query.original_id,
        "source": query.source,
        "n_chains": sum(c.copies for c in query.chains),
        "n_tokens": sum(c.n_tokens(ligand_atoms(c)) for c in query.chains),
        "molecule_types": ",".join(sorted({c.molecule_type for c in query.chains})),
        "chain_hashes": ",".join(c.hash for c in query.chains),
        "digest": query.digest(),
        "record": json.dumps([asdict(c) for c in query.chains]),
        "notes": "; ".join(query.notes),
        **{name: query.factors.get(name) for name in FACTOR_COLUMNS},
    }
