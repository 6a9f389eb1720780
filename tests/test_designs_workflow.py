"""End to end: every kind of design in one real Snakemake run on the demo weights, the expanded
ids, the factor columns and the failure rows read back from the screen's tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import run_snakemake

pytestmark = pytest.mark.slow

WT = "MQIFVKTLTG"
DESIGNS = [
    {"name": "pd", "kind": "pulldown", "baits": "baits.fasta", "preys": "preys.fasta", "bait_copies": 2},
    {"name": "ava", "kind": "all_vs_all", "proteins": "subunits.fasta"},
    {"name": "olig", "kind": "oligomers", "proteins": "zipper.fasta", "copies": [1, 2]},
    {"name": "lig", "kind": "ligands", "targets": "target.fasta", "library": "library.csv"},
    {"name": "mut", "kind": "mutants", "wild_type": "wt.fasta", "mutations": ["Q2A", "Q3A", "M20A"]},
]
PREDICTED = {
    "b1_x2__p1": ("pd", "b1", "p1", None, None, None, None, 2, 1),
    "b1_x2__p2": ("pd", "b1", "p2", None, None, None, None, 2, 1),
    "s1__s2": ("ava", "s1", "s2", None, None, None, None, None, None),
    "zip__x1": ("olig", None, None, "zip", None, None, 1, None, None),
    "zip__x2": ("olig", None, None, "zip", None, None, 2, None, None),
    "pep__asp": ("lig", None, None, "pep", "asp", None, None, None, None),
    "ubq__wt": ("mut", None, None, "ubq", None, "wt", None, None, None),
    "ubq__Q2A": ("mut", None, None, "ubq", None, "Q2A", None, None, None),
}
FACTORS = ["design", "bait", "prey", "target", "ligand_id", "mutation", "copies", "bait_copies",
           "prey_copies"]


@pytest.fixture(scope="module")
def designed_screen(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("designs")
    files = {
        "baits.fasta": ">b1\nMKTAYIAKQR\n",
        "preys.fasta": ">p1\nGSHMKELEEK\n>p2\nNLYIQWLKDG\n",
        "subunits.fasta": ">s1\nGSWTWENGKW\n>s2\nRMKQLEDKVE\n",
        "zipper.fasta": ">zip\nRMKQLEDKVEELLS\n",
        "target.fasta": ">pep\nGSWTWENGKW\n",
        "library.csv": "id,smiles\nasp,CC(=O)OC1=CC=CC=C1C(=O)O\nbad,C1CC(\nnone,\n",
        "wt.fasta": f">ubq\n{WT}\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    config = {"screen": "test", "designs": DESIGNS, "results": "results",
              "msa": {"mode": "single_sequence", "cache": str(folder / "msa_cache")},
              "inference": {"weights": "demo", "seeds": [7], "samples": 1, "diffusion_steps": 2,
                            "recycles": 0, "chunk_size": 20, "threads": 2}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(folder, "--cores", "2", "aggregate")  # the tables (the report is tested elsewhere)
    return folder


def read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(folder / "results" / "test" / f"{table}.parquet")


def factor_rows(frame: pd.DataFrame) -> dict[str, tuple]:
    rows = frame.set_index("query_id")[FACTORS].astype(object)
    return {query_id: tuple(None if pd.isna(v) else v for v in row) for query_id, row in rows.iterrows()}


def test_every_design_kind_expands_into_predicted_queries(designed_screen):
    queries = read(designed_screen, "queries")
    assert factor_rows(queries) == PREDICTED
    assert (queries["status"] == "predicted").all()
    kinds = dict(zip(queries["query_id"], queries["design_kind"]))
    assert kinds["s1__s2"] == "all_vs_all" and kinds["ubq__Q2A"] == "mutants"
    assert dict(zip(queries["query_id"], queries["n_chains"]))["b1_x2__p2"] == 3  # two baits, one prey
    schema = pq.read_schema(designed_screen / "results" / "test" / "queries.parquet")
    assert str(schema.field("copies").type) == "int64" and str(schema.field("target").type) == "string"

    samples = read(designed_screen, "samples")
    assert len(samples) == len(PREDICTED)  # one seed, one sample
    assert factor_rows(samples) == PREDICTED


def test_bad_elements_are_failure_rows_naming_the_design(designed_screen):
    failures = read(designed_screen, "failures").set_index("query_id")
    assert set(failures.index) == {"pep__bad", "pep__none", "ubq__Q3A", "ubq__M20A"}
    assert factor_rows(failures.reset_index())["ubq__Q3A"] == ("mut", None, None, "ubq", None, "Q3A",
                                                              None, None, None)
    reasons = failures["reason"]
    assert failures.loc["pep__bad", "field"] == "smiles"
    assert reasons["pep__bad"].startswith("design 'lig' (ligands), target 'pep' x ligand 'bad': "
                                          "chain B: RDKit")
    assert failures.loc["pep__none", "ligand_id"] == "none"
    assert "neither a SMILES string nor a CCD code" in reasons["pep__none"]
    assert reasons["ubq__Q3A"] == ("design 'mut' (mutants), wild type 'ubq', mutation 'Q3A': "
                                   "residue 3 of chain A is I, not Q")
    assert "position 20 is past the end of chain A (10 residues)" in reasons["ubq__M20A"]


def test_designed_records_are_ordinary_queries(designed_screen):
    import json

    record = json.loads((designed_screen / "results" / "test" / "queries" / "b1_x2__p1.json").read_text())
    chains = record["queries"]["b1_x2__p1"]["chains"]
    assert [(c["chain_ids"], c["sequence"]) for c in chains] == [(["A", "B"], "MKTAYIAKQR"),
                                                                 (["C"], "GSHMKELEEK")]
    mutant = json.loads((designed_screen / "results" / "test" / "queries" / "ubq__Q2A.json").read_text())
    assert mutant["queries"]["ubq__Q2A"]["chains"][0]["sequence"] == "MAIFVKTLTG"
