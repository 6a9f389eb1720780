"""The MSA stage without a server: single-sequence, precomputed and local alignments, the cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import needs

from foldscreen.contracts import Chain
from foldscreen.msa import MsaSettings, build_msas, cache


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


def test_a_folder_of_precomputed_alignments_is_found_by_query_and_chain(tmp_path):
    folder = tmp_path / "msas"
    (folder / "dimer").mkdir(parents=True)
    (folder / "dimer" / "A.a3m").write_text(">query\nMKTAY\n>hitA\nMKSAY\n")
    (folder / "dimer_B.sto").write_text("# STOCKHOLM 1.0\nquery GSHM\nhitB  GSHL\n//\n")
    (folder / "homodimer.a3m").write_text(">query\nWWEE\n>hit\nWWED\n")
    (folder / "own.a3m").write_text(">query\nPPGG\n>ignored\nPPGA\n")
    own = tmp_path / "own_file.a3m"
    own.write_text(">query\nPPGG\n>mine\nPPGP\n")
    queries = [("dimer", (protein("MKTAY"), protein("GSHM", ("B",)))),
               ("homodimer", (protein("WWEE", ("A", "B")),)),
               ("own", (protein("PPGG", msa=own),)),
               ("absent", (protein("KKLL"),))]
    settings = MsaSettings(mode="single_sequence", cache=tmp_path / "cache", folder=folder)
    table = build_msas(queries, settings).set_index(["query_id", "chain_ids"])
    rows = {key: (Path(path).read_text().split("\n") + [""])[3] for key, path in table["path"].items()}
    assert rows == {("dimer", "A"): "MKSAY", ("dimer", "B"): "GSHL", ("homodimer", "A,B"): "WWED",
                    ("own", "A"): "PPGP", ("absent", "A"): ""}  # a chain's own file wins
    assert table.loc[("absent", "A"), "source"] == "single_sequence"
    assert table.loc[("dimer", "B"), "source"] == "precomputed"


@pytest.mark.parametrize("text, suffix, words", [
    (">query\nMKTAA\n", ".a3m", "first sequence is not the chain's sequence"),
    (">query\nMKTAY\n", ".txt", "alignments must be A3M (.a3m) or Stockholm"),
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
    assert cache.present(tmp_path, "src", [key, cache.entry_key("protein", "MKV")]) == {key}


STOCKHOLM = """# STOCKHOLM 1.0
#=GS hit1 DE Homologue OS=Mus musculus OX=10090
query  MKT-AY
hit1   MKTwA-
//
"""


def test_precomputed_stockholm_is_cached_as_a3m_and_own_paired_files_are_used(tmp_path):
    sto, paired = tmp_path / "mine.sto", tmp_path / "paired.a3m"
    sto.write_text(STOCKHOLM)
    paired.write_text(">query\nMKTAY\n>x OX=10090\nMKTAA\n")
    chain = Chain("protein", ("A",), sequence="MKTAY", msa_path=str(sto), paired_msa_path=str(paired))
    nobody = MsaSettings(mode="server", cache=tmp_path / "cache",
                         server={"url": "http://127.0.0.1:9", "retries": 0, "poll_seconds": 0.01})
    table = build_msas([("q", (chain, protein("GSHM", ("B",))))], nobody)
    row = table.iloc[0]
    assert row["status"] == "ok" and row["source"] == "precomputed"
    a3m = ">query\nMKTAY\n>hit1 Homologue OS=Mus musculus OX=10090\nMKTwA-\n"
    assert Path(row["path"]).read_text() == a3m
    assert Path(row["paired_path"]).read_text() == paired.read_text()
    assert Path(row["paired_path"]).name == "colabfold_paired.a3m"
    assert table.iloc[1]["status"] == "failed"  # no server listening: a reason, no crash
    assert table.iloc[1]["reason"].startswith("server: ")


def test_paired_entries_name_every_chain_folder_uniquely(tmp_path):
    one = cache.store_paired(tmp_path, "s", cache.paired_key(("AAA", "CCC")), [">q\nAAA\n", ">q\nCCC\n"])
    two = cache.store_paired(tmp_path, "s", cache.paired_key(("AAA", "DDD")), [">q\nAAA\n", ">q\nDDD\n"])
    folders = [p.parent.name for p in one + two]
    assert len(set(folders)) == 4  # OpenFold3 tells alignments apart by their folder's name
    assert [p.read_text() for p in one] == [">q\nAAA\n", ">q\nCCC\n"]
    assert cache.present(tmp_path, "s", [p.parent.parent.name for p in one + two] + ["ab" * 32]) == {
        p.parent.parent.name for p in one + two}


def _store_many(args):
    root, text = args
    return [cache.store(Path(root), "src", cache.entry_key("protein", "MKT"), text).read_text()
            for _ in range(50)]


def test_concurrent_writers_of_one_entry_leave_one_whole_entry(tmp_path):
    from multiprocessing import Pool

    texts = [f">writer{i}\nMKT\n" + "MKT\n" * 20000 for i in range(4)]
    with Pool(4) as pool:
        seen = pool.map(_store_many, [(str(tmp_path), t) for t in texts])
    (entry,) = [p for p in (tmp_path / "src").glob("*/*")]
    final = (entry / cache.MAIN_MSA_NAME).read_text()
    assert final in texts and all(read == final for reads in seen for read in reads)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporaries left


def test_fill_caches_only_what_was_fetched_whole(tmp_path):
    from foldscreen.msa.results import NoAlignment

    calls = []

    def fetch(todo, deliver):
        calls.append(sorted(todo))
        return {key: NoAlignment("server said ERROR") if value == "bad" else f">q\n{value}\n"
                for key, value in todo.items()}

    def save(key, text):
        cache.store(tmp_path, "src", key, text)

    wanted = {"aa" + "1" * 62: "good", "bb" + "2" * 62: "bad"}
    assert cache.fill(tmp_path, "src", wanted, fetch, save) == {"bb" + "2" * 62: "server said ERROR"}
    assert cache.fill(tmp_path, "src", wanted, fetch, save) == {"bb" + "2" * 62: "server said ERROR"}
    assert calls == [sorted(wanted), ["bb" + "2" * 62]]  # the good one is never fetched again
    assert cache.present(tmp_path, "src", wanted) == {"aa" + "1" * 62}


@needs("mmseqs")
def test_local_mode_searches_proteins_once_and_pairs_heteromers_by_species(tmp_path):
    from msa_data import tiny_database

    from foldscreen.msa.formats import parse_a3m

    tiny = tiny_database(tmp_path / "db")
    q0, q1, _ = tiny.queries
    settings = MsaSettings(mode="local", cache=tmp_path / "cache",
                           local={"tool": "mmseqs2", "databases": [str(tiny.fasta)], "threads": 1})
    queries = [("pair", (protein(q0), protein(q1, ("B",)), Chain("rna", ("C",), sequence="ACGU"))),
               ("mono", (protein(q0),))]
    table = build_msas(queries, settings)
    assert list(table["source"]) == ["local", "local", "single_sequence", "local"]
    assert (table["status"] == "ok").all()
    assert len(parse_a3m(Path(table["path"][0]).read_text())) == 4  # the query and 3 homologues
    paired = [parse_a3m(Path(p).read_text()) for p in table["paired_path"][:2]]
    # HUMAN and MOUSE hold homologues of both chains; DROME and YEAST of one only.
    assert [len(rows) for rows in paired] == [3, 3]
    assert [h.split("|")[1][:2] for h, _ in paired[0][1:]] == ["P0"] * 2
    assert pd.isna(table["paired_path"][2]) and pd.isna(table["paired_path"][3])
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.a3m")}
    build_msas(queries, settings)  # all cached: nothing searched or paired again
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.a3m")} == mtimes


def test_fill_waits_for_a_key_another_job_holds_and_does_not_fetch_it_again(tmp_path, monkeypatch):
    import os
    import threading

    monkeypatch.setattr(cache, "LOCK_GROUP", 2)  # lock files are held open in groups
    keys = [f"{i:02x}" * 32 for i in range(5)]
    fetched = []

    def fetch(todo, deliver):
        fetched.append(sorted(todo))
        return {key: f">q\n{key}\n" for key in todo}

    def save(key, text):
        cache.store(tmp_path, "src", key, text)

    other_job = cache._lock(tmp_path, "src", keys[4], wait=False)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (cache.fill(tmp_path, "src", dict.fromkeys(keys), fetch, save),
                                              done.set()))
    worker.start()
    assert not done.wait(1.0)  # waiting for the other job's key
    assert fetched == [keys[:2], keys[2:4]]
    save(keys[4], ">other\n")  # the other job stores it and lets go
    os.close(other_job)
    worker.join(10)
    assert done.is_set() and fetched == [keys[:2], keys[2:4]]  # not fetched a second time
    assert cache.present(tmp_path, "src", keys) == set(keys)
