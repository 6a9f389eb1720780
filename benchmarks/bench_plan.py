"""Planning a screen of 100,000 queries: the parse-time plan and one ingest job's read.

    python benchmarks/bench_plan.py --queries 100000 --repeats 3

Writes a sample sheet of N protein queries (drawn from 30,000 distinct chains of 50-300
residues) in a temporary folder, then times: the first plan (reads the sheet), later plans
(from the cache), and one chunk job's read of its items. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from foldscreen.plan import chunk_items, plan_screen

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def write_sheet(path: Path, n: int) -> None:
    rng = random.Random(0)
    chains = ["".join(rng.choice(AMINO) for _ in range(rng.randint(50, 300))) for _ in range(30000)]
    path.write_text("id,sequence\n" + "".join(f"q{i},{rng.choice(chains)}\n" for i in range(n)))


def seconds(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    write_sheet(folder / "q.csv", args.queries)
    config = {"screen": "bench", "results": str(folder / "results"), "queries": [str(folder / "q.csv")],
              "ingest": {"max_tokens": 5120, "max_chain_length": 4000},
              "inference": {"chunk_size": 20, "token_budget": 20000}}
    first = seconds(lambda: plan_screen(config))
    chunks = plan_screen(config)
    later = [seconds(lambda: plan_screen(config)) for _ in range(args.repeats)]
    last = chunks[-1]
    job = [seconds(lambda: chunk_items(config, last.start, last.end, last.digest))
           for _ in range(args.repeats)]
    print(json.dumps({"queries": args.queries, "chunks": len(chunks), "first_plan_s": round(first, 2),
                      "cached_plan_median_s": round(statistics.median(later), 3),
                      "chunk_items_median_s": round(statistics.median(job), 3)}))


if __name__ == "__main__":
    main()
