"""The screen plan: the queries of the screen, grouped into chunks, known before any job runs.

The plan is made when the workflow is parsed, from a cheap read of the query sources and the
expansion of the designs (no chemistry, but for an SDF ligand library), so the Snakemake DAG is
known up front without checkpoints. A chunk holds queries
of one size bucket (`contracts.sizes.token_bucket`: one compiled shape per inference job, and a
memory and time that its size predicts), filled in source order: the first chunk of a bucket
takes the bucket's first `chunk_size` queries, the next the following ones, and so on; rows that
could not be read, and queries too large for the configured GPU, go in chunks of their own
that only ingest them (as failures). Chunks are numbered by their first item. Appending queries
to a screen therefore changes at most the last chunk of each bucket the new queries fall in and
adds new chunks; the price is that chunks hold items from anywhere in the sources (a chunk of
few queries in a rare bucket stays open until the bucket fills). The one exception: an "auto"
chunk size grows in steps with the screen (`chunk_limits`), and a screen that grows past a step
is cut anew (every chunk's jobs run once more; predicted tasks are kept by the inference stage).

Reading a large sample sheet costs about 0.1 ms a row in Python, and the items are needed by
every Snakemake invocation and every ingest job. So they are read once per content of the
sources and designs and kept under `<results>/<screen>/plan/`, keyed by the sources' paths and
sha256, the designs and the readers' own code: the items' digests and token counts (all that
planning reads) in one file, the items pickled one after another in another, of which an
ingest job reads only its chunk's.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import queries, resources
from .contracts import Failure, Query, records
from .contracts.sizes import token_bucket
from .io import atomic_write_bytes, file_sha256
from .queries.designs import DesignError, design_files, expand_designs
from .queries.readers import Item, read_queries, unique_ids

# The bucket of chunks that only ingest: unreadable rows and queries refused at planning.
NO_INFERENCE = 0

# inference.chunk_size "auto" (the default): 20 queries per job, doubled (2, 4, 8, ... times)
# until the screen's items fill at most 1,000 chunks of that size; inference.token_budget "auto"
# is 20,000 tokens, doubled alike (not when chunk_size is a number). A screen of up to 20,000
# items is cut as with chunk_size 20, token_budget 20,000; 100,000 items in chunks of 160.
# Snakemake spends about 5 ms of CPU per job building its DAG (benchmarks/RESULTS.md): bounding
# the chunks bounds every invocation's start, and each job loads the model once for more tasks.
AUTO = "auto"
AUTO_CHUNK_SIZE = 20
AUTO_TOKEN_BUDGET = 20_000
AUTO_MAX_CHUNKS = 1000


@dataclass(frozen=True)
class Chunk:
    """Source items of the screen (their indices, in source order), run by one job of each stage."""

    name: str
    items: tuple[int, ...]
    bucket: int  # every query's tokens are at most this (NO_INFERENCE: nothing to predict)
    n_tokens: int
    tokens_squared: int  # summed over the queries: what an inference job's time grows with
    digest: str


@dataclass(frozen=True)
class ScreenItems:
    """Every item of the screen's sources: its content digest and token count, and where its
    pickle lies in the cache's file of items (read only for the items a job asks for)."""

    digests: list[str]
    tokens: list[int]
    offsets: list[int]  # item i is bytes offsets[i]:offsets[i + 1] of `blobs`
    blobs: Path

    def load(self, indices: list[int]) -> list[Item]:
        """The items at `indices`, unpickled from the file of items."""
        items = []
        with open(self.blobs, "rb") as handle:
            for i in indices:
                handle.seek(self.offsets[i])
                items.append(pickle.loads(handle.read(self.offsets[i + 1] - self.offsets[i])))
        return items


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


def plan_chunks(screen: ScreenItems, chunk_size: int, token_budget: int, salt: str,
                max_tokens: int | None = None) -> list[Chunk]:
    """Items of one size bucket per chunk, at most `chunk_size` items and `token_budget` tokens.

    Queries over `max_tokens` (too large for the GPU) join the chunks of unreadable rows. A query
    larger than the budget gets a chunk of its own. A chunk's digest changes when any of its
    items or the settings in `salt` change; that reruns the chunk's jobs.
    """
    groups: list[tuple[int, list[int]]] = []  # (bucket, items), in order of the first item
    group_tokens: list[int] = []
    last_of: dict[int, int] = {}  # bucket -> its last group, the one still filling
    sizes: dict[int, int] = {}  # tokens -> bucket (few distinct counts in a large screen)
    for index, tokens in enumerate(screen.tokens):
        if (size := sizes.get(tokens)) is None:
            size = sizes[tokens] = (NO_INFERENCE if not tokens or refused(tokens, max_tokens)
                                    else token_bucket(tokens))
        last = last_of.get(size)
        if last is None or len(groups[last][1]) >= chunk_size or group_tokens[last] + tokens > token_budget:
            last = last_of[size] = len(groups)
            groups.append((size, []))
            group_tokens.append(0)
        groups[last][1].append(index)
        group_tokens[last] += tokens
    counts = screen.tokens
    return [
        Chunk(f"chunk_{n:05d}", tuple(items), size, group_tokens[n],
              sum(counts[i] ** 2 for i in items) if size else 0,
              chunk_digest([item_key(screen, i, max_tokens) for i in items], salt))
        for n, (size, items) in enumerate(groups)
    ]


def refused(tokens: int, max_tokens: int | None) -> bool:
    """Whether a query of `tokens` tokens, padded to its bucket, is over `max_tokens`."""
    return max_tokens is not None and token_bucket(tokens) > max_tokens


def item_key(screen: ScreenItems, index: int, max_tokens: int | None) -> str:
    """The item's digest, marked when it is refused at planning (a changed limit redoes its chunk)."""
    digest = screen.digests[index]
    return f"{digest} refused over {max_tokens}" if refused(screen.tokens[index], max_tokens) else digest


def gpu_max_tokens(inference: dict[str, Any]) -> int | None:
    """The most tokens a query may have to fit the configured GPU (None: no GPU memory given)."""
    memory = inference.get("gpu_memory_gb")
    if memory is None:
        return None
    return resources.max_tokens_within(memory, chunked=inference.get("model_chunk_size") is not None)


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
    index = Path(config["results"]) / config["screen"] / "plan" / f"items-{key[:32]}.pickle"
    blobs = index.with_suffix(".items")
    if index.is_file() and blobs.is_file():
        with open(index, "rb") as handle:
            digests, tokens, offsets = pickle.load(handle)  # written below, never by a user
        if blobs.stat().st_size == offsets[-1]:
            return ScreenItems(digests, tokens, offsets, blobs)
    screen = write_items(read_screen(config), index, blobs)
    for stale in index.parent.glob("items-*"):
        if stale not in (index, blobs):
            stale.unlink(missing_ok=True)  # the items of sources since changed
    return screen


def write_items(items: list[Item], index: Path, blobs: Path) -> ScreenItems:
    """Cache the items: their pickles one after another in `blobs`, then (written last, so that
    its presence means both are whole) their digests, tokens and offsets in `index`."""
    pickled = [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]
    offsets = list(itertools.accumulate(map(len, pickled), initial=0))
    atomic_write_bytes(blobs, b"".join(pickled))
    screen = ScreenItems([item_digest(item) for item in items],
                         [item.n_tokens if isinstance(item, Query) else 0 for item in items], offsets, blobs)
    atomic_write_bytes(index, pickle.dumps((screen.digests, screen.tokens, offsets),
                                           protocol=pickle.HIGHEST_PROTOCOL))
    return screen


def _reader_code() -> str:
    """A digest of the readers' code, the query record's and this module's: changed code must not
    reuse old items."""
    files = [*sorted(Path(queries.__file__).parent.glob("*.py")), Path(records.__file__), Path(__file__)]
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def chunk_limits(inference: dict[str, Any], n_items: int) -> tuple[int, int]:
    """The chunk size and token budget of a screen of `n_items` items (inference.chunk_size and
    inference.token_budget, where "auto": see AUTO_CHUNK_SIZE)."""
    scale = auto_scale(n_items) if inference["chunk_size"] == AUTO else 1
    size = AUTO_CHUNK_SIZE * scale if inference["chunk_size"] == AUTO else inference["chunk_size"]
    budget = AUTO_TOKEN_BUDGET * scale if inference["token_budget"] == AUTO else inference["token_budget"]
    return size, budget


def auto_scale(n_items: int) -> int:
    """The smallest power of two by which AUTO_CHUNK_SIZE grows for `n_items` to fill at most
    AUTO_MAX_CHUNKS chunks (1 for a screen of up to 20,000 items)."""
    scale = 1
    while n_items > AUTO_MAX_CHUNKS * AUTO_CHUNK_SIZE * scale:
        scale *= 2
    return scale


def plan_screen(config: dict[str, Any]) -> list[Chunk]:
    """Read the screen's sources and split them into chunks."""
    inference = config["inference"]
    screen = screen_items(config)
    size, budget = chunk_limits(inference, len(screen.tokens))
    return plan_chunks(screen, size, budget, settings_salt(config), gpu_max_tokens(inference))


def chunk_items(config: dict[str, Any], indices: list[int], digest: str) -> list[Item]:
    """The items of one chunk, for its job; refuses sources changed since planning.

    A query too large for the configured GPU comes as its failure (stage ingest, field n_tokens).
    """
    screen = screen_items(config)
    max_tokens = gpu_max_tokens(config["inference"])
    if chunk_digest([item_key(screen, i, max_tokens) for i in indices], settings_salt(config)) != digest:
        raise RuntimeError("the query files changed after the workflow was planned; run snakemake again")
    items = screen.load(indices)
    return [too_large(item, config["inference"], max_tokens) if isinstance(item, Query)
            and refused(item.n_tokens, max_tokens) else item for item in items]


def too_large(query: Query, inference: dict[str, Any], max_tokens: int) -> Failure:
    chunked = inference.get("model_chunk_size") is not None
    need = resources.task_gib(token_bucket(query.n_tokens), chunked)
    return Failure(query.original_id, query.source, "ingest", "n_tokens",
                   f"the query has {query.n_tokens} tokens (padded to {token_bucket(query.n_tokens)}): "
                   f"about {need:.0f} GB on the GPU, more than inference.gpu_memory_gb = "
                   f"{inference['gpu_memory_gb']:g} (at most {max_tokens} tokens"
                   f"{'' if chunked else '; inference.model_chunk_size lowers the memory'})", query.factors)
