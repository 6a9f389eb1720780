"""Reports: the screen's ranked tables."""

from .aggregate import ArmTables, aggregate, chunk_parts, tables_chunk

__all__ = ["ArmTables", "aggregate", "chunk_parts", "tables_chunk"]
