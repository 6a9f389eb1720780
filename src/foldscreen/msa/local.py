"""Local alignment search with the real binaries: MMseqs2 (many queries at once) and jackhmmer.

Each search runs in its own temporary folder under the work folder. A FASTA database named for
MMseqs2 is turned into an MMseqs2 database once and kept in `<workdir>/databases/`; a ColabFold-style
expandable database (`<db>`, `<db>_seq`, `<db>_aln`) has its hits expanded to cluster members as
ColabFold does. Hits keep their full headers (species for pairing); an MMseqs2 database with
taxonomy (`mmseqs createtaxdb`) adds `TaxID=` to headers that lack one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..io import fresh_dir, hold_slot
from .formats import alignment_to_a3m, format_a3m, merge_a3m, stockholm_to_a3m
from .pairing import TAXID
from .results import NoAlignment

TOOLS = {"mmseqs2": "mmseqs", "jackhmmer": "jackhmmer"}
INSTALL = {"mmseqs": "the Debian package `mmseqs2` or the conda package `bioconda::mmseqs2`",
           "jackhmmer": "the Debian package `hmmer` or the conda package `bioconda::hmmer`"}
QUERY_HEADER = "query"
HIT_FIELDS = "query,target,theader,qstart,qend,qaln,taln"
PROFILE_DBTYPE = b"\x02"  # the first byte of an MMseqs2 `.dbtype` file of a profile database


class SearchError(RuntimeError):
    """A search tool is missing, a database is unusable or a search failed."""


@dataclass(frozen=True)
class LocalSettings:
    tool: str                      # "mmseqs2" | "jackhmmer"
    databases: tuple[Path, ...]    # mmseqs2: MMseqs2 databases or FASTA files; jackhmmer: FASTA files
    threads: int = 2
    sensitivity: float = 7.5       # mmseqs -s
    iterations: int = 3            # mmseqs --num-iterations / jackhmmer -N
    evalue: float = 1e-3
    max_seqs: int = 10000          # cap on rows per alignment

    def __post_init__(self) -> None:
        if self.tool not in TOOLS:
            raise ValueError(f"unknown local search tool {self.tool!r} (use one of {', '.join(TOOLS)})")
        if not self.databases:
            raise ValueError(f"local search with {self.tool} needs at least one database")
        object.__setattr__(self, "databases", tuple(Path(db) for db in self.databases))

    @property
    def database_version(self) -> str:
        """What defines the search's results, for cache keys: tool, parameters and databases."""
        parts = [f"{self.tool} s={self.sensitivity} iterations={self.iterations} "
                 f"e={self.evalue} max_seqs={self.max_seqs}"]
        return "; ".join(parts + [database_stamp(db) for db in self.databases])


def database_stamp(db: Path) -> str:
    """A database's version: the text of `<db>.version` if the user keeps one, else its path and
    the size and modification time of its files (a FASTA file, or an MMseqs2 database's indexes)."""
    version = Path(f"{db}.version")
    if version.is_file():
        return f"{db.name} version {version.read_text().strip()}"
    parts = ("", "_seq", "_aln") if expandable(db) else ("",)
    is_mmseqs = Path(f"{db}.dbtype").is_file()
    files = [Path(f"{db}{p}.{end}") for p in parts for end in ("dbtype", "index")] if is_mmseqs else [db]
    stats = [f"{f.stat().st_size}:{f.stat().st_mtime_ns}" if f.is_file() else "missing" for f in files]
    return f"{db.resolve()} {','.join(stats)}"


def search_unpaired(settings: LocalSettings, sequences: Sequence[str],
                    workdir: Path) -> dict[str, str | NoAlignment]:
    """Unique protein sequences -> A3M text (query first, deletions '-', insertions lower case)
    or a NoAlignment(reason)."""
    unique = list(dict.fromkeys(sequences))
    if not unique:
        return {}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        binary = find_binary(TOOLS[settings.tool])
        if settings.tool == "mmseqs2":
            return mmseqs_search(binary, settings, unique, workdir)
        return {sequence: jackhmmer_search(binary, settings, sequence, workdir) for sequence in unique}
    except SearchError as err:
        return dict.fromkeys(unique, NoAlignment(str(err)))


def find_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SearchError(f"`{name}` was not found on PATH: install {INSTALL[name]}")
    return path


def run_tool(command: list[str], cwd: Path) -> None:
    """Run one tool command; a failure becomes a SearchError with the end of its output."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr + result.stdout).strip().splitlines()[-8:])
        tool = Path(command[0]).name + ("" if command[1].startswith("-") else f" {command[1]}")
        raise SearchError(f"{tool} failed (exit {result.returncode}): {tail}")


# --- MMseqs2 -------------------------------------------------------------------------------------


def mmseqs_search(binary: str, settings: LocalSettings, unique: list[str], workdir: Path) -> dict[str, str]:
    """Every query against every database in one run per database; hits merged per query."""
    databases = [mmseqs_database(binary, db, workdir) for db in settings.databases]
    with tempfile.TemporaryDirectory(dir=workdir, prefix="mmseqs.") as tmp:
        run = Path(tmp)
        (run / "queries.fasta").write_text("".join(f">{i}\n{s}\n" for i, s in enumerate(unique)))
        run_tool([binary, "createdb", "queries.fasta", "qdb", "-v", "1"], run)
        per_database = [mmseqs_hits(binary, settings, db, run, number, unique)
                        for number, db in enumerate(databases)]
    return {sequence: merge_a3m([format_a3m([(QUERY_HEADER, sequence), *hits[index]])
                                 for hits in per_database], settings.max_seqs)
            for index, sequence in enumerate(unique)}


def mmseqs_database(binary: str, db: Path, workdir: Path) -> Path:
    """An MMseqs2 database path: `db` itself, or the cached conversion of a FASTA file."""
    dbtype = Path(f"{db}.dbtype")
    if dbtype.is_file():
        if dbtype.read_bytes()[:1] == PROFILE_DBTYPE and not expandable(db):
            raise SearchError(f"{db} is an MMseqs2 profile database without member sequences ({db.name}_seq "
                              f"and {db.name}_aln, as in ColabFold's databases): local mode searches "
                              "sequence databases")
        return db
    if not db.is_file():
        raise SearchError(f"database {db} is neither an MMseqs2 database ({db}.dbtype) nor a FASTA file")
    key = hashlib.sha256(f"{db.resolve()} {database_stamp(db)}".encode()).hexdigest()[:24]
    final = workdir / "databases" / key
    # One job converts while the others wait for it; a folder left by a killed job is removed.
    with hold_slot(workdir / "databases" / f".{key}.lock", 1, lambda: 2.0):
        if not (final / "db.dbtype").is_file():
            for stale in final.parent.glob(f".{key}.*.tmp"):
                shutil.rmtree(stale)
            tmp = fresh_dir(final.parent, f".{key}.")
            try:
                run_tool([binary, "createdb", str(db.resolve()), "db", "-v", "1"], tmp)
                os.rename(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return final / "db"


def expandable(db: Path) -> bool:
    """Whether `db` is a ColabFold-style expandable database: cluster representatives searched,
    their members in `<db>_seq` and the member alignments in `<db>_aln`."""
    return all(Path(f"{db}{part}.dbtype").is_file() for part in ("_seq", "_aln"))


def mmseqs_hits(binary: str, settings: LocalSettings, db: Path, run: Path, number: int,
                unique: list[str]) -> list[list[tuple[str, str]]]:
    """A3M rows (full target header, aligned row) of each query's hits in one database, best first."""
    res, tmp, hits = f"res{number}", f"tmp{number}", run / f"hits{number}.tsv"
    common = ["--threads", str(settings.threads), "-v", "1"]
    run_tool([binary, "search", "qdb", str(db.resolve()), res, tmp, "-a",
              "-s", str(settings.sensitivity), "--num-iterations", str(settings.iterations),
              "-e", str(settings.evalue), "--e-profile", str(settings.evalue),  # no drift into decoys
              "--max-seqs", str(settings.max_seqs), *common], run)
    if expandable(db):  # as ColabFold does: hits expanded to cluster members, realigned to the query
        members = Path(f"{db.resolve()}_seq")
        profile = run / tmp / "latest" / f"profile_{settings.iterations - 2}"
        aligned = str(profile) if settings.iterations > 1 and Path(f"{profile}.dbtype").is_file() else "qdb"
        run_tool([binary, "expandaln", "qdb", str(members), res, f"{db.resolve()}_aln", f"{res}_exp",
                  "--expansion-mode", "0", "-e", "inf", "--expand-filter-clusters", "1",
                  "--max-seq-id", "0.95", *common], run)
        run_tool([binary, "align", aligned, str(members), f"{res}_exp", f"{res}_realigned", "-a",
                  "-e", str(settings.evalue), *common], run)
        db, res = members, f"{res}_realigned"
    taxonomy = Path(f"{db}_mapping").is_file()  # made by `mmseqs createtaxdb`
    columns = HIT_FIELDS + (",taxid" if taxonomy else "")
    run_tool([binary, "convertalis", "qdb", str(db.resolve()), res, hits.name,
              "--format-output", columns, *common], run)
    rows: list[list[tuple[str, str]]] = [[] for _ in unique]
    for line in hits.read_text().splitlines():
        fields = line.split("\t")
        taxid = fields.pop() if taxonomy else "0"
        query, header, (qstart, qend, qaln, taln) = fields[0], "\t".join(fields[2:-4]), fields[-4:]
        if taxid != "0" and not TAXID.search(header):
            header = f"{header} TaxID={taxid}"
        length = len(unique[int(query)])
        rows[int(query)].append((header, a3m_row(int(qstart), int(qend), qaln, taln, length)))
    return rows


def a3m_row(qstart: int, qend: int, qaln: str, taln: str, length: int) -> str:
    """A hit's A3M row over the whole query, from its local alignment (1-based query range)."""
    return "-" * (qstart - 1) + alignment_to_a3m(qaln, taln) + "-" * (length - qend)


# --- jackhmmer -----------------------------------------------------------------------------------


def jackhmmer_search(binary: str, settings: LocalSettings, sequence: str, workdir: Path) -> str | NoAlignment:
    """One query against every FASTA database; Stockholm results converted and merged."""
    try:
        return merge_a3m(jackhmmer_alignments(binary, settings, sequence, workdir), settings.max_seqs)
    except SearchError as err:
        return NoAlignment(str(err))


def jackhmmer_alignments(binary: str, settings: LocalSettings, sequence: str, workdir: Path) -> list[str]:
    with tempfile.TemporaryDirectory(dir=workdir, prefix="jackhmmer.") as tmp:
        run = Path(tmp)
        (run / "query.fasta").write_text(f">{QUERY_HEADER}\n{sequence}\n")
        alignments = []
        for number, db in enumerate(settings.databases):
            if not db.is_file():
                raise SearchError(f"database {db} is not a FASTA file (jackhmmer searches FASTA files)")
            out = run / f"hits{number}.sto"
            run_tool([binary, "-N", str(settings.iterations), "-E", str(settings.evalue),
                      "--incE", str(settings.evalue), "--cpu", str(settings.threads),
                      "-A", out.name, "-o", os.devnull, "--noali", "query.fasta", str(db.resolve())], run)
            alignments.append(stockholm_to_a3m(out.read_text(), settings.max_seqs)
                              if out.is_file() else f">{QUERY_HEADER}\n{sequence}\n")
    return alignments
