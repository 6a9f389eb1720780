"""The HTML report of a synthetic screen (default 100,000 queries x 5 samples, 50 tokens each).

    python benchmarks/bench_report.py                  # 100k x 5, 3 timed runs
    python benchmarks/bench_report.py --queries 5000 --repeats 1

Writes the screen's tables as the aggregate stage leaves them (queries, samples, residues,
chain_pairs, failures; residues and chain pairs in one row group per 1,000 queries, in sample
order) plus the full confidences (token x token PAE) of the ten best queries, then times
`foldscreen report` in fresh processes: wall time, peak RSS and the report's size, median of
`--repeats` runs, printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TOKENS, SAMPLES, GROUP = 50, 5, 1000
RUN = """
import resource, sys, time
from pathlib import Path
from foldscreen.reports.html import write_report
start = time.perf_counter()
write_report(Path(sys.argv[1]), Path(sys.argv[1]) / "report.html")
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def write_screen(out: Path, n: int, rng: np.random.Generator) -> None:
    ids = np.array([f"q{i:06d}" for i in range(n)])
    iptm, ptm = rng.random((n, SAMPLES)), rng.random((n, SAMPLES))
    score = 0.8 * iptm + 0.2 * ptm + 0.5 * rng.random((n, SAMPLES)) * 0.1
    order = np.argsort(-score, axis=1)  # rank 1 = best sample of the query
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, SAMPLES + 1)[None, :].repeat(n, 0), axis=1)
    folder = out / "predictions"
    samples = pd.DataFrame({
        "query_id": ids.repeat(SAMPLES), "seed": 42, "sample": np.tile(np.arange(1, SAMPLES + 1), n),
        "rank": rank.ravel(), "sample_ranking_score": score.ravel(), "iptm": iptm.ravel(), "ptm": ptm.ravel(),
        "confidences_path": [f"{folder}/{q}/seed_42/{q}_seed_42_sample_{k}_confidences.json"
                             for q in ids for k in range(1, SAMPLES + 1)],
    })
    samples.to_parquet(out / "samples.parquet")
    best = samples[samples["rank"] == 1].sort_values("sample_ranking_score", ascending=False)
    queries = pd.DataFrame({
        "query_id": best["query_id"].to_numpy(), "status": "predicted", "n_tokens": TOKENS, "n_chains": 2,
        "molecule_types": "ligand,protein", "n_samples": SAMPLES, "best_seed": 42,
        "best_sample": best["sample"].to_numpy(),
        "sample_ranking_score": best["sample_ranking_score"].to_numpy(),
        "iptm": best["iptm"].to_numpy(), "ptm": best["ptm"].to_numpy(), "avg_plddt": rng.uniform(30, 95, n),
        "has_clash": False, "ranking_score_spread": rng.random(n) * 0.1, "ipsae": rng.random(n),
        "pdockq2": rng.random(n), "lis": rng.random(n), "demo_weights": False, "notes": "",
        "best_model_path": [p.replace("_confidences.json", "_model.cif") for p in best["confidences_path"]],
    })
    queries.to_parquet(out / "queries.parquet")
    failures = pd.DataFrame({"query_id": [f"bad{i}" for i in range(1000)], "source": "sheet.csv",
                             "stage": "ingest", "field": "sequence", "reason": "bad residue letter"})
    failures.to_parquet(out / "failures.parquet")
    step = SAMPLES * GROUP
    for name, rows in (("residues", TOKENS), ("chain_pairs", 1)):
        with pq.ParquetWriter(out / f"{name}.parquet", _part(samples[:step], name, rows, rng).schema) as w:
            for start in range(0, len(samples), step):
                w.write_table(_part(samples[start:start + step], name, rows, rng))
    for path in best["confidences_path"][:10]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"pae": rng.uniform(0, 32, (TOKENS, TOKENS)).round(2).tolist()}))


def _part(samples: pd.DataFrame, name: str, rows: int, rng: np.random.Generator) -> pa.Table:
    key = {c: samples[c].to_numpy().repeat(rows) for c in ("query_id", "seed", "sample", "rank")}
    if name == "residues":
        index = np.tile(np.arange(rows), len(samples))
        extra = {"token_index": index, "chain_id": np.where(index < 40, "A", "B"),
                 "plddt": rng.uniform(30, 95, len(index))}
    else:
        extra = {"chain_a": "A", "chain_b": "B", **{c: rng.random(len(samples)) for c in (
            "chain_pair_iptm", "ipsae", "pdockq2", "lis", "pae_min", "interface_plddt")},
            "n_contacts": rng.integers(0, 30, len(samples))}
    return pa.Table.from_pandas(pd.DataFrame({**key, **extra}), preserve_index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench"
        out.mkdir()
        start = time.perf_counter()
        write_screen(out, args.queries, np.random.default_rng(0))
        setup = time.perf_counter() - start
        runs = [subprocess.run([sys.executable, "-c", RUN, str(out)], check=True, capture_output=True,
                               text=True).stdout.split() for _ in range(args.repeats)]
        seconds, rss = (statistics.median(float(r[i]) for r in runs) for i in (0, 1))
        print(json.dumps({
            "queries": args.queries, "samples": args.queries * SAMPLES, "tokens": TOKENS,
            "residue_rows": args.queries * SAMPLES * TOKENS, "setup_s": round(setup, 1),
            "report_s": round(seconds, 2), "runs_s": [round(float(r[0]), 2) for r in runs],
            "peak_rss_mb": round(rss / 2**20), "report_kb": round((out / "report.html").stat().st_size / 1e3),
            "machine": f"{platform.machine()}, python {platform.python_version()}",
        }))


if __name__ == "__main__":
    main()
