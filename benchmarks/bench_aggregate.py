"""Aggregation of a synthetic screen (default 100,000 queries x 5 samples) in OpenFold3's format.

    python benchmarks/bench_aggregate.py                       # 100k x 5, 3 timed combines
    python benchmarks/bench_aggregate.py --queries 2000 --repeats 1 --measured-chunks 2

The screen is written to a temporary folder (deleted at the end unless --keep), laid out as the
workflow leaves it after inference: per task `predictions/<q>/seed_42/` with task.json and, per
sample, `*_model.cif`, `*_confidences.json` (per-atom plddt, token x token pae and pde) and
`*_confidences_aggregated.json` in OpenFold3's layout; per chunk the ingest, msa and inference
tables. Every query is a 40-residue protein with a 10-atom ligand (50 tokens); the per-sample
files are hard links to 5 distinct files (one per sample number; a fresh copy every 25,000
queries), so the screen takes little disk while every file is opened and parsed under its own
name.

Two parts are timed, in fresh processes, and printed as one JSON line:
- `tables_chunk` (once per chunk, when the chunk's inference changes; Snakemake runs chunks in
  parallel) on `--measured-chunks` chunks: seconds per sample. Partials of the other chunks are
  copies of a measured chunk's with the query ids changed (same rows, same sizes).
- `aggregate` (the combine that runs whenever any chunk changed) over every chunk's partials:
  wall time and peak RSS, median of `--repeats` runs, outputs and ranked/ removed before each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from foldscreen.contracts import FAILURE_COLUMNS, INFERENCE_COLUMNS, INGEST_COLUMNS, MSA_COLUMNS
from foldscreen.contracts.layout import TOKENS_FILE, TokenLayout, write_layout
from foldscreen.contracts.schema import write_table
from foldscreen.inference.run import sample_rows
from foldscreen.inference.tasks import TASK_RECORD
from foldscreen.io import write_parquet
from foldscreen.reports import chunk_parts, tables_chunk

SEED = 42
PROTEIN, LIGAND = 40, 10
LINKS_PER_FILE = 25_000  # sample files, plus as many ranked/ links to the best: under ext4's 65,000
ATOM_SITE = ["group_PDB", "type_symbol", "label_atom_id", "label_alt_id", "label_comp_id", "label_asym_id",
             "label_entity_id", "label_seq_id", "pdbx_PDB_ins_code", "auth_seq_id", "auth_comp_id",
             "auth_asym_id", "auth_atom_id", "B_iso_or_equiv", "pdbx_formal_charge", "Cartn_x", "Cartn_y",
             "Cartn_z", "pdbx_PDB_model_num", "id"]


def structure_atoms(rng: np.random.Generator) -> list[tuple]:
    """(group, element, atom, comp, chain, entity, seq, xyz) of an alanine/glycine chain and a ligand."""
    atoms = []
    for n in range(1, PROTEIN + 1):
        comp = "GLY" if n % 5 == 0 else "ALA"
        names = ["N", "CA", "C", "O"] + ([] if comp == "GLY" else ["CB"])
        for name in names:
            xyz = np.array([3.8 * n, 0.0, 0.0]) + rng.normal(0, 1.0, 3)
            atoms.append(("ATOM", name[0], name, comp, "A", 1, str(n), xyz))
    for k in range(LIGAND):
        xyz = np.array([3.8 * (PROTEIN / 2 + k), 6.0, 0.0]) + rng.normal(0, 1.0, 3)
        atoms.append(("HETATM", "C", f"C{k + 1}", "LIG0", "B", 2, ".", xyz))
    return atoms


def write_cif(path: Path, atoms: list[tuple], plddt: np.ndarray) -> None:
    lines = ["data_synthetic", "#", "loop_"] + [f"_atom_site.{c}" for c in ATOM_SITE]
    for index, ((group, element, name, comp, chain, entity, seq, xyz), b) in enumerate(zip(atoms, plddt)):
        auth_seq = seq if seq != "." else "1"
        lines.append(f"{group} {element} {name} . {comp} {chain} {entity} {seq} . {auth_seq} {comp} {chain} "
                     f"{name} {b:.4f} ? {xyz[0]:.3f} {xyz[1]:.3f} {xyz[2]:.3f} 1 {index + 1}")
    path.write_text("\n".join(lines) + "\n#\n")


def layout(atoms: list[tuple]) -> TokenLayout:
    """The token layout of `structure_atoms`: a token per residue, one per ligand atom."""
    starts = [i for i, atom in enumerate(atoms) if atom[0] == "HETATM" or atom[2] == "N"]
    first = [atoms[i] for i in starts]
    return TokenLayout(
        chain_id=[a[4] for a in first], residue_number=[int(a[6]) if a[6] != "." else 1 for a in first],
        residue_name=[a[3] for a in first], molecule_type=["ligand" if a[0] == "HETATM" else "protein"
                                                           for a in first],
        atomized=[a[0] == "HETATM" for a in first], atom_start=starts, atom_name=[a[2] for a in atoms])


def make_templates(folder: Path, samples: int) -> list[dict]:
    """One set of OpenFold3 files per sample number; returns each sample's aggregated scores."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    write_layout(folder / TOKENS_FILE, layout(structure_atoms(np.random.default_rng())))  # names only
    n_tokens = PROTEIN + LIGAND
    scores = []
    for k in range(1, samples + 1):
        atoms = structure_atoms(rng)
        plddt = rng.uniform(30, 95, len(atoms)).round(4)
        pae = rng.uniform(0.5, 30, (n_tokens, n_tokens)).round(4)
        write_cif(folder / f"{k}_model.cif", atoms, plddt)
        (folder / f"{k}_confidences.json").write_text(json.dumps(
            {"plddt": plddt.tolist(), "pde": pae.tolist(), "pae": pae.tolist()}, indent=4))
        iptm, ptm = float(rng.uniform(0.2, 0.9)), float(rng.uniform(0.2, 0.9))
        aggregated = {"avg_plddt": float(plddt.mean()), "gpde": 3.1, "iptm": iptm, "ptm": ptm,
                      "disorder": 0.1, "has_clash": 0.0,
                      "sample_ranking_score": 0.8 * iptm + 0.2 * ptm + 0.5 * 0.1,
                      "chain_ptm": {"A": ptm, "B": 0.1}, "chain_pair_iptm": {"(A, B)": iptm},
                      "bespoke_iptm": {"(A, B)": iptm}}
        (folder / f"{k}_confidences_aggregated.json").write_text(json.dumps(aggregated, indent=4))
        scores.append(aggregated)
    return scores


def template_copy(templates: Path, query: int) -> Path:
    """A copy of the templates per LINKS_PER_FILE queries (ext4 allows 65,000 links to a file)."""
    copy = templates.with_name(f"{templates.name}_{query // LINKS_PER_FILE}")
    if not copy.exists():
        shutil.copytree(templates, copy)
    return copy


def make_screen(root: Path, n_queries: int, samples: int, chunk_size: int) -> list[str]:
    """The screen as inference leaves it; returns the chunk names."""
    templates = root / "templates"
    scores = make_templates(templates, samples)
    out = Path("results/bench")
    chunks = []
    for start in range(0, n_queries, chunk_size):
        chunk = f"chunk_{start // chunk_size:05d}"
        chunks.append(chunk)
        rows, ingest, msa = [], [], []
        for q in range(start, min(start + chunk_size, n_queries)):
            query_id = f"q{q:07d}"
            folder = out / "predictions" / query_id / f"seed_{SEED}"
            os.makedirs(folder)
            summaries = []
            for k in range(1, samples + 1):
                stem = f"{query_id}_seed_{SEED}_sample_{k}"
                for kind in ("model.cif", "confidences.json", "confidences_aggregated.json"):
                    os.link(f"{template_copy(templates, q)}/{k}_{kind}", f"{folder}/{stem}_{kind}")
                summaries.append({"sample": k, "model": f"{stem}_model.cif",
                                  "confidences": f"{stem}_confidences.json",
                                  "aggregated": f"{stem}_confidences_aggregated.json",
                                  "scores": scores[k - 1]})
            os.link(template_copy(templates, q) / TOKENS_FILE, folder / TOKENS_FILE)
            record = {"query_id": query_id, "seed": SEED, "task_digest": "bench",
                      "settings": {"weights": "demo"}, "demo_weights": True, "backend": "mlx",
                      "device": "mlx cpu (OpenBLAS)", "foldscreen": "bench", "n_tokens": PROTEIN + LIGAND,
                      "n_atoms": 0, "timings": {}, "task_seconds": 1.0, "tokens": TOKENS_FILE,
                      "samples": summaries}
            (folder / TASK_RECORD).write_text(json.dumps(record))
            rows += sample_rows(record, folder)
            ingest.append({"query_id": query_id, "original_id": query_id, "source": "bench.csv",
                           "n_chains": 2, "n_tokens": PROTEIN + LIGAND, "molecule_types": "ligand,protein",
                           "chain_hashes": "", "digest": "", "record": "{}", "notes": ""})
            msa.append({c: "" for c in MSA_COLUMNS} | {"query_id": query_id, "chain_ids": "A",
                                                       "status": "ok"})
        write_parquet(out / "inference" / f"{chunk}.parquet", pd.DataFrame(rows, columns=INFERENCE_COLUMNS))
        write_parquet(out / "ingest" / f"{chunk}.parquet", pd.DataFrame(ingest, columns=INGEST_COLUMNS))
        write_parquet(out / "msa" / f"{chunk}.parquet", pd.DataFrame(msa, columns=MSA_COLUMNS))
        for stage in ("ingest", "inference"):
            write_parquet(out / stage / f"{chunk}.failures.parquet", pd.DataFrame(columns=FAILURE_COLUMNS))
    return chunks


def copy_partials(parts: dict[str, list[Path]], source: int, target: int, chunk_size: int) -> None:
    """A measured chunk's partials as another chunk's: the same rows with its query ids."""
    offset = (target - source) * chunk_size
    for name, paths in parts.items():
        frame = pd.read_parquet(paths[source])
        if len(frame):
            old = frame["query_id"]
            new = [f"q{int(q[1:]) + offset:07d}" for q in old]
            for column in [c for c in frame.columns if c.endswith("_path")]:
                frame[column] = [p.replace(o, n) for p, o, n in zip(frame[column], old, new)]
            frame["query_id"] = new
        write_table(paths[target], frame, name)


COMBINE = """
import json
import sys
from pathlib import Path
from foldscreen.reports import ArmTables, aggregate, chunk_parts
chunks, arm = sys.argv[1].split(","), json.loads(sys.argv[2])
out = Path("results/bench")
def stage(name, suffix=""):
    return [out / name / f"{c}{suffix}.parquet" for c in chunks]
tables = ArmTables(arm, stage("msa"), stage("inference", ".failures"), chunk_parts(out / "tables", chunks),
                   out / "ranked")
aggregate(stage("ingest"), stage("ingest", ".failures"), [tables], out, "bench")
"""


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of a child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise RuntimeError(f"{command[:3]} failed ({status})")
    return time.perf_counter() - started, usage.ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--measured-chunks", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary folder")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_aggregate_", dir=args.workdir))
    home = Path.cwd()
    os.chdir(root)
    try:
        started = time.perf_counter()
        chunks = make_screen(root, args.queries, args.samples, args.chunk_size)
        generate_s = time.perf_counter() - started
        out = Path("results/bench")
        parts = chunk_parts(out / "tables", chunks)
        arm = {"arm": "default", "samples_per_seed": args.samples, "recycles": None, "diffusion_steps": None,
               "precision": "float32", "msa_mode": "single_sequence"}  # a screen without a sweep
        measured = min(args.measured_chunks, len(chunks))
        started = time.perf_counter()
        for index in range(measured):
            tables_chunk(out / "inference" / f"{chunks[index]}.parquet",
                         {name: paths[index] for name, paths in parts.items()}, arm)
        per_chunk_s = (time.perf_counter() - started) / measured
        for index in range(measured, len(chunks)):
            copy_partials(parts, 0, index, args.chunk_size)
        combine = []
        for _ in range(args.repeats):
            for name in ("samples", "queries", "chains", "chain_pairs", "residues", "failures"):
                (out / f"{name}.parquet").unlink(missing_ok=True)
            shutil.rmtree(out / "ranked", ignore_errors=True)
            combine.append(timed([sys.executable, "-c", COMBINE, ",".join(chunks), json.dumps(arm)]))
        rows = {name: len(pd.read_parquet(out / f"{name}.parquet", columns=["query_id"]))
                for name in ("samples", "chains", "chain_pairs", "residues", "queries")}
        sizes = {name: round((out / f"{name}.parquet").stat().st_size / 2**20, 1)
                 for name in ("samples", "chains", "chain_pairs", "residues", "queries")}
        seconds = [c[0] for c in combine]
        print(json.dumps({
            "queries": args.queries, "samples": args.samples, "chunks": len(chunks),
            "tokens_per_sample": PROTEIN + LIGAND, "generate_s": round(generate_s, 1),
            "tables_chunk_s_per_chunk": round(per_chunk_s, 3),
            "tables_chunk_ms_per_sample": round(1000 * per_chunk_s / (args.chunk_size * args.samples), 3),
            "measured_chunks": measured,
            "aggregate_s": [round(s, 2) for s in seconds],
            "aggregate_median_s": round(statistics.median(seconds), 2),
            "aggregate_peak_rss_gib": round(max(c[1] for c in combine), 2),
            "rows": rows, "file_mib": sizes, "python": platform.python_version(),
        }))
    finally:
        os.chdir(home)
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
