"""Designs expand into ordinary queries: ids, chains, factors, bad elements and plan errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from foldscreen import plan
from foldscreen.contracts import Failure, Query
from foldscreen.queries.designs import AMINO_ACIDS, expand_designs
from foldscreen.queries.ingest import ingest
from foldscreen.queries.validate import Limits

WT = "MQIFVKTLTG"


@pytest.fixture
def files(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("baits.fasta").write_text(">b1\nMKTAYIAKQR\n>b2\nGSHMKELEEK:NLYIQWLK\n")
    Path("preys.fasta").write_text(">p1\nMKTAYIAKQR\n>p2 a prey\nGSWTWENGKW\n")
    Path("wt.fasta").write_text(f">ubq\n{WT}\n")
    Path("complex.fasta").write_text(f">cx\n{WT}:GSWTWENGKW\n")
    Path("library.csv").write_text("id,smiles,ccd\nasp,CC(=O)OC1=CC=CC=C1C(=O)O,\natp,,ATP\nbad,C1CC(,\n"
                                   "empty,,\n")
    return tmp_path


def by_id(items: list) -> dict:
    return {item.query_id: item for item in items}


def chains(query: Query) -> list[tuple[tuple[str, ...], str]]:
    return [(c.chain_ids, c.sequence or c.smiles or " ".join(c.ccd_codes or ())) for c in query.chains]


def test_pulldown_pairs_every_bait_with_every_prey(files):
    items = by_id(expand_designs([{"name": "pd", "kind": "pulldown", "baits": "baits.fasta",
                                   "preys": ["preys.fasta"], "prey_copies": 2}]))
    assert list(items) == ["b1__p1_x2", "b1__p2_x2", "b2__p1_x2", "b2__p2_x2"]
    # identical chains merge into copies; chains lettered in order, bait first
    assert chains(items["b1__p1_x2"]) == [(("A", "B", "C"), "MKTAYIAKQR")]
    assert chains(items["b2__p2_x2"]) == [(("A",), "GSHMKELEEK"), (("B",), "NLYIQWLK"),
                                          (("C", "D"), "GSWTWENGKW")]
    assert items["b2__p1_x2"].factors == {"design": "pd", "design_kind": "pulldown", "bait": "b2",
                                          "prey": "p1", "bait_copies": 1, "prey_copies": 2}


def test_all_vs_all_and_oligomers(files):
    items = expand_designs([
        {"name": "ava", "kind": "all_vs_all", "proteins": ["baits.fasta", "preys.fasta"]},
        {"name": "homo", "kind": "all_vs_all", "proteins": "preys.fasta", "homodimers": True},
        {"name": "olig", "kind": "oligomers", "proteins": "wt.fasta", "copies": [3, 1, 6]},
        {"name": "olig2", "kind": "oligomers", "proteins": "preys.fasta", "max_copies": 2},
    ])
    ids = [item.query_id for item in items]
    assert ids[:6] == ["b1__b2", "b1__p1", "b1__p2", "b2__p1", "b2__p2", "p1__p2"]  # 4 choose 2
    assert ids[6:9] == ["p1__p1", "p1__p2", "p2__p2"]  # the same pair again: a duplicate, caught later
    assert ids[9:] == ["ubq__x1", "ubq__x3", "ubq__x6", "p1__x1", "p1__x2", "p2__x1", "p2__x2"]
    homodimer = items[6]
    assert chains(homodimer) == [(("A", "B"), "MKTAYIAKQR")]
    assert homodimer.factors["bait"] == homodimer.factors["prey"] == "p1"
    six = items[11]
    assert six.factors == {"design": "olig", "design_kind": "oligomers", "target": "ubq", "copies": 6}
    assert chains(six) == [(("A", "B", "C", "D", "E", "F"), WT)]


def test_ligands_take_ids_from_the_library(files):
    items = by_id(expand_designs([{"name": "lib", "kind": "ligands", "targets": "preys.fasta",
                                   "library": "library.csv", "ccd": ["HEM"]}]))
    ligand_ids = ("asp", "atp", "bad", "empty", "HEM")
    assert list(items) == [f"{t}__{ligand}" for t in ("p1", "p2") for ligand in ligand_ids]
    assert chains(items["p1__asp"]) == [(("A",), "MKTAYIAKQR"), (("B",), "CC(=O)OC1=CC=CC=C1C(=O)O")]
    assert chains(items["p2__HEM"])[1] == (("B",), "HEM")
    assert items["p2__atp"].factors == {"design": "lib", "design_kind": "ligands", "target": "p2",
                                        "ligand_id": "atp"}
    empty = items["p1__empty"]
    assert isinstance(empty, Failure) and empty.field == "library"
    assert empty.reason.startswith("design 'lib' (ligands), target 'p1' x ligand 'empty': ")
    assert "neither a SMILES string nor a CCD code" in empty.reason


def test_ligands_from_an_sdf_library(files):
    from rdkit import Chem

    blocks = []
    for name, smiles in (("ethanol", "CCO"), ("benzene", "c1ccccc1")):
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", name)
        blocks.append(Chem.MolToMolBlock(mol) + "$$$$\n")
    Path("lib.sdf").write_text("".join(blocks) + "broken\n  nothing here\n\nM  END\n$$$$\n")
    items = expand_designs([{"name": "sdf", "kind": "ligands", "targets": "wt.fasta", "library": "lib.sdf"}])
    assert [i.query_id for i in items] == ["ubq__ethanol", "ubq__benzene", "ubq__broken"]
    assert chains(items[1])[1] == (("B",), "c1ccccc1")
    assert isinstance(items[2], Failure) and "RDKit cannot read SDF record 3" in items[2].reason


def test_mutants_lists_scans_and_bad_elements(files):
    items = by_id(expand_designs([{"name": "mut", "kind": "mutants", "wild_type": "wt.fasta",
                                   "mutations": ["Q2A", "K6R/T7A", "Q3A", "M11A", "M1M"],
                                   "scan": ["9-12"]}]))
    wild = items["ubq__wt"]
    assert chains(wild) == [(("A",), WT)] and wild.factors["mutation"] == "wt"
    assert chains(items["ubq__K6R-T7A"]) == [(("A",), "MQIFVRALTG")]
    assert items["ubq__K6R-T7A"].factors == {"design": "mut", "design_kind": "mutants", "target": "ubq",
                                             "mutation": "K6R/T7A"}
    mismatch, past, same = items["ubq__Q3A"], items["ubq__M11A"], items["ubq__M1M"]
    assert isinstance(mismatch, Failure) and mismatch.field == "mutation"
    assert mismatch.reason == ("design 'mut' (mutants), wild type 'ubq', mutation 'Q3A': "
                               "residue 3 of chain A is I, not Q")
    assert "past the end of chain A (10 residues)" in past.reason
    assert "not a standard residue other than M" in same.reason
    scanned = [i for i in items.values() if isinstance(i, Query) and i.factors["mutation"][0] in "TG"
               and i.factors["mutation"][1:-1] in ("9", "10")]
    assert len(scanned) == 2 * 19  # positions 9 and 10, every other standard residue
    assert {q.factors["mutation"][-1] for q in scanned if q.factors["mutation"].startswith("T9")} == \
        set(AMINO_ACIDS) - {"T"}
    beyond = items["ubq__scan_9-12"]
    assert isinstance(beyond, Failure) and "positions 11-12 are past the end of chain A" in beyond.reason


def test_mutants_of_a_complex_name_their_chain(files):
    items = by_id(expand_designs([{"name": "cx", "kind": "mutants", "wild_type": "complex.fasta",
                                   "mutations": ["B:G1A", "Q2A", "C:G1A", "A:Q2A/B:S2T"]}]))
    assert chains(items["cx__B.G1A"]) == [(("A",), WT), (("B",), "ASWTWENGKW")]
    assert items["cx__B.G1A"].factors["mutation"] == "B:G1A"
    assert "name one, as in A:Q2A" in items["cx__Q2A"].reason
    assert "no chain C" in items["cx__C.G1A"].reason
    assert chains(items["cx__A.Q2A-B.S2T"]) == [(("A",), "MAIFVKTLTG"), (("B",), "GTWTWENGKW")]


def test_a_mutation_of_one_copy_splits_the_entity(files):
    entry = {"molecule_type": "protein", "chain_ids": ["A", "B"], "sequence": WT}
    Path("homo.json").write_text(json.dumps({"queries": {"hd": {"chains": [entry]}}}))
    items = by_id(expand_designs([{"name": "hd", "kind": "mutants", "wild_type": "homo.json",
                                   "mutations": ["B:Q2A", "Q2A"]}]))
    assert chains(items["hd__B.Q2A"]) == [(("B",), "MAIFVKTLTG"), (("A",), WT)]
    assert chains(items["hd__Q2A"]) == [(("A", "B"), "MAIFVKTLTG")]  # no chain: every copy


@pytest.mark.parametrize(("design", "message"), [
    ({"name": "x", "kind": "pulldown", "baits": "baits.fasta"},
     r"designs\[0\]\.preys: a pulldown design needs preys"),
    ({"name": "x", "kind": "pulldown", "baits": "missing.fasta", "preys": "preys.fasta"},
     r"designs\[0\]\.baits: no such file missing\.fasta"),
    ({"name": "x", "kind": "oligomers", "proteins": "wt.fasta", "max_copies": 2, "copies": [1]},
     r"designs\[0\]\.max_copies: give max_copies"),
    ({"name": "x", "kind": "ligands", "targets": "wt.fasta", "max_copies": 2},
     r"designs\[0\]\.max_copies: not a field of a ligands design"),
    ({"name": "x", "kind": "mutants", "wild_type": "wt.fasta", "mutations": ["Q2A", "2A"]},
     r"designs\[0\]\.mutations\[1\]: '2A' is not a mutation"),
    ({"name": "x", "kind": "mutants", "wild_type": "wt.fasta", "scan": ["9-2"]},
     r"designs\[0\]\.scan\[0\]: '9-2' is not a residue range"),
    ({"name": "x", "kind": "mutants", "wild_type": "baits.fasta", "mutations": ["Q2A"]},
     r"designs\[0\]\.wild_type: the file holds 2 queries \(b1, b2\): name one with wild_type_id"),
    ({"name": "x", "kind": "mutants", "wild_type": "baits.fasta", "wild_type_id": "b9", "mutations": ["Q2A"]},
     r"designs\[0\]\.wild_type_id: no query 'b9'"),
    ({"name": "x", "kind": "ligands", "targets": "wt.fasta", "library": "baits.fasta"},
     r"designs\[0\]\.library: .*unknown library type"),
    (None, r"queries: the screen has no query files and no designs"),
])
def test_a_malformed_design_is_a_plan_error(files, design, message):
    config = {"screen": "s", "results": "results", "designs": [design] if design else [],
              "inference": {"chunk_size": 2, "token_budget": 1000}, "ingest": {}}
    with pytest.raises(plan.PlanError, match=message):
        plan.plan_screen(config)


def test_ids_are_unique_across_the_screen_and_bad_chemistry_names_the_design(files, tmp_path):
    Path("queries.csv").write_text("id,sequence\nb1__p1,MKTAYIAK\n")
    Path("two.csv").write_text("id,smiles\nasp,CC(=O)OC1=CC=CC=C1C(=O)O\nbad,C1CC(\n")
    config = {"screen": "s", "results": "results", "queries": ["queries.csv"],
              "designs": [{"name": "pd", "kind": "pulldown", "baits": "baits.fasta", "preys": "preys.fasta"},
                          {"name": "lib", "kind": "ligands", "targets": "wt.fasta", "library": "two.csv"}],
              "ingest": {"max_tokens": 5120, "max_chain_length": 4000},
              "inference": {"chunk_size": 3, "token_budget": 20000}}
    chunks = plan.plan_screen(config)
    placed = {index: item for c in chunks
              for index, item in zip(c.items, plan.chunk_items(config, list(c.items), c.digest))}
    items = [placed[index] for index in sorted(placed)]  # in source order
    assert len(items) == 1 + 4 + 2
    duplicate = items[1]
    assert isinstance(duplicate, Failure) and duplicate.query_id == "b1__p1" and duplicate.field == "id"
    assert duplicate.factors["design"] == "pd"  # the design's query lost to the query file's

    accepted, rejected = ingest(items, Limits(5120, 4000), tmp_path / "records",
                                tmp_path / "q.parquet", tmp_path / "f.parquet")
    assert (accepted, rejected) == (1 + 3 + 1, 2)
    queries, failures = pd.read_parquet(tmp_path / "q.parquet"), pd.read_parquet(tmp_path / "f.parquet")
    row = queries.set_index("query_id").loc["b2__p2"]
    assert (row["design"], row["design_kind"], row["bait"], row["prey"], row["bait_copies"]) == \
        ("pd", "pulldown", "b2", "p2", 1)
    assert pd.isna(queries.set_index("query_id").loc["b1__p1", "design"])  # the query file's
    assert str(queries["copies"].dtype) == "Int64"
    bad = failures.set_index("query_id").loc["ubq__bad"]
    assert (bad["field"], bad["design"], bad["target"], bad["ligand_id"]) == ("smiles", "lib", "ubq", "bad")
    assert bad["reason"].startswith("design 'lib' (ligands), target 'ubq' x ligand 'bad': "
                                    "chain B: RDKit cannot parse")
