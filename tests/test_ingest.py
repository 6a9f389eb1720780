"""Ingestion: every source format, and every kind of bad query, with the reason it gives."""

import json
from pathlib import Path

import pandas as pd
import pytest

from foldscreen.contracts import Failure, Query
from foldscreen.queries.ids import sanitise_id
from foldscreen.queries.ingest import ingest
from foldscreen.queries.readers import read_queries
from foldscreen.queries.validate import Limits, validate

LIMITS = Limits(max_tokens=500, max_chain_length=200)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def by_id(items):
    return {i.query_id: i for i in items}


def test_fasta_complex_is_split_on_colons(tmp_path):
    src = write(tmp_path / "q.fasta", ">dimer some description\nMKTAY\nIAKQR:GSHM\n>mono\nacdef\n")
    items = by_id(read_queries([src]))
    dimer, mono = items["dimer"], items["mono"]
    assert [c.sequence for c in dimer.chains] == ["MKTAYIAKQR", "GSHM"]
    assert [c.chain_ids for c in dimer.chains] == [("A",), ("B",)]
    assert mono.chains[0].sequence == "ACDEF"
    assert dimer.source == "q.fasta:1"


def test_sheet_columns_copies_ligands_and_msa(tmp_path):
    write(tmp_path / "a.a3m", ">q\nMKT\n")
    src = write(tmp_path / "s.csv",
                "id,sequence,molecule_type,copies,smiles,ccd,msa\n"
                "x,MKT:ACGU,protein:rna,2:1,CCO;c1ccccc1,ATP,a.a3m:\n")
    (query,) = read_queries([src])
    types = [(c.molecule_type, c.chain_ids) for c in query.chains]
    assert types == [("protein", ("A", "B")), ("rna", ("C",)), ("ligand", ("D",)),
                     ("ligand", ("E",)), ("ligand", ("F",))]
    assert query.chains[0].msa_path == str(tmp_path / "a.a3m")
    assert query.chains[1].msa_path is None
    assert query.chains[4].ccd_codes == ("ATP",)


def test_tsv_sheet(tmp_path):
    src = write(tmp_path / "s.tsv", "id\tsequence\nq1\tMKT\n")
    assert [q.query_id for q in read_queries([src])] == ["q1"]


def test_openfold3_json(tmp_path):
    data = {"queries": {"cplx": {"chains": [
        {"molecule_type": "protein", "chain_ids": ["A", "B"], "sequence": "MKT"},
        {"molecule_type": "ligand", "chain_ids": "C", "ccd_codes": "ATP"},
    ]}}}
    (query,) = read_queries([write(tmp_path / "q.json", json.dumps(data))])
    assert query.chains[0].chain_ids == ("A", "B")
    assert query.chains[1].ccd_codes == ("ATP",)
    assert query.to_of3() == {"queries": {"cplx": {"chains": [
        {"molecule_type": "protein", "chain_ids": ["A", "B"], "sequence": "MKT"},
        {"molecule_type": "ligand", "chain_ids": ["C"], "ccd_codes": ["ATP"]},
    ]}}}


def test_alphafold3_json_single_and_list(tmp_path):
    job = {"name": "af3 job", "modelSeeds": [1], "dialect": "alphafold3", "version": 2, "sequences": [
        {"protein": {"id": ["A", "B"], "sequence": "MKTAY"}},
        {"ligand": {"id": "C", "smiles": "CCO"}},
        {"dna": {"id": "D", "sequence": "ACGT"}},
    ]}
    (query,) = read_queries([write(tmp_path / "one.json", json.dumps(job))])
    assert query.query_id == "af3_job"
    assert any("renamed to 'af3_job'" in n for n in query.notes)
    assert [c.molecule_type for c in query.chains] == ["protein", "ligand", "dna"]
    items = read_queries([write(tmp_path / "many.json", json.dumps([job, {**job, "name": "b"}]))])
    assert [i.query_id for i in items] == ["af3_job", "b"]


def test_af3_modifications_are_refused_not_dropped(tmp_path):
    job = {"name": "m", "sequences": [
        {"protein": {"id": "A", "sequence": "MKT", "modifications": [{"ptmType": "SEP", "ptmPosition": 1}]}}]}
    (item,) = read_queries([write(tmp_path / "m.json", json.dumps(job))])
    assert isinstance(item, Failure) and item.field == "modifications"


@pytest.mark.parametrize("raw, expected, renamed", [
    ("good_id-1.2", "good_id-1.2", False),
    ("../../etc/passwd", "etc_passwd", True),
    ("a b/c", "a_b_c", True),
    ("..", "", False),
])
def test_ids_never_escape_the_results_folder(raw, expected, renamed):
    safe, note = sanitise_id(raw)
    assert safe == expected
    assert (note is not None) == renamed
    assert "/" not in safe and not safe.startswith(".")


@pytest.mark.parametrize("row, field, words", [
    ("e,,protein,,", "sequence", "empty sequence"),
    ("l,MKTJZ,protein,,", "sequence", "not a protein residue letter"),
    ("r,ACGT,rna,,", "sequence", "not a rna residue letter"),
    ("s,MKT,protein,C1CC(,", "smiles", "RDKit cannot parse"),
    ("long," + "A" * 201 + ",protein,,", "sequence", "over the limit of 200"),
    ("t,MKT,sugar,,", "molecule_type", "unknown molecule type"),
    ("c,MKT,protein,,ZZZZZ", "ccd", "'ZZZZZ' is not in the Chemical Component Dictionary"),
    ("d,MKT,protein,,atp!", "ccd", "not a CCD code"),
])
def test_bad_queries_fail_with_field_and_reason(tmp_path, row, field, words):
    src = write(tmp_path / "s.csv", "id,sequence,molecule_type,smiles,ccd\n" + row + "\n")
    (item,) = read_queries([src])
    checked = validate(item, LIMITS) if isinstance(item, Query) else item
    assert isinstance(checked, Failure)
    assert checked.field == field
    assert words in checked.reason
    assert checked.query_id == row.split(",")[0]


def test_ccd_ligands_count_their_heavy_atoms(tmp_path):
    src = write(tmp_path / "s.csv", "id,sequence,ccd\nq,MKT,ATP\n")
    ingest(read_queries([src]), LIMITS, tmp_path / "r", tmp_path / "q.parquet", tmp_path / "f.parquet")
    assert pd.read_parquet(tmp_path / "q.parquet")["n_tokens"].tolist() == [3 + 31]


def test_token_limit_counts_ligand_heavy_atoms(tmp_path):
    src = write(tmp_path / "s.csv", "id,sequence,smiles\nq," + "A" * 195 + ",CC(=O)OC1=CC=CC=C1C(=O)O\n")
    (query,) = read_queries([src])
    assert validate(query, Limits(max_tokens=208, max_chain_length=500)) == query  # 195 + 13 atoms
    failure = validate(query, Limits(max_tokens=207, max_chain_length=500))
    assert isinstance(failure, Failure) and "208 tokens" in failure.reason
    assert "(ingest.max_tokens in the config)" in failure.reason  # the key that sets the limit


def test_every_change_to_a_sequence_is_noted(tmp_path):
    src = write(tmp_path / "s.csv", "id,sequence,molecule_type\nlow,mkTAyiak:ACGU,protein:rna\n"
                "spaced,MKT AYI,protein\nclean,MKTAYI,protein\n")
    out = tmp_path / "out"
    ingest(read_queries([src]), LIMITS, out / "queries", out / "q.parquet", out / "f.parquet")
    table = pd.read_parquet(out / "q.parquet").set_index("query_id")
    chains = json.loads(table.loc["low", "record"])
    assert [c["sequence"] for c in chains] == ["MKTAYIAK", "ACGU"]
    assert table.loc["low", "notes"] == "chain A: 6 lower-case residue letters upper-cased"
    assert table.loc["spaced", "notes"] == "chain A: whitespace removed from the sequence"
    assert table.loc["clean", "notes"] == ""


def test_ingest_writes_records_and_tables_and_keeps_going(tmp_path):
    src = write(tmp_path / "s.csv",
                "id,sequence,smiles\n"
                "ok1,MKTAYIAKQR,\n"
                "bad,MKXJ,\n"
                "ok1,MKT,\n"
                "lig,GSHM,CCO\n"
                "same,MKTAYIAKQR,\n")
    out = tmp_path / "out"
    accepted, rejected = ingest(read_queries([src]), LIMITS, out / "queries",
                                out / "q.parquet", out / "f.parquet")
    assert (accepted, rejected) == (3, 2)
    table = pd.read_parquet(out / "q.parquet")
    assert list(table["query_id"]) == ["ok1", "lig", "same"]
    assert list(table["n_tokens"]) == [10, 7, 10]
    # identical chains share one hash
    assert table.loc[0, "chain_hashes"] == table.loc[2, "chain_hashes"]
    failures = pd.read_parquet(out / "f.parquet")
    assert list(failures["query_id"]) == ["bad", "ok1"]
    assert "duplicate id 'ok1' (first defined at s.csv:2)" in failures.loc[1, "reason"]
    record = json.loads((out / "queries" / "lig.json").read_text())
    assert record["queries"]["lig"]["chains"][1] == {
        "molecule_type": "ligand", "chain_ids": ["B"], "smiles": "CCO"}
    assert sorted(p.name for p in (out / "queries").iterdir()) == ["lig.json", "ok1.json", "same.json"]


def test_records_are_valid_openfold3_query_sets(tmp_path):
    from openfold3.projects.of3_all_atom.config.inference_query_format import InferenceQuerySet

    src = write(tmp_path / "s.csv",
                "id,sequence,molecule_type,copies,smiles\nq,MKT:ACGU,protein:rna,2:1,CCO\n")
    ingest(read_queries([src]), LIMITS, tmp_path / "r", tmp_path / "q.parquet", tmp_path / "f.parquet")
    query_set = InferenceQuerySet.from_json(tmp_path / "r" / "q.json")
    chains = query_set.queries["q"].chains
    assert [c.chain_ids for c in chains] == [["A", "B"], ["C"], ["D"]]


@pytest.mark.parametrize("name, text, words", [
    ("missing.csv", None, "does not exist"),
    ("broken.json", "{not json", "not valid JSON"),
    ("noid.csv", "name,sequence\nx,MKT\n", "needs an 'id' column"),
    ("queries.xlsx", "", "unknown query file type"),
])
def test_unreadable_query_files_are_named(tmp_path, name, text, words):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=words) as error:
        read_queries([path])
    assert name in str(error.value)
