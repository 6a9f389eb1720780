"""The contracts between the stages: what one stage writes and the next reads.

The stage packages (`queries`, `msa`, `inference`, `reports`) stand side by side: none imports
another; they share only this package, `io` and `model`. Here: the query record and its chains
and the failure row (`records`), the columns of every chunk table and final table (`tables`),
the tables' written schemas (`schema`, which needs pyarrow), and the token layout of a
predicted task (`layout`). Importing this package itself loads no third-party module.
"""

from .records import MOLECULE_TYPES, POLYMER_TYPES, Chain, Failure, Query, chain_hash, chains_from_json
from .tables import (
    ARM_COLUMNS,
    DEMO_WEIGHTS,
    FACTOR_COLUMNS,
    FACTOR_COUNTS,
    FAILURE_COLUMNS,
    INFERENCE_COLUMNS,
    INGEST_COLUMNS,
    INGEST_FAILURE_COLUMNS,
    JSON_COLUMNS,
    MSA_COLUMNS,
    PARTS,
    SCORE_COLUMNS,
    TABLES,
    load_queries,
)

__all__ = ["ARM_COLUMNS", "DEMO_WEIGHTS", "FACTOR_COLUMNS", "FACTOR_COUNTS", "FAILURE_COLUMNS",
           "INFERENCE_COLUMNS", "INGEST_COLUMNS", "INGEST_FAILURE_COLUMNS", "JSON_COLUMNS",
           "MOLECULE_TYPES", "MSA_COLUMNS", "PARTS", "POLYMER_TYPES", "SCORE_COLUMNS", "TABLES",
           "Chain", "Failure", "Query", "chain_hash", "chains_from_json", "load_queries"]
