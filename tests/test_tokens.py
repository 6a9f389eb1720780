"""Tokens as OpenFold3 featurised them: unknown residues (X in a protein, N in RNA and DNA) are
one token each, and every table row follows the recorded layout, end to end on the demo model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from foldscreen.cli import main as cli
from foldscreen.contracts.layout import TOKENS_FILE, read_layout

pytestmark = pytest.mark.slow

SHEET = "id,sequence,molecule_type,smiles\nunknowns,MKXTAYIAKQ:ACGNU:GANTC,protein:rna:dna,CCO\n"
CHAINS = {"A": ("protein", 10, 10), "B": ("rna", 5, 5), "C": ("dna", 5, 5), "D": ("ligand", 3, 3)}


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tokens") / "screen"
    out.mkdir()
    (out / "q.csv").write_text(SHEET)
    cli(["ingest", str(out / "q.csv"), "--out", str(out)])
    cli(["msa", "--out", str(out), "--cache", str(out / "cache")])
    cli(["predict", "--out", str(out), "--samples", "2", "--diffusion-steps", "2", "--recycles", "0",
         "--threads", "1"])
    cli(["aggregate", "--out", str(out)])
    return out


def test_the_layout_is_what_openfold3_featurised(screen):
    layout = read_layout(screen / "predictions" / "unknowns" / "seed_42" / TOKENS_FILE)
    confidences = json.loads(next((screen / "predictions").rglob("*_sample_1_confidences.json")).read_text())
    assert layout.n_tokens == len(confidences["pae"]) == 23
    assert layout.n_atoms == len(confidences["plddt"])
    assert [layout.residue_name[i] for i in (2, 13, 17)] == ["UNK", "N", "DN"]
    assert layout.atomized == [False] * 20 + [True] * 3


def test_unknown_residues_have_their_chains_and_residues_rows(screen):
    failures = pd.read_parquet(screen / "failures.parquet")
    assert failures.empty, failures.to_dict("records")
    chains = pd.read_parquet(screen / "chains.parquet")
    for _, sample in chains.groupby(["seed", "sample"]):
        found = {row.chain_id: (row.molecule_type, row.n_residues, row.n_tokens)
                 for row in sample.itertuples()}
        assert found == CHAINS
    residues = pd.read_parquet(screen / "residues.parquet")
    assert len(residues) == 2 * 23
    first = residues[residues["sample"] == 1]
    assert list(first["chain_id"]) == ["A"] * 10 + ["B"] * 5 + ["C"] * 5 + ["D"] * 3
    assert list(first["residue_number"][:10]) == list(range(1, 11))
    assert first["atom_name"].notna().tolist() == [False] * 20 + [True] * 3
    queries = pd.read_parquet(screen / "queries.parquet")
    assert queries.set_index("query_id").loc["unknowns", "status"] == "predicted"
    assert pd.read_parquet(screen / "chain_pairs.parquet").groupby("sample").size().tolist() == [6, 6]
