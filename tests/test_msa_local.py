"""Local search with the real MMseqs2 and jackhmmer binaries, alignment formats and species pairing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import needs
from msa_data import TinyDatabase, expandable_database, tiny_database

from foldscreen.msa.formats import match_columns, parse_a3m, read_alignment, stockholm_to_a3m
from foldscreen.msa.local import LocalSettings, mmseqs_database, search_unpaired
from foldscreen.msa.pairing import pair_by_species, species
from foldscreen.msa.results import NoAlignment

TOOLS = [pytest.param("mmseqs2", marks=needs("mmseqs")), pytest.param("jackhmmer", marks=needs("jackhmmer"))]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyDatabase:
    return tiny_database(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="module", params=TOOLS)
def searched(request, tiny, tmp_path_factory) -> tuple[str, dict[str, str | NoAlignment], Path]:
    """Every query (and one with no homologue) searched once per tool; the work folder."""
    settings = LocalSettings(request.param, (tiny.fasta,))
    lonely = "MKTAYIAKQRQISFVKSHFSRQ"
    workdir = tmp_path_factory.mktemp(request.param)
    alignments = search_unpaired(settings, [*tiny.queries, lonely, tiny.queries[0]], workdir)
    return request.param, alignments, workdir


def accession(header: str) -> str:
    return header.split("|")[1]


def test_search_finds_the_planted_homologues_and_no_decoy(searched, tiny):
    tool, alignments, _ = searched
    assert len(alignments) == len(tiny.queries) + 1  # the repeated query is searched once
    for index, query in enumerate(tiny.queries):
        rows = parse_a3m(alignments[query])
        assert rows[0] == ("query", query), tool
        planted = {h.name for h in tiny.homologues if h.query == index}
        assert {accession(header) for header, _ in rows[1:]} == planted, tool
        assert all(len(match_columns(sequence)) == len(query) for _, sequence in rows)
    assert parse_a3m(alignments["MKTAYIAKQRQISFVKSHFSRQ"]) == [("query", "MKTAYIAKQRQISFVKSHFSRQ")]


def test_search_keeps_deletions_and_insertions(searched, tiny):
    tool, alignments, _ = searched
    for homologue in tiny.homologues:
        rows = dict((accession(h), s) for h, s in parse_a3m(alignments[tiny.queries[homologue.query]])[1:])
        row = rows[homologue.name]
        # Deletions are '-' in the middle of the row (not only at the ends of a local hit).
        assert ("-" in match_columns(row).strip("-")) == homologue.deletion, (tool, homologue)
        # The four inserted residues are lower-case insertions (the aligner may shift them a little).
        assert len(re.findall("[a-z]", row)) == (4 if homologue.insertion else 0), (tool, homologue)
        assert "OX=" in [h for h, _ in parse_a3m(alignments[tiny.queries[homologue.query]])
                         if homologue.name in h][0]  # full headers, for species pairing


@pytest.mark.parametrize("tool", TOOLS)
def test_several_databases_are_merged_without_duplicate_rows(tool, tiny, tmp_path):
    extra = tmp_path / "extra.fasta"
    extra.write_text(tiny.fasta.read_text() + f">sp|X99999|EXTRA_RAT Extra homologue OX=10116\n"
                     f"{tiny.queries[0][:40]}\n")
    databases = (tiny.fasta, extra)
    if tool == "mmseqs2":  # a database made with `mmseqs createdb` is searched as it is
        subprocess.run(["mmseqs", "createdb", str(tiny.fasta), str(tmp_path / "own"), "-v", "1"], check=True)
        databases = (tmp_path / "own", extra)
    settings = LocalSettings(tool, databases, iterations=1, sensitivity=4)
    rows = parse_a3m(search_unpaired(settings, [tiny.queries[0]], tmp_path)[tiny.queries[0]])
    names = [accession(header) for header, _ in rows[1:]]
    assert sorted(names) == sorted({h.name for h in tiny.homologues if h.query == 0} | {"X99999"})
    assert rows[names.index("X99999") + 1][1] == tiny.queries[0][:40] + "-" * 30


@needs("mmseqs")
def test_mmseqs_expands_colabfold_style_databases(tiny, tmp_path):
    """Only cluster representatives are searched; their members come from `<db>_seq` / `<db>_aln`."""
    db = expandable_database(tiny, tmp_path / "expandable")
    assert len((tmp_path / "expandable" / "db.index").read_text().splitlines()) == 3 + tiny.decoys
    settings = LocalSettings("mmseqs2", (db,), iterations=2)
    alignments = search_unpaired(settings, tiny.queries, tmp_path / "work")
    for index, query in enumerate(tiny.queries):
        rows = parse_a3m(alignments[query])
        assert {accession(header) for header, _ in rows[1:]} == {h.name for h in tiny.homologues
                                                                 if h.query == index}
        assert all(len(match_columns(sequence)) == len(query) for _, sequence in rows)
    version = settings.database_version
    (tmp_path / "expandable" / "db_aln.index").touch()  # members realigned: a new version
    assert LocalSettings("mmseqs2", (db,), iterations=2).database_version != version


@needs("mmseqs")
def test_mmseqs_taxonomy_database_gives_species_to_plain_headers(tiny, tmp_path):
    """A database with `mmseqs createtaxdb` taxonomy: rows get `TaxID=` from it, for pairing."""
    dump = tmp_path / "taxdump"
    dump.mkdir()
    (dump / "nodes.dmp").write_text("1\t|\t1\t|\tno rank\t|\n9606\t|\t1\t|\tspecies\t|\n")
    (dump / "names.dmp").write_text("1\t|\troot\t|\t\t|\tscientific name\t|\n"
                                    "9606\t|\tHomo sapiens\t|\t\t|\tscientific name\t|\n")
    (dump / "merged.dmp").write_text("")
    (dump / "delnodes.dmp").write_text("")
    human = next(h for h in tiny.homologues if h.query == 0 and h.species == "HUMAN")
    (tmp_path / "plain.fasta").write_text(f">plain1 no species here\n{human.sequence}\n")
    (tmp_path / "mapping.tsv").write_text("plain1\t9606\n")
    for command in (["createdb", "plain.fasta", "plain"],
                    ["createtaxdb", "plain", "tmp", "--ncbi-tax-dump", "taxdump", "--tax-mapping-file",
                     "mapping.tsv"]):
        subprocess.run(["mmseqs", *command, "-v", "1"], cwd=tmp_path, check=True)
    settings = LocalSettings("mmseqs2", (tmp_path / "plain",), iterations=1, sensitivity=4)
    (_, (header, _)) = parse_a3m(search_unpaired(settings, [tiny.queries[0]], tmp_path)[tiny.queries[0]])
    assert header == "plain1 no species here TaxID=9606" and species(header) == "taxid:9606"


def test_mmseqs_converts_a_fasta_database_once(searched, tiny):
    tool, _, workdir = searched
    if tool != "mmseqs2":
        pytest.skip("jackhmmer reads FASTA files as they are")
    (converted,) = (p for p in (workdir / "databases").iterdir() if not p.name.startswith("."))
    stamp = (converted / "db").stat().st_mtime_ns
    assert mmseqs_database("mmseqs", tiny.fasta, workdir) == converted / "db"  # what the next search gets
    assert (converted / "db").stat().st_mtime_ns == stamp
    assert [p.name for p in workdir.iterdir()] == ["databases"]  # no search folder left behind
    # A conversion killed midway left its temporary folder: the next conversion removes it.
    shutil.rmtree(converted)
    stale = converted.parent / f".{converted.name}.killed.tmp"
    stale.mkdir()
    assert mmseqs_database("mmseqs", tiny.fasta, workdir) == converted / "db"
    assert (converted / "db.dbtype").is_file() and not stale.exists()


def test_database_version_follows_the_files_and_parameters(tiny, tmp_path):
    copy = tmp_path / "copy.fasta"
    copy.write_text(tiny.fasta.read_text())
    version = LocalSettings("jackhmmer", (copy,)).database_version
    assert LocalSettings("jackhmmer", (copy,)).database_version == version
    assert LocalSettings("jackhmmer", (copy,), evalue=1e-5).database_version != version
    assert LocalSettings("mmseqs2", (copy,)).database_version != version
    copy.write_text(tiny.fasta.read_text() + ">new\nMKT\n")
    changed = LocalSettings("jackhmmer", (copy,)).database_version
    assert changed != version
    Path(f"{copy}.version").write_text("2026_01\n")  # a version file the site keeps instead
    assert "copy.fasta version 2026_01" in LocalSettings("jackhmmer", (copy,)).database_version
    copy.write_text(tiny.fasta.read_text())
    assert "copy.fasta version 2026_01" in LocalSettings("jackhmmer", (copy,)).database_version


@needs("mmseqs", "jackhmmer")
def test_errors_become_failures_with_clear_reasons(tiny, tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.fasta"
    garbage.write_text("this is not a sequence file\n")
    result = search_unpaired(LocalSettings("jackhmmer", (garbage,)), ["MKTAYIAKQRQ"], tmp_path)
    assert isinstance(result["MKTAYIAKQRQ"], NoAlignment)
    assert "jackhmmer" in result["MKTAYIAKQRQ"].reason and "failed" in result["MKTAYIAKQRQ"].reason
    result = search_unpaired(LocalSettings("mmseqs2", (tmp_path / "absent",)), ["MKTAYIAKQRQ"], tmp_path)
    assert "neither an MMseqs2 database" in result["MKTAYIAKQRQ"].reason
    (tmp_path / "msa.sto").write_text(STOCKHOLM)  # a real MMseqs2 profile database, made from a Stockholm MSA
    for command in (["convertmsa", "msa.sto", "msa"], ["msa2profile", "msa", "profile"]):
        subprocess.run(["mmseqs", *command, "-v", "1"], cwd=tmp_path, check=True)
    result = search_unpaired(LocalSettings("mmseqs2", (tmp_path / "profile",)), ["MKTAYIAKQRQ"], tmp_path)
    assert "is an MMseqs2 profile database" in result["MKTAYIAKQRQ"].reason
    monkeypatch.setenv("PATH", str(tmp_path))
    for tool, package in [("mmseqs2", "mmseqs2"), ("jackhmmer", "hmmer")]:
        (failure,) = search_unpaired(LocalSettings(tool, (tiny.fasta,)), ["MKTAYIAKQRQ"], tmp_path).values()
        assert "not found on PATH" in failure.reason and f"Debian package `{package}`" in failure.reason
    with pytest.raises(ValueError, match="unknown local search tool"):
        LocalSettings("blast", (tiny.fasta,))


STOCKHOLM = """# STOCKHOLM 1.0
#=GS hit1/2-9 DE [subseq from] first hit OX=9606
#=GS hit2 DE second hit

query      MK-TA..Y
hit1/2-9   MKGTAcwY
#=GR hit1/2-9 PP **9*****
hit2	-K-TA..F
hit3       MKGTAcwY

query      IV
hit1/2-9   IL
hit2       --
hit3       IL
#=GC RF    xx.xx..xxxx
//
"""


def test_stockholm_becomes_a3m_on_the_query_columns():
    assert stockholm_to_a3m(STOCKHOLM) == (">query\nMKTAYIV\n>hit1/2-9 first hit OX=9606\nMKgTAcwYIL\n"
                                           ">hit2 second hit\n-KTAF--\n")  # hit3 repeats hit1
    assert parse_a3m(stockholm_to_a3m(STOCKHOLM, max_seqs=2))[1][0].startswith("hit1")
    assert len(parse_a3m(stockholm_to_a3m(STOCKHOLM, max_seqs=2))) == 2


def test_read_alignment_by_suffix(tmp_path):
    (tmp_path / "a.sto").write_text(STOCKHOLM)
    (tmp_path / "a.a3m").write_text(">query\nMKT\n")
    (tmp_path / "a.fasta").write_text(">query\nMKT\n")
    assert read_alignment(tmp_path / "a.sto").startswith(">query\nMKTAYIV\n")
    assert read_alignment(tmp_path / "a.a3m") == ">query\nMKT\n"
    with pytest.raises(ValueError, match="A3M"):
        read_alignment(tmp_path / "a.fasta")


@pytest.mark.parametrize("header, expected", [
    ("UniRef100_P69905 Hemoglobin subunit alpha n=1 Tax=Homo sapiens TaxID=9606 RepID=HBA_HUMAN",
     "taxid:9606"),
    ("sp|P69905|HBA_HUMAN Hemoglobin subunit alpha OS=Homo sapiens OX=9606 GN=HBA1", "taxid:9606"),
    ("tr|A0A0B4J2F0|A0A0B4J2F0_MOUSE/3-80 Uncharacterized", "mnemonic:MOUSE"),
    ("UniRef100_A0A2N5EEG3\t340\t0.992", None),
    ("query", None),
])
def test_species_from_headers(header, expected):
    assert species(header) == expected


def test_pairing_keeps_species_found_in_every_chain_best_hit_first():
    chain_a = (">query\nMKTAY\n>a1 OX=9606\nMKTAF\n>a2 OX=10090\nMK-AY\n>a3 OX=9606\nMKTAA\n"
               ">a4 no species\nMKTAW\n>a5 OX=7227\nMKTAH\n>sp|P1|A6_YEAST x\nMrKTAY\n")
    chain_b = ">query\nGSHM\n>b1 OX=10090\nGSHL\n>b2 OX=9606\nGAHM\n>b3 OX=559292\nGSHA\n>B4_YEAST\nGSaHM\n"
    paired_a, paired_b = pair_by_species([chain_a, chain_b])
    assert paired_a == ">query\nMKTAY\n>a1 OX=9606\nMKTAF\n>a2 OX=10090\nMK-AY\n>sp|P1|A6_YEAST x\nMrKTAY\n"
    assert paired_b == ">query\nGSHM\n>b2 OX=9606\nGAHM\n>b1 OX=10090\nGSHL\n>B4_YEAST\nGSaHM\n"
    assert pair_by_species([chain_a, ">query\nGSHM\n"]) == [">query\nMKTAY\n", ">query\nGSHM\n"]
    chain_c = ">query\nWWP\n>c1 TaxID=10090\nWWA\n>c2 OX=9606\nW-P\n"  # a third chain has no YEAST
    three = pair_by_species([chain_a, chain_b, chain_c])
    assert [len(parse_a3m(text)) for text in three] == [3, 3, 3]
    assert three[2] == ">query\nWWP\n>c2 OX=9606\nW-P\n>c1 TaxID=10090\nWWA\n"


# --- what OpenFold3's featurisation makes of the alignments ---------------------------------------


def decode(msa) -> list[str]:
    """Rows of OpenFold3's one-hot protein MSA feature as letters ('-' for gaps)."""
    from openfold3.core.data.resources.residues import PROTEIN_RESTYPE_1TO3, RESTYPE_INDEX_3

    letters = {RESTYPE_INDEX_3[three]: one for one, three in PROTEIN_RESTYPE_1TO3.items()}
    letters[RESTYPE_INDEX_3["GAP"]] = "-"
    return ["".join(letters[int(i)] for i in row) for row in msa.argmax(-1)[0]]


def featurise_chains(folder: Path, alignments: dict[str, tuple[str, str, str | None]]):
    """Featurise protein chains {id: (sequence, main A3M, paired A3M or None)} with OpenFold3."""
    from foldscreen.contracts import Chain
    from foldscreen.inference.featurise import featurise, silence_known_warnings

    silence_known_warnings()
    chains = []
    for chain_id, (sequence, main, paired) in alignments.items():
        entry = folder / f"entry_{chain_id}"  # OpenFold3 names a chain's alignments by their folder
        entry.mkdir()
        (entry / "colabfold_main.a3m").write_text(main)
        record = Chain("protein", (chain_id,), sequence=sequence).to_of3()
        record["main_msa_file_paths"] = [str(entry / "colabfold_main.a3m")]
        if paired is not None:
            (entry / "colabfold_paired.a3m").write_text(paired)
            record["paired_msa_file_paths"] = [str(entry / "colabfold_paired.a3m")]
        chains.append(record)
    return featurise({"queries": {"q": {"chains": chains}}}, "q", 1, folder)


def test_openfold3_featurises_the_searched_alignment(searched, tiny, tmp_path):
    tool, alignments, _ = searched
    query = tiny.queries[0]
    batch = featurise_chains(tmp_path, {"A": (query, alignments[query], None)})
    rows = decode(batch["msa"])
    expected = [match_columns(sequence) for _, sequence in parse_a3m(alignments[query])]
    # OpenFold3's query row, then the file: the query again and its three planted homologues.
    assert rows == [query, *expected] and len(expected) == 4, tool
    inserted = [h.name for h in tiny.homologues if h.query == 0 and h.insertion]
    row = [accession(h) for h, _ in parse_a3m(alignments[query])[1:]].index(inserted[0]) + 2
    assert batch["has_deletion"][0, row].sum() == 1  # the four inserted residues sit before one column


@needs("jackhmmer")
def test_openfold3_featurises_species_paired_alignments(tiny, tmp_path):
    first, second = tiny.queries[:2]
    alignments = search_unpaired(LocalSettings("jackhmmer", (tiny.fasta,)), [first, second], tmp_path)
    paired = pair_by_species([alignments[first], alignments[second]])
    assert [len(parse_a3m(text)) for text in paired] == [3, 3]  # query + HUMAN + MOUSE
    batch = featurise_chains(tmp_path, {"A": (first, alignments[first], paired[0]),
                                        "B": (second, alignments[second], paired[1])})
    rows = decode(batch["msa"])
    assert int(batch["num_paired_seqs"][0]) == 4  # the query, then the paired file's three rows
    for index in (1, 2):  # HUMAN and MOUSE rows: both chains' hits of one species side by side
        (_, row_a), (_, row_b) = parse_a3m(paired[0])[index], parse_a3m(paired[1])[index]
        assert rows[1 + index] == match_columns(row_a) + match_columns(row_b)
    assert species(parse_a3m(paired[0])[1][0]) == species(parse_a3m(paired[1])[1][0]) == "taxid:9606"
    # The species found in one chain only (DROME for A, YEAST for B) follow in the main block.
    only = [[match_columns(s) for h, s in parse_a3m(alignments[query]) if f"_{name} " in h.replace("/", " ")]
            for query, name in ((first, "DROME"), (second, "YEAST"))]
    assert rows[4:] == [only[0][0] + only[1][0]]
