"""A tiny protein database for local-search tests: queries, planted homologues and decoys."""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

AMINO = "ACDEFGHIKLMNPQRSTVWY"
SPECIES = {"HUMAN": ("Homo sapiens", 9606), "MOUSE": ("Mus musculus", 10090),
           "DROME": ("Drosophila melanogaster", 7227), "YEAST": ("Saccharomyces cerevisiae", 559292)}


@dataclass(frozen=True)
class Homologue:
    name: str          # the accession, unique in the database
    query: int         # which query it is planted for
    species: str       # UniProt mnemonic suffix
    sequence: str
    deletion: bool     # three query residues removed
    insertion: bool    # four residues inserted

    @property
    def header(self) -> str:
        organism, taxid = SPECIES[self.species]
        return (f"sp|{self.name}|Q{self.query}_{self.species} Planted homologue of query {self.query} "
                f"OS={organism} OX={taxid} GN=q{self.query} PE=1 SV=1")


def mutate(rng: random.Random, sequence: str, identity: float) -> str:
    return "".join(aa if rng.random() < identity else rng.choice(AMINO.replace(aa, ""))
                   for aa in sequence)


def make_queries(rng: random.Random, count: int = 3, length: int = 70) -> list[str]:
    return ["M" + "".join(rng.choice(AMINO) for _ in range(length - 1)) for _ in range(count)]


# (species, identity, deletion, insertion) planted for each query: query 0 and query 1 share
# HUMAN and MOUSE; DROME only has query 0 and YEAST only query 1.
PLAN = {0: [("HUMAN", 0.9, True, False), ("MOUSE", 0.8, False, True), ("DROME", 0.6, False, False)],
        1: [("HUMAN", 0.85, False, True), ("MOUSE", 0.7, True, False), ("YEAST", 0.55, False, False)],
        2: [("HUMAN", 0.75, False, False), ("MOUSE", 0.65, True, True)]}


def plant(rng: random.Random, queries: list[str]) -> list[Homologue]:
    homologues = []
    for index, query in enumerate(queries):
        for species, identity, deletion, insertion in PLAN[index]:
            sequence = mutate(rng, query, identity)
            if deletion:
                sequence = sequence[:30] + sequence[33:]
            if insertion:
                sequence = sequence[:50] + "WWHW" + sequence[50:]
            homologues.append(Homologue(f"P{index}{len(homologues):04d}", index, species, sequence,
                                        deletion, insertion))
    return homologues


@dataclass(frozen=True)
class TinyDatabase:
    fasta: Path
    queries: list[str]
    homologues: list[Homologue]
    decoys: int


def tiny_database(folder: Path, decoys: int = 200, seed: int = 7) -> TinyDatabase:
    """Write `<folder>/tiny.fasta`: planted homologues of three queries among random decoys."""
    rng = random.Random(seed)
    queries = make_queries(rng)
    homologues = plant(rng, queries)
    records = [(h.header, h.sequence) for h in homologues]
    for number in range(decoys):
        length = rng.randint(50, 120)
        records.append((f"tr|D{number:05d}|D{number:05d}_ECOLI Decoy OS=Escherichia coli OX=562",
                        "".join(rng.choice(AMINO) for _ in range(length))))
    rng.shuffle(records)
    folder.mkdir(parents=True, exist_ok=True)
    fasta = folder / "tiny.fasta"
    fasta.write_text("".join(f">{header}\n{sequence}\n" for header, sequence in records))
    return TinyDatabase(fasta, queries, homologues, decoys)


def expandable_database(tiny: TinyDatabase, folder: Path) -> Path:
    """A ColabFold-style expandable MMseqs2 database of the tiny database: `<db>` holds one
    representative per cluster (the HUMAN homologue of each query, each decoy alone), `<db>_seq`
    every member and `<db>_aln` the representatives' alignments to their members."""
    folder.mkdir(parents=True, exist_ok=True)

    def mmseqs(*args: str) -> None:
        subprocess.run(["mmseqs", *args, "-v", "1"], cwd=folder, check=True)

    mmseqs("createdb", str(tiny.fasta), "db_seq")
    keys = {}
    for line in (folder / "db_seq.lookup").read_text().splitlines():
        key, name, _ = line.split("\t")
        keys[name] = key
    clusters: dict[str, list[str]] = {name: [name] for name in keys if name.startswith("D")}
    for homologue in tiny.homologues:
        representative = next(h.name for h in tiny.homologues
                              if h.query == homologue.query and h.species == "HUMAN")
        clusters.setdefault(representative, [representative])
        if homologue.name != representative:
            clusters[representative].append(homologue.name)
    (folder / "clusters.tsv").write_text("".join(f"{keys[rep]}\t{keys[member]}\n"
                                                 for rep, members in clusters.items() for member in members))
    mmseqs("tsv2db", "clusters.tsv", "clusters", "--output-dbtype", "6")
    mmseqs("createsubdb", "clusters", "db_seq", "db")
    mmseqs("createsubdb", "clusters", "db_seq_h", "db_h")
    mmseqs("align", "db_seq", "db_seq", "clusters", "db_aln", "-a", "-e", "inf")
    return folder / "db"
