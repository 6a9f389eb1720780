"""The MSA stage's first form: single-sequence and precomputed alignments in a shared cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from foldscreen.msa import build_msas, cache
from foldscreen.queries import Chain


def protein(sequence: str, ids=("A",), msa: Path | None = None) -> Chain:
    return Chain("protein", ids, sequence=sequence, msa_path=str(msa) if msa else None)


def test_single_sequence_entries_are_shared_and_reused(tmp_path):
    queries = [("q1", (protein("MKTAY"), Chain("ligand", ("B",), smiles="CCO"))),
               ("q2", (protein("GSHM"), protein("MKTAY", ("B",))))]
    table = build_msas(queries, "single_sequence", tmp_path)
    assert list(table["query_id"]) == ["q1", "q2", "q2"]  # ligands are not aligned
    assert (table["status"] == "ok").all()
    paths = dict(zip(zip(table["query_id"], table["chain_ids"]), table["path"]))
    assert paths[("q1", "A")] == paths[("q2", "B")]  # one entry per unique chain
    assert Path(paths[("q1", "A")]).read_text() == ">query\nMKTAY\n"
    assert Path(paths[("q1", "A")]).name == "colabfold_main.a3m"  # a name OpenFold3 reads
    entries = list(tmp_path.rglob("*.a3m"))
    assert len(entries) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in entries}
    build_msas(queries, "single_sequence", tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.a3m")} == mtimes


def test_rna_and_protein_with_the_same_letters_get_different_entries(tmp_path):
    table = build_msas([("p", (protein("ACGA"),)), ("r", (Chain("rna", ("A",), sequence="ACGA"),))],
                       "single_sequence", tmp_path)
    assert table["path"].nunique() == 2


def test_precomputed_a3m_is_copied_into_the_cache(tmp_path):
    a3m = tmp_path / "mine.a3m"
    a3m.write_text(">query\nMKTAY\n>hit1\nMK-AYgg\n")
    table = build_msas([("q", (protein("MKTAY", msa=a3m),))], "precomputed", tmp_path / "cache")
    (path,) = table["path"]
    assert table["source"][0] == "precomputed"
    assert Path(path).read_text() == a3m.read_text()
    assert Path(path).is_relative_to(tmp_path / "cache")


@pytest.mark.parametrize("text, suffix, words", [
    (">query\nMKTAA\n", ".a3m", "first sequence is not the chain's sequence"),
    (">query\nMKTAY\n", ".sto", "only A3M"),
])
def test_bad_precomputed_alignments_fail_per_chain(tmp_path, text, suffix, words):
    bad = tmp_path / f"bad{suffix}"
    bad.write_text(text)
    queries = [("bad", (protein("MKTAY", msa=bad),)), ("fine", (protein("GSHM"),))]
    table = build_msas(queries, "single_sequence", tmp_path / "cache")
    assert list(table["status"]) == ["failed", "ok"]
    assert words in table["reason"][0]
    assert not list((tmp_path / "cache").glob("precomputed/**/*.a3m"))  # nothing bad cached


def test_precomputed_mode_needs_a_file_for_every_chain(tmp_path):
    table = build_msas([("q", (protein("MKTAY"),))], "precomputed", tmp_path)
    assert table["status"][0] == "failed"
    assert "has no MSA file" in table["reason"][0]


def test_store_keeps_the_first_complete_entry_and_leaves_no_temporaries(tmp_path):
    key = cache.entry_key("protein", "MKT")
    first = cache.store(tmp_path, "src", key, ">a\nMKT\n")
    again = cache.store(tmp_path, "src", key, ">b\nMKT\n")
    assert first == again and first.read_text() == ">a\nMKT\n"
    assert [p.name for p in first.parent.parent.iterdir()] == [key]
    assert cache.lookup(tmp_path, "src", cache.entry_key("protein", "MKV")) is None
