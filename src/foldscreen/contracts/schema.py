"""The written schemas of the screen's tables, and writing a table checked against its schema.

The schemas are `workflow/schemas/tables/<table>.yaml`, shipped inside the package as
`foldscreen/contracts/schemas/` (in the repository a link to `workflow/schemas/`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ..io import atomic_path

SCHEMAS = files(__package__) / "schemas"
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
    spec = yaml.safe_load((SCHEMAS / "tables" / f"{name}.yaml").read_text())
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


def to_arrow(frame: pd.DataFrame | pa.Table, name: str, metadata: dict[str, str] | None = None) -> pa.Table:
    """The table cast to its schema, with `metadata` as its only key-value metadata; checked."""
    schema = table_schema(name).arrow()
    if isinstance(frame, pd.DataFrame):
        table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    else:
        table = frame.select(schema.names).cast(schema)
    table = table.replace_schema_metadata(metadata or {})
    if errors := schema_errors(table, name):
        raise ValueError("; ".join(errors))
    return table


def write_table(path: Path, frame: pd.DataFrame | pa.Table, name: str,
                metadata: dict[str, str] | None = None) -> None:
    """Write one table atomically, checked against its schema."""
    with table_writer(path, name, metadata) as write:
        write(frame)


@contextmanager
def table_writer(path: Path, name: str, metadata: dict[str, str] | None = None
                 ) -> Iterator[Callable[[pd.DataFrame | pa.Table], None]]:
    """A function that appends frames to the table `name` at `path`; the file appears at the end.

    `metadata` goes in the Parquet footer only: no ARROW:schema copy, which would repeat it
    (creation time included) in base64.
    """
    schema = to_arrow(pd.DataFrame(columns=table_schema(name).names), name).schema
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, store_schema=False) as writer:
        yield lambda frame: writer.write_table(to_arrow(frame, name))
        writer.add_key_value_metadata(metadata or {})
