"""Planning a screen of 100,000 queries: the parse-time plan, one ingest job's read, a dry run.

    python benchmarks/bench_plan.py --queries 100000 --repeats 3 [--chunk-size 100]

Without --chunk-size the config has none, so inference.chunk_size and token_budget are "auto".

Writes a sample sheet of N protein queries (drawn from 30,000 distinct chains of 50-300
residues) in a temporary folder, then times: the first plan (reads the sheet), later plans
(from the cache), one chunk job's read of its items, and `snakemake -n` through the Slurm
workflow profile (profiles/slurm; needs snakemake-executor-plugin-slurm), a fresh process each
time, after the plan is cached: wall and CPU seconds (on a shared machine the CPU time is the
figure that does not depend on the neighbours). Prints one JSON line.
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
from pathlib import Path

import yaml

from foldscreen.plan import AUTO, chunk_items, chunk_limits, plan_screen

REPO = Path(__file__).resolve().parents[1]

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def write_sheet(path: Path, n: int) -> None:
    rng = random.Random(0)
    chains = ["".join(rng.choice(AMINO) for _ in range(rng.randint(50, 300))) for _ in range(30000)]
    path.write_text("id,sequence\n" + "".join(f"q{i},{rng.choice(chains)}\n" for i in range(n)))


def chunk_size(value: str) -> int | str:
    return value if value == AUTO else int(value)


def seconds(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=chunk_size, default=AUTO,
                        help="inference.chunk_size (default: auto)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    write_sheet(folder / "q.csv", args.queries)
    config = {"screen": "bench", "results": str(folder / "results"), "queries": [str(folder / "q.csv")],
              "ingest": {"max_tokens": 5120, "max_chain_length": 4000},
              "inference": {"chunk_size": args.chunk_size, "token_budget": AUTO}}
    first = seconds(lambda: plan_screen(config))
    chunks = plan_screen(config)
    later = [seconds(lambda: plan_screen(config)) for _ in range(args.repeats)]
    last = chunks[-1]
    job = [seconds(lambda: chunk_items(config, list(last.items), last.digest))
           for _ in range(args.repeats)]
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    dry_run = [sys.executable, "-m", "snakemake", "--configfile", str(folder / "config.yaml"),
               "--snakefile", str(REPO / "Snakefile"), "--directory", str(folder),
               "--workflow-profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account", "-n", "-q"]
    dry, dry_cpu = [], []
    for _ in range(args.repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        dry.append(seconds(lambda: subprocess.run(dry_run, check=True, capture_output=True)))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        dry_cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    size, budget = chunk_limits(config["inference"], args.queries)
    print(json.dumps({"queries": args.queries, "chunk_size": args.chunk_size, "chunk_size_used": size,
                      "token_budget_used": budget, "chunks": len(chunks), "jobs": 4 * len(chunks) + 2,
                      "first_plan_s": round(first, 2),
                      "cached_plan_median_s": round(statistics.median(later), 3),
                      "chunk_items_median_s": round(statistics.median(job), 3),
                      "slurm_dry_run_s": [round(d, 1) for d in dry],
                      "slurm_dry_run_median_s": round(statistics.median(dry), 1),
                      "slurm_dry_run_cpu_median_s": round(statistics.median(dry_cpu), 1),
                      "load_average": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
