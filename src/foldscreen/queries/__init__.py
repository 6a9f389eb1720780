"""Ingestion: read, normalise and validate queries from every supported source."""

from .ingest import ingest, read_queries
from .records import Chain, Failure, Query
from .validate import Limits, validate

__all__ = ["Chain", "Failure", "Limits", "Query", "ingest", "read_queries", "validate"]
