"""End to end: the real Snakemake workflow on a small screen, tables read back from disk."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import make_screen, run_snakemake, snakemake_cmd

pytestmark = pytest.mark.slow

GOOD = {"mono", "dimer", "with_ligand"}


def tables(folder: Path) -> dict[str, pd.DataFrame]:
    out = folder / "results" / "test"
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in ("samples", "queries", "failures")}


def test_screen_tables(finished_screen):
    t = tables(finished_screen)
    samples, queries, failures = t["samples"], t["queries"], t["failures"]

    assert len(samples) == 3 * 1 * 2  # good queries x seeds x samples
    assert set(samples["query_id"]) == GOOD
    assert samples["demo_weights"].all()
    for _, group in samples.groupby("query_id"):
        assert sorted(group["rank"]) == [1, 2]
        best = group[group["rank"] == 1].iloc[0]
        assert best["sample_ranking_score"] == group["sample_ranking_score"].max()
        for column in ("model_path", "confidences_path", "aggregated_path"):
            assert all(Path(finished_screen, p).is_file() for p in group[column])
        aggregated = json.loads(Path(finished_screen, best["aggregated_path"]).read_text())
        assert aggregated["sample_ranking_score"] == pytest.approx(best["sample_ranking_score"], abs=1e-6)
        assert json.loads(best["chain_ptm"]) == aggregated["chain_ptm"]
    # OpenFold3's ranking score: 0.8 ipTM + 0.2 pTM + 0.5 disorder - 100 has_clash
    s = samples
    expected = 0.8 * s["iptm"] + 0.2 * s["ptm"] + 0.5 * s["disorder"] - 100 * s["has_clash"]
    assert (samples["sample_ranking_score"] - expected).abs().max() < 1e-4
    dimer_pairs = json.loads(samples.loc[samples["query_id"] == "dimer", "chain_pair_iptm"].iloc[0])
    assert set(dimer_pairs) == {"(A, B)"}

    assert set(queries["query_id"]) == GOOD
    assert (queries["status"] == "predicted").all()
    assert list(queries["sample_ranking_score"]) == sorted(queries["sample_ranking_score"], reverse=True)
    assert dict(zip(queries["query_id"], queries["n_tokens"])) == {"mono": 20, "dimer": 25, "with_ligand": 26}

    reasons = dict(zip(failures["query_id"], zip(failures["field"], failures["reason"])))
    assert set(reasons) == {"bad_letters", "bad_smiles"}
    assert reasons["bad_letters"][0] == "sequence"
    assert "'JZ' not a protein residue" in reasons["bad_letters"][1]
    assert reasons["bad_smiles"][0] == "smiles" and "RDKit cannot parse" in reasons["bad_smiles"][1]


def test_structures_carry_plddt_in_bfactor(finished_screen):
    import gemmi

    samples = tables(finished_screen)["samples"]
    row = samples[samples["query_id"] == "mono"].iloc[0]
    structure = gemmi.read_structure(str(Path(finished_screen, row["model_path"])))
    bfactors = [atom.b_iso for residue in structure[0]["A"] for atom in residue]
    plddt = json.loads(Path(finished_screen, row["confidences_path"]).read_text())["plddt"]
    assert len(bfactors) == len(plddt)
    assert bfactors == pytest.approx(plddt, abs=1e-3)
    assert len(structure[0]["A"]) == 20


def test_records_and_task_files(finished_screen):
    out = finished_screen / "results" / "test"
    assert sorted(p.stem for p in (out / "queries").glob("*.json")) == sorted(GOOD)
    seed_dir = out / "predictions" / "dimer" / "seed_7"
    names = sorted(p.name for p in seed_dir.iterdir())
    assert names == sorted(["task.json", "tokens.json"] + [f"dimer_seed_7_sample_{k}_{kind}" for k in (1, 2)
                           for kind in ("model.cif", "confidences.json", "confidences_aggregated.json")])
    record = json.loads((seed_dir / "task.json").read_text())
    assert record["demo_weights"] and record["backend"] == "mlx"  # the default backend
    assert record["timings"]["model_s"] > 0
    assert record["device"] in ("mlx cpu (OpenBLAS)", "mlx cpu (its own BLAS)") or "gpu" in record["device"]
    log = (out / "logs" / "inference" / "chunk_00000.log").read_text()
    assert (out / "logs" / "ingest" / "chunk_00000.log").is_file()
    assert "RANDOM weights" in log


def test_finished_screen_reruns_nothing(finished_screen):
    result = run_snakemake(finished_screen, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_runtime_settings_rerun_nothing_while_samples_rerun_inference(finished_screen, tmp_path):
    """threads, device, model_chunk_size, featurise_workers, the CUDA settings change how inference
    runs, not its outputs."""
    folder = tmp_path / "moved"
    shutil.copytree(finished_screen, folder, symlinks=True)  # keeps times and Snakemake's records
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["inference"].update(threads=2, device="cuda", model_chunk_size=64, featurise_workers=1,
                               write_in_process=True, kernel_cache="elsewhere", cuda_graphs=False,
                               memory_limit_gib=4)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    dry = run_snakemake(folder, "-n")
    assert "Nothing to be done" in dry.stdout, dry.stdout

    config["inference"]["precision"] = "bfloat16"  # changes the outputs: reruns inference
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    dry = run_snakemake(folder, "-n").stdout
    assert "params have changed since last execution" in dry.lower()
    config["inference"]["precision"] = "float32"
    config["inference"]["samples"] = 3
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    dry = run_snakemake(folder, "-n").stdout
    planned = re.findall(r"output: results/test/inference/(chunk_\d+)\.parquet", dry)
    assert sorted(planned) == ["chunk_00000", "chunk_00001", "chunk_00002"]  # in no set order
    assert "Params have changed since last execution" in dry


def test_added_queries_run_only_new_ones(finished_screen, tmp_path):
    """Only the new query's chunk runs; it runs as on a GPU node, featurised and written in
    spawned processes (which start by running the job's script again, without `snakemake`)."""
    folder = tmp_path / "grown"
    shutil.copytree(finished_screen, folder, symlinks=True)  # keeps times; shares the MSA cache
    done = {p: p.stat().st_mtime_ns for p in (folder / "results/test/predictions").rglob("task.json")}
    assert len(done) == 3
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["inference"].update(featurise_workers=1, write_in_process=True)  # runtime: reruns nothing
    (folder / "config.yaml").write_text(yaml.safe_dump(config))

    with (folder / "queries.csv").open("a") as sheet:
        sheet.write("added,MADEKPEPTIDEHERE,protein,1,\n")
    dry = run_snakemake(folder, "-n", "--cores", "1").stdout
    for stage in ("ingest", "msa", "inference"):
        planned = re.findall(rf"output: results/test/{stage}/(chunk_\d+)\.parquet", dry)
        assert planned == ["chunk_00002"]  # the open chunk of its size bucket (one query), no other
    run_snakemake(folder, "--cores", "2")

    assert {p: p.stat().st_mtime_ns for p in done} == done  # old tasks untouched
    samples = tables(folder)["samples"]
    assert set(samples["query_id"]) == GOOD | {"added"}
    assert len(samples) == 8


def test_sigkill_during_inference_then_rerun(tmp_path):
    folder = make_screen(tmp_path / "killed", chunk_size=5)
    process = subprocess.Popen(snakemake_cmd(folder, "--cores", "2"), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    predictions = folder / "results" / "test" / "predictions"
    deadline = time.time() + 300
    while not list(predictions.glob("*/seed_7/task.json")):
        assert time.time() < deadline and process.poll() is None, "inference never started"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    assert not (folder / "results/test/samples.parquet").exists()
    finished_before = {p.parent.parent.name for p in predictions.glob("*/seed_7/task.json")}
    assert len(finished_before) < 3

    run_snakemake(folder, "--unlock")
    run_snakemake(folder, "--cores", "2")
    samples = tables(folder)["samples"]
    assert set(samples["query_id"]) == GOOD
    for task in predictions.glob("*/seed_7"):
        record = json.loads((task / "task.json").read_text())
        assert len(record["samples"]) == 2
        for sample in record["samples"]:
            json.loads((task / sample["aggregated"]).read_text())  # whole, parseable files
    assert not [p for p in predictions.rglob(".*") if p.name.startswith(".seed")]
