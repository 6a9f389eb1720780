"""The written schemas of the screen's tables (workflow/schemas/tables/<table>.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "tables"
TABLES = ("samples", "queries", "chains", "chain_pairs", "residues", "failures")
_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[dict[str, Any], ...]
    spec: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    def arrow(self) -> pa.Schema:
        return pa.schema([pa.field(c["name"], _TYPES[c["type"]], nullable=c["nullable"])
                          for c in self.columns])


@cache
def table_schema(name: str) -> TableSchema:
    """The schema of one table, read from its YAML file."""
    spec = yaml.safe_load((SCHEMA_DIR / f"{name}.yaml").read_text())
    return TableSchema(name, tuple(spec["columns"]), spec)


def schema_errors(table: pa.Table, name: str) -> list[str]:
    """What is wrong with `table` against the schema `name`: names, order, types, nulls."""
    expected = table_schema(name).arrow()
    if table.schema.names != expected.names:
        return [f"{name}: columns {table.schema.names} != {expected.names}"]
    errors = []
    for field in expected:
        column = table.column(field.name)
        if column.type != field.type:
            errors.append(f"{name}.{field.name}: type {column.type} != {field.type}")
        if not field.nullable and column.null_count:
            errors.append(f"{name}.{field.name}: {column.null_count} nulls in a non-nullable column")
    return errors
