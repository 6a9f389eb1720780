"""A pulldown of 300 baits x 300 preys (90,000 queries): the plan, a Snakemake dry run, and what
the alignment stage would request.

    python benchmarks/designs_scale.py --baits 300 --preys 300 --repeats 3 [--chunk-size 20]

Without --chunk-size the config has none, so inference.chunk_size and token_budget are "auto".

Writes two FASTA files of random proteins (50-300 residues) in a temporary folder, then times:
the first plan (expands the design), later plans (from the cache), and `snakemake -n` over the
whole screen (the plan cached; wall and CPU seconds, a fresh process each repeat). Then it runs
the msa stage's planning (`main_alignments`, `paired_alignments`) chunk by chunk over the planned
queries, as the msa jobs would, with one shared cache and a source that answers at once and
counts what it is asked: every unique chain must be aligned once and every bait-prey chain set
paired once. (The source answers every
pairing with "no alignment", which is never cached, so that 90,000 paired entries are not
written to disk: a chain set asked for twice would be counted twice.) Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml

from foldscreen.contracts import Query
from foldscreen.msa.build import main_alignments, paired_alignments
from foldscreen.msa.results import NoAlignment
from foldscreen.plan import AUTO, chunk_limits, plan_screen, screen_items

AMINO = "ACDEFGHIKLMNPQRSTVWY"
REPO = Path(__file__).resolve().parents[1]


def write_fasta(path: Path, prefix: str, n: int, rng: random.Random) -> None:
    sequences = ["".join(rng.choice(AMINO) for _ in range(rng.randint(50, 300))) for _ in range(n)]
    path.write_text("".join(f">{prefix}{i}\n{sequence}\n" for i, sequence in enumerate(sequences)))


class CountingSource:
    """A source with pairing that answers every request at once and counts the requests; every
    pairing is refused (never cached, so a repeated request would show)."""

    name = "counting"
    version = "1"
    pairs = True

    def __init__(self) -> None:
        self.aligned: list[str] = []
        self.paired: list[tuple[str, ...]] = []

    def align(self, sequences: Sequence[str], workdir: Path,
              on_result: Callable | None = None) -> dict[str, str]:
        self.aligned += sequences
        return {s: f">query\n{s}\n" for s in sequences}

    def pair(self, chain_sets: Sequence[tuple[str, ...]], unpaired: Mapping[tuple[str, ...], Sequence[Path]],
             on_result: Callable | None = None) -> dict[tuple[str, ...], NoAlignment]:
        self.paired += chain_sets
        return {c: NoAlignment("counted only") for c in chain_sets}


def chunk_size(value: str) -> int | str:
    return value if value == AUTO else int(value)


def seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def alignment_requests(config: dict, chunks: list) -> dict[str, int]:
    """What the msa jobs, chunk after chunk with one cache, would ask their source for."""
    screen = screen_items(config)
    source = CountingSource()
    root = Path(config["msa"]["cache"])
    chains, sets = set(), set()
    for chunk in chunks:
        items = screen.load(list(chunk.items))
        queries = [(q.query_id, q.chains) for q in items if isinstance(q, Query)]
        chains |= {c.sequence for _, cs in queries for c in cs}
        sets |= {tuple(sorted({c.sequence for c in cs})) for _, cs in queries}
        mains = main_alignments(queries, "server", source, root)
        paired_alignments(queries, mains, source, root)
    return {"unique_chains": len(chains), "chain_sets": len(sets), "aligned": len(source.aligned),
            "aligned_unique": len(set(source.aligned)), "paired": len(source.paired),
            "paired_unique": len(set(source.paired))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baits", type=int, default=300)
    parser.add_argument("--preys", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=chunk_size, default=AUTO,
                        help="inference.chunk_size (default: auto)")
    parser.add_argument("--no-msa", action="store_true", help="skip counting the alignment requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="designs_scale_") as folder:
        print(json.dumps(measure(Path(folder), args)))


def measure(folder: Path, args: argparse.Namespace) -> dict:
    rng = random.Random(0)
    write_fasta(folder / "baits.fasta", "bait", args.baits, rng)
    write_fasta(folder / "preys.fasta", "prey", args.preys, rng)
    config = {"screen": "bench", "results": str(folder / "results"),
              "designs": [{"name": "pulldown", "kind": "pulldown", "baits": str(folder / "baits.fasta"),
                           "preys": str(folder / "preys.fasta")}],
              "msa": {"mode": "single_sequence", "cache": str(folder / "msa_cache")},
              "ingest": {"max_tokens": 5120, "max_chain_length": 4000},
              "inference": {"chunk_size": args.chunk_size, "token_budget": AUTO}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    firsts = []
    for _ in range(args.repeats):  # the first plan, each time without its cache
        for cached in (folder / "results" / "bench" / "plan").glob("items-*.pickle"):
            cached.unlink()
        firsts.append(seconds(lambda: plan_screen(config)))
    chunks = plan_screen(config)
    later = [seconds(lambda: plan_screen(config)) for _ in range(args.repeats)]
    command = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "2",
               "--configfile", str(folder / "config.yaml"), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(folder)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    dry, dry_cpu = [], []
    for _ in range(args.repeats):  # a fresh Snakemake each time: wall and CPU seconds
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        dry.append(seconds(lambda: subprocess.run(command, check=True, capture_output=True, env=env)))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        dry_cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    size, budget = chunk_limits(config["inference"], len(screen_items(config).tokens))
    result = {"queries": sum(len(c.items) for c in chunks), "chunk_size": args.chunk_size,
              "chunk_size_used": size, "token_budget_used": budget,
              "chunks": len(chunks), "jobs": 4 * len(chunks) + 2,
              "first_plan_median_s": round(statistics.median(firsts), 2),
              "first_plan_s": [round(s, 2) for s in firsts],
              "cached_plan_median_s": round(statistics.median(later), 3),
              "dry_run_s": [round(d, 1) for d in dry], "dry_run_median_s": round(statistics.median(dry), 1),
              "dry_run_cpu_median_s": round(statistics.median(dry_cpu), 1),
              "load_average": round(os.getloadavg()[0], 1)}
    if not args.no_msa:
        result.update(alignment_requests(config, chunks))
    return result


if __name__ == "__main__":
    main()
