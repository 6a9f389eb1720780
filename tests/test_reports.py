"""The report tables of a real small run, read back with pyarrow and pandas, checked against their
written schemas and against OpenFold3's per-sample files (read independently, with gemmi)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import run_snakemake

from foldscreen.cli import main as cli
from foldscreen.contracts import TABLES
from foldscreen.contracts.schema import schema_errors, table_schema
from foldscreen.reports import ArmTables, aggregate, chunk_parts, tables_chunk
from foldscreen.reports.aggregate import link_ranked

pytestmark = pytest.mark.slow

METADATA = {"foldscreen_version", "openfold3_version", "weights", "weights_sha256", "config_sha256",
            "backend", "device", "created"}


def out_dir(folder: Path) -> Path:
    return folder / "results" / "test"


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out_dir(folder) / f"{name}.parquet")


def copy_screen(finished_screen: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(finished_screen, folder, symlinks=True)  # keeps times: nothing reruns by itself
    return folder


def sample_files(folder: Path, row) -> tuple[gemmi.Structure, dict, dict]:
    structure = gemmi.read_structure(str(folder / row.model_path))
    return (structure, json.loads((folder / row.confidences_path).read_text()),
            json.loads((folder / row.aggregated_path).read_text()))


def of_sample(frame: pd.DataFrame, row) -> pd.DataFrame:
    return frame[(frame["query_id"] == row.query_id) & (frame["seed"] == row.seed)
                 & (frame["sample"] == row.sample)]


def token_table(structure: gemmi.Structure, atom_plddt: list[float]) -> pd.DataFrame:
    """One row per token (a polymer residue, or one atom of a ligand) with its chain and pLDDT."""
    rows, atom = [], 0
    for chain in structure[0]:
        for residue in chain:
            plddts = atom_plddt[atom:atom + len(residue)]
            atom += len(residue)
            if residue.het_flag == "H":
                rows += [(chain.name, residue.name, a.name, p) for a, p in zip(residue, plddts)]
            else:
                rows.append((chain.name, residue.name, None, float(np.mean(plddts))))
    return pd.DataFrame(rows, columns=["chain_id", "residue_name", "atom_name", "plddt"])


def test_every_table_matches_its_schema(finished_screen):
    metadata = []
    for name in TABLES:
        table = pq.read_table(out_dir(finished_screen) / f"{name}.parquet")
        assert schema_errors(table, name) == []
        assert table.num_rows > 0, name
        assert list(read(finished_screen, name).columns) == table_schema(name).names
        metadata.append({k.decode(): v.decode() for k, v in table.schema.metadata.items()})
    assert set(metadata[0]) == METADATA
    assert all(m == metadata[0] for m in metadata)  # one run, one set of metadata
    meta = metadata[0]
    assert meta["weights"] == meta["weights_sha256"] == "demo"
    assert meta["backend"] == "mlx" and meta["openfold3_version"] == "0.5.0"
    assert len(meta["config_sha256"]) == 64


def test_samples_and_queries_match_openfold3_files(finished_screen):
    samples, queries = read(finished_screen, "samples"), read(finished_screen, "queries")
    assert list(samples["query_id"]) == sorted(samples["query_id"])  # one chunk per query here
    for _, group in samples.groupby("query_id", sort=False):
        assert list(group["rank"]) == list(range(1, len(group) + 1))
        assert list(group["sample_ranking_score"]) == sorted(group["sample_ranking_score"], reverse=True)
    for row in samples.itertuples():
        _, confidences, aggregated = sample_files(finished_screen, row)
        for field in ("sample_ranking_score", "iptm", "ptm", "avg_plddt", "gpde", "disorder"):
            assert getattr(row, field) == pytest.approx(aggregated[field], abs=1e-6)
        assert row.has_clash == bool(aggregated["has_clash"])
        assert json.loads(row.chain_pair_iptm) == aggregated["chain_pair_iptm"]
        assert (row.n_tokens, row.n_atoms) == (len(confidences["pae"]), len(confidences["plddt"]))

    best = samples[samples["rank"] == 1].set_index("query_id")
    for query in queries[queries["status"] == "predicted"].itertuples():
        top = best.loc[query.query_id]
        assert (query.best_seed, query.best_sample) == (top["seed"], top["sample"])
        assert query.sample_ranking_score == top["sample_ranking_score"]
        scores = samples.loc[samples["query_id"] == query.query_id, "sample_ranking_score"]
        assert query.ranking_score_spread == pytest.approx(scores.max() - scores.min())
        ranked = finished_screen / query.ranked_model_path
        assert ranked.name == f"{query.query_id}_rank_1.cif"
        assert ranked.read_bytes() == (finished_screen / top["model_path"]).read_bytes()
    assert sorted(p.name for p in (out_dir(finished_screen) / "ranked").iterdir()) == sorted(
        f"{q}_rank_1.cif" for q in best.index)
    assert queries.loc[queries["query_id"] == "mono", "ipsae"].isna().all()  # one chain, no pair
    assert queries.loc[queries["query_id"] == "dimer", "ipsae"].notna().all()


def test_chains_pairs_and_residues_match_openfold3_files(finished_screen):
    samples = read(finished_screen, "samples")
    chains, pairs, residues = (read(finished_screen, n) for n in ("chains", "chain_pairs", "residues"))
    assert set(chains["molecule_type"]) == {"protein", "ligand"}
    for row in samples.itertuples():
        structure, confidences, aggregated = sample_files(finished_screen, row)
        sample_chains = of_sample(chains, row).set_index("chain_id")
        atom_plddt = confidences["plddt"]
        assert sorted(sample_chains.index) == sorted(c.name for c in structure[0])
        start = 0
        for chain in structure[0]:
            n_atoms = sum(len(r) for r in chain)
            found = sample_chains.loc[chain.name]
            assert found["mean_plddt"] == pytest.approx(np.mean(atom_plddt[start:start + n_atoms]))
            assert found["chain_ptm"] == pytest.approx(aggregated["chain_ptm"][chain.name])
            assert found["rank"] == row.rank
            start += n_atoms

        tokens = token_table(structure, atom_plddt)
        mine = of_sample(residues, row).reset_index(drop=True)
        assert list(mine["token_index"]) == list(range(len(confidences["pae"])))
        assert list(mine["chain_id"]) == list(tokens["chain_id"])
        assert list(mine["residue_name"]) == list(tokens["residue_name"])
        assert list(mine["atom_name"].fillna("-")) == list(tokens["atom_name"].fillna("-"))
        assert np.allclose(mine["plddt"], tokens["plddt"])

        pae = np.array(confidences["pae"])
        sample_pairs = of_sample(pairs, row)
        assert len(sample_pairs) == len(aggregated["chain_pair_iptm"])
        for pair in sample_pairs.itertuples():
            a = np.flatnonzero(tokens["chain_id"] == pair.chain_a)
            b = np.flatnonzero(tokens["chain_id"] == pair.chain_b)
            between = np.concatenate([pae[np.ix_(a, b)].ravel(), pae[np.ix_(b, a)].ravel()])
            assert pair.pae_min == pytest.approx(between.min())
            assert pair.pae_mean == pytest.approx(between.mean())
            assert pair.chain_pair_iptm == aggregated["chain_pair_iptm"][f"({pair.chain_a}, {pair.chain_b})"]
            assert pair.ipsae == max(pair.ipsae_ab, pair.ipsae_ba)


def screen_arm() -> dict:
    """The columns of the one arm of the screen in the current folder (it has no sweep)."""
    from foldscreen.config import validate_config
    from foldscreen.sweep import sweep_arms

    (arm,) = sweep_arms(validate_config(yaml.safe_load(Path("config.yaml").read_text())))
    return arm.columns


def test_aggregating_again_gives_the_same_bytes(finished_screen, tmp_path):
    folder = copy_screen(finished_screen, tmp_path)
    before = {name: (out_dir(folder) / f"{name}.parquet").read_bytes() for name in TABLES}
    run_snakemake(folder, "--cores", "1", "--forcerun", "aggregate", "--until", "aggregate")
    for name in TABLES:
        path = out_dir(folder) / f"{name}.parquet"
        old, new = (pq.read_schema(p).metadata[b"created"] for p in (out_dir(finished_screen) / path.name,
                                                                       path))
        assert path.read_bytes() == before[name].replace(old, new), name  # only the creation time differs


def test_more_chunks_only_add_rows(finished_screen, tmp_path, monkeypatch):
    monkeypatch.chdir(finished_screen)  # the tables' paths are relative to the workflow directory
    out = Path("results/test")
    chunks = sorted(p.name.split(".")[0] for p in (out / "tables").glob("*.samples.parquet"))
    assert len(chunks) == 3

    def stage(name: str, suffix: str = "") -> list[Path]:
        return [out / name / f"{chunk}{suffix}.parquet" for chunk in chunks[:1]]

    fewer = tmp_path / "fewer"
    arm = ArmTables(screen_arm(), stage("msa"), stage("inference", ".failures"),
                    chunk_parts(out / "tables", chunks[:1]), fewer / "ranked")
    aggregate(stage("ingest"), stage("ingest", ".failures"), [arm], fewer, "digest")
    for name in ("samples", "chains", "chain_pairs", "residues"):
        part, full = pd.read_parquet(fewer / f"{name}.parquet"), pd.read_parquet(out / f"{name}.parquet")
        assert 0 < len(part) < len(full)
        pd.testing.assert_frame_equal(part, full.iloc[:len(part)])  # the same leading rows
    queries = pd.read_parquet(fewer / "queries.parquet").set_index("query_id")
    full = pd.read_parquet(out / "queries.parquet").set_index("query_id")
    assert set(queries.index) < set(full.index)
    pd.testing.assert_frame_equal(queries.drop(columns="ranked_model_path"),
                                  full.loc[queries.index].drop(columns="ranked_model_path"))


def test_a_grown_screen_rescores_only_its_new_chunk(finished_screen, tmp_path):
    folder = copy_screen(finished_screen, tmp_path)
    with (folder / "queries.csv").open("a") as sheet:
        sheet.write("added,MADEKPEPTIDEHERE,protein,1,\n")
    dry = run_snakemake(folder, "-n", "--cores", "1").stdout
    # the added query joins one chunk (its size bucket's open one, or a new one): only it is rescored
    assert len(re.findall(r"output: results/test/tables/(chunk_\d+)\.samples\.parquet", dry)) == 1
    assert "rule aggregate:" in dry


def test_cli_aggregate_matches_the_workflow(finished_screen, tmp_path, monkeypatch):
    folder = copy_screen(finished_screen, tmp_path)
    shutil.rmtree(out_dir(folder) / "tables")
    for name in TABLES:
        (out_dir(folder) / f"{name}.parquet").unlink()
    monkeypatch.chdir(folder)
    cli(["aggregate", "--config", "config.yaml"])  # the config the workflow ran with
    for name in TABLES:
        made = pq.read_table(out_dir(folder) / f"{name}.parquet")
        workflow = pq.read_table(out_dir(finished_screen) / f"{name}.parquet")
        assert made.equals(workflow), name
        # the same schema filled in the same defaults: the same config digest
        assert made.schema.metadata[b"config_sha256"] == workflow.schema.metadata[b"config_sha256"]


def test_an_unreadable_sample_becomes_a_failure(finished_screen, tmp_path, monkeypatch):
    folder = copy_screen(finished_screen, tmp_path)
    monkeypatch.chdir(folder)
    samples = pd.read_parquet("results/test/inference/chunk_00001.parquet")
    broken = samples.iloc[0]
    Path(broken["confidences_path"]).write_text('{"plddt": [1.0], "pae": [[1.0]]}')
    outputs = {name: paths[0] for name, paths in chunk_parts(tmp_path / "parts", ["chunk_00001"]).items()}
    tables_chunk(Path("results/test/inference/chunk_00001.parquet"),
                 Path("results/test/ingest/chunk_00001.parquet"), outputs, screen_arm())

    failures = pd.read_parquet(outputs["failures"])
    assert list(failures["stage"]) == ["aggregate"]
    assert failures["field"].iloc[0] == f"seed {broken['seed']} sample {broken['sample']}"
    assert "tokens" in failures["reason"].iloc[0]
    assert len(pd.read_parquet(outputs["samples"])) == len(samples)  # its scores are still reported
    chains = pd.read_parquet(outputs["chains"])
    assert len(chains.groupby(["seed", "sample"])) == len(samples) - 1


def test_ranked_links_follow_the_best_and_drop_stale_ones(tmp_path):
    one, two = tmp_path / "one.cif", tmp_path / "two.cif"
    one.write_text("first")
    two.write_text("second")
    folder = tmp_path / "ranked"
    link_ranked(folder, {"q": str(one), "gone": str(two)})
    assert (folder / "q_rank_1.cif").read_text() == "first"
    link_ranked(folder, {"q": str(two)})  # q's best changed; `gone` left the screen
    assert sorted(p.name for p in folder.iterdir()) == ["q_rank_1.cif"]
    assert (folder / "q_rank_1.cif").read_text() == "second"
