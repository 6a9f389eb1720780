"""Local MSA search throughput: MMseqs2 (all queries in one run) against jackhmmer (one run per query).

    python benchmarks/bench_msa_local.py --queries 20 --decoys 20000 --repeats 3

A synthetic FASTA database (random decoys of 50-400 residues plus five homologues at 40-90%
identity planted for each random 200-residue query) is searched with the default settings
(E 1e-3, 2 threads; 3 iterations unless `--iterations`). `hit_rows` counts the rows found: five
per query are planted, the rest are decoys. Prints one JSON line per tool: the wall time of each run, their
median and the median per query; the first MMseqs2 run also converts the FASTA file (reported
apart as `createdb_s`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from foldscreen.msa.formats import parse_a3m
from foldscreen.msa.local import LocalSettings, mmseqs_database, search_unpaired

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def synthetic(folder: Path, queries: int, decoys: int, seed: int = 1) -> tuple[Path, list[str]]:
    rng = random.Random(seed)
    sequences = ["".join(rng.choice(AMINO) for _ in range(200)) for _ in range(queries)]
    records = [(f"decoy{i} OX=562", "".join(rng.choice(AMINO) for _ in range(rng.randint(50, 400))))
               for i in range(decoys)]
    for q, query in enumerate(sequences):
        for h, identity in enumerate((0.9, 0.75, 0.6, 0.5, 0.4)):
            homologue = "".join(a if rng.random() < identity else rng.choice(AMINO) for a in query)
            records.append((f"hom{q}_{h} OX={9606 + h}", homologue))
    rng.shuffle(records)
    fasta = folder / "synthetic.fasta"
    fasta.write_text("".join(f">{header}\n{sequence}\n" for header, sequence in records))
    return fasta, sequences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--decoys", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fasta, queries = synthetic(folder, args.queries, args.decoys)
        start = time.perf_counter()
        mmseqs_database("mmseqs", fasta, folder / "work")
        createdb = time.perf_counter() - start
        for tool in ("mmseqs2", "jackhmmer"):
            settings = LocalSettings(tool, (fasta,), iterations=args.iterations)
            times, rows = [], 0
            for _ in range(args.repeats):
                start = time.perf_counter()
                found = search_unpaired(settings, queries, folder / "work")
                times.append(time.perf_counter() - start)
                rows = sum(len(parse_a3m(text)) - 1 for text in found.values() if isinstance(text, str))
            median = statistics.median(times)
            record = {"tool": tool, "iterations": args.iterations, "queries": args.queries,
                      "database": args.decoys + 5 * args.queries, "runs_s": [round(t, 2) for t in times],
                      "median_s": round(median, 2), "per_query_s": round(median / args.queries, 3),
                      "hit_rows": rows}
            if tool == "mmseqs2":
                record["createdb_s"] = round(createdb, 2)
            print(json.dumps(record))


if __name__ == "__main__":
    main()
