"""The MSA stage's own cost at screen scale: cache lookup and deduplication, no aligning.

    python benchmarks/bench_msa.py --queries 100000 --unique 30000 --cached 0.9 --runs 3

A synthetic screen: `--queries` queries (70% monomers, 30% heterodimers) drawing their protein
chains from `--unique` sequences of 50-400 residues. The cache is filled once, then a fraction
`1 - cached` of its entries (unpaired and paired alike, drawn at random) is removed before each
timed run. A timed run is one call of `build_msas` over the whole screen, as one msa job over
the screen would make it (`foldscreen msa`); the source answers at once, so what is measured is
what foldscreen adds: hashing, deduplication, cache lookups, locks, writing the missing entries
and building the MSA table. A last run finds everything cached. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from foldscreen.contracts import Chain
from foldscreen.msa import MsaSettings, build, build_msas

AMINO = "ACDEFGHIKLMNPQRSTVWY"
SOURCES = ("server", "server.paired")


class InstantServer:
    """A source that answers at once, so that only foldscreen's own work is measured."""

    name, version, pairs = "server", "bench", True

    def align(self, sequences: Sequence[str], workdir: Path, on_result=None) -> dict:
        return {s: f">query\n{s}\n" for s in sequences}

    def pair(self, chain_sets: Sequence[tuple[str, ...]], unpaired: Mapping, on_result=None) -> dict:
        return {c: [f">query\n{s}\n" for s in c] for c in chain_sets}


def screen(n_queries: int, n_unique: int, seed: int = 0) -> list[tuple[str, tuple[Chain, ...]]]:
    rng = random.Random(seed)
    pool = ["M" + "".join(rng.choices(AMINO, k=rng.randint(50, 400))) for _ in range(n_unique)]
    queries = []
    for index in range(n_queries):
        first = pool[index % n_unique]  # every unique chain is used
        chains = (Chain("protein", ("A",), sequence=first),)
        if rng.random() < 0.3:
            second = rng.choice(pool)
            if second != first:
                chains += (Chain("protein", ("B",), sequence=second),)
        queries.append((f"q{index:06d}", chains))
    return queries


def entries(root: Path) -> set[Path]:
    found = set()
    for source in SOURCES:
        for shard in os.scandir(root / source):
            found.update(Path(e.path) for e in os.scandir(shard.path) if e.is_dir() and e.name[0] != ".")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--unique", type=int, default=30_000)
    parser.add_argument("--cached", type=float, default=0.9)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None,
                        help="where the cache goes (default: a temporary folder)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the refused chains of the first fill

    queries = screen(args.queries, args.unique)
    folder = Path(tempfile.mkdtemp(dir=args.folder, prefix="bench_msa."))
    settings = MsaSettings(mode="server", cache=folder)
    build.make_source = lambda _: InstantServer()
    try:
        started = time.perf_counter()
        build_msas(queries, settings)
        fill_s = time.perf_counter() - started
        every = sorted(entries(folder))
        dropped = random.Random(1).sample(every, round(len(every) * (1 - args.cached)))
        times = []
        for _ in range(args.runs):
            for path in dropped:
                shutil.rmtree(path)
            started = time.perf_counter()
            table = build_msas(queries, settings)
            times.append(time.perf_counter() - started)
        assert len(entries(folder)) == len(every)
        started = time.perf_counter()
        build_msas(queries, settings)
        all_cached_s = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({
        "queries": args.queries, "chains": len(table), "unique_chains": table["path"].nunique(),
        "paired_sets": table["paired_path"].dropna().map(lambda p: p.split("/")[-3]).nunique(),
        "entries": len(every), "missing_entries_per_run": len(dropped),
        "times_s": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2),
        "all_cached_s": round(all_cached_s, 2), "first_fill_s": round(fill_s, 1),
    }))


if __name__ == "__main__":
    main()
