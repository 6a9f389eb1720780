"""The screen plan: the queries of the screen, grouped into chunks, known before any job runs.

The plan is made when the workflow is parsed, from a cheap read of the query sources and the
expansion of the designs (no chemistry, but for an SDF ligand library), so the Snakemake DAG is
known up front without checkpoints. A chunk is a run of
consecutive source items (queries, and rows that could not be read); chunks are filled in
source order, so appending queries to a screen only changes the last chunk and adds new ones.

Reading a large sample sheet costs about 0.1 ms a row in Python, and the items are needed by
every Snakemake invocation and every ingest job. So they are read once per content of the
sources and designs and kept under `<results>/<screen>/plan/`: each item pickled, with its
digest and token count, keyed by the sources' paths and sha256, the designs and the readers'
own code.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import queries
from .contracts import Query, records
from .io import atomic_write_bytes, file_sha256
from .queries.designs import DesignError, design_files, expand_designs
from .queries.readers import Item, read_queries, unique_ids


@dataclass(frozen=True)
class Chunk:
    """Source items [start, end) of the screen, run by one job of each stage."""

    name: str
    start: int
    end: int
    n_tokens: int
    digest: str


@dataclass(frozen=True)
class ScreenItems:
    """Every item of the screen's sources: pickled, with its content digest and token count."""

    blobs: list[bytes]
    digests: list[str]
    tokens: list[int]

    @classmethod
    def of(cls, items: list[Item]) -> ScreenItems:
        return cls([pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items],
                   [item_digest(item) for item in items],
                   [item.n_tokens if isinstance(item, Query) else 0 for item in items])

    def items(self, start: int, end: int) -> list[Item]:
        return [pickle.loads(blob) for blob in self.blobs[start:end]]


def item_digest(item: Item) -> str:
    """sha256 of the item's fields as JSON (a query's chains field by field; empty design factors
    left out, so that a query's digest is what it was before designs existed)."""
    fields = dict(vars(item))
    if isinstance(item, Query):
        fields["chains"] = [vars(chain) for chain in item.chains]
    if not fields["factors"]:
        del fields["factors"]
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def chunk_digest(digests: list[str], salt: str) -> str:
    return hashlib.sha256("\n".join([salt, *digests]).encode()).hexdigest()[:16]


def plan_chunks(screen: ScreenItems, chunk_size: int, token_budget: int, salt: str) -> list[Chunk]:
    """At most `chunk_size` items and `token_budget` tokens per chunk, in source order.

    A query larger than the budget gets a chunk of its own. A chunk's digest changes when any
    of its items or the settings in `salt` change; that reruns the chunk's jobs.
    """
    bounds: list[list[int]] = []  # [start, end, tokens]
    for index, tokens in enumerate(screen.tokens):
        last = bounds[-1] if bounds else None
        if last is None or last[1] - last[0] >= chunk_size or last[2] + tokens > token_budget:
            bounds.append([index, index, 0])
        bounds[-1][1] = index + 1
        bounds[-1][2] += tokens
    return [
        Chunk(f"chunk_{n:05d}", start, end, tokens, chunk_digest(screen.digests[start:end], salt))
        for n, (start, end, tokens) in enumerate(bounds)
    ]


def settings_salt(config: dict[str, Any]) -> str:
    """The settings that decide whether a query is accepted (how chunks are cut is not one)."""
    return json.dumps(config["ingest"], sort_keys=True)


class PlanError(ValueError):
    """A screen that cannot be planned; the message names the config key at fault."""


def source_paths(config: dict[str, Any]) -> list[Path]:
    """The query files; refuses, naming the `queries` key, any that is not there, and a screen
    of neither query files nor designs."""
    paths = [Path(p) for p in config.get("queries") or []]
    if not paths and not config.get("designs"):
        raise PlanError("queries: the screen has no query files and no designs (give either or both)")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise PlanError(f"queries: no such file {', '.join(missing)} (relative paths start at {Path.cwd()})")
    return paths


def design_paths(config: dict[str, Any]) -> list[Path]:
    """The files the designs read; refuses, naming `designs[<i>].<field>`, any that is not there."""
    files = design_files(config.get("designs") or [])
    for key, path in files:
        if not path.is_file():
            raise PlanError(f"{key}: no such file {path} (relative paths start at {Path.cwd()})")
    return [path for _, path in files]


def input_files(config: dict[str, Any]) -> list[Path]:
    """Every file the screen's items are read from: the query files, then the designs' files."""
    return list(dict.fromkeys([*source_paths(config), *design_paths(config)]))


def read_screen(config: dict[str, Any]) -> list[Item]:
    """The screen's items: the queries of its files, then its designs expanded; ids unique."""
    try:
        designed = expand_designs(config.get("designs") or [])
    except DesignError as err:
        raise PlanError(str(err)) from None
    return unique_ids([*read_queries(source_paths(config)), *designed])


def screen_items(config: dict[str, Any]) -> ScreenItems:
    """The screen's items, read from the sources once per content and then from the cache."""
    files = input_files(config)
    key = hashlib.sha256(json.dumps([[str(p), file_sha256(p)] for p in files]
                                    + [config.get("designs") or [], _reader_code()]).encode()).hexdigest()
    cached = Path(config["results"]) / config["screen"] / "plan" / f"items-{key[:32]}.pickle"
    if cached.is_file():
        with open(cached, "rb") as handle:
            return pickle.load(handle)  # written below by this function, never by a user
    screen = ScreenItems.of(read_screen(config))
    atomic_write_bytes(cached, pickle.dumps(screen, protocol=pickle.HIGHEST_PROTOCOL))
    for stale in cached.parent.glob("items-*.pickle"):
        if stale != cached:
            stale.unlink(missing_ok=True)  # the items of sources since changed
    return screen


def _reader_code() -> str:
    """A digest of the readers' code, the query record's and this module's: changed code must not
    reuse old items."""
    files = [*sorted(Path(queries.__file__).parent.glob("*.py")), Path(records.__file__), Path(__file__)]
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def plan_screen(config: dict[str, Any]) -> list[Chunk]:
    """Read the screen's sources and split them into chunks."""
    inference = config["inference"]
    return plan_chunks(screen_items(config), inference["chunk_size"], inference["token_budget"],
                       settings_salt(config))


def chunk_items(config: dict[str, Any], start: int, end: int, digest: str) -> list[Item]:
    """The items of one chunk, for its job; refuses sources changed since planning."""
    screen = screen_items(config)
    if chunk_digest(screen.digests[start:end], settings_salt(config)) != digest:
        raise RuntimeError("the query files changed after the workflow was planned; run snakemake again")
    return screen.items(start, end)
