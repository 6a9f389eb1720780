"""Reports: the screen's ranked tables."""

from .aggregate import aggregate, chunk_parts, tables_chunk

__all__ = ["aggregate", "chunk_parts", "tables_chunk"]
