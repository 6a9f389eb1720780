"""Alignment formats: A3M rows, Stockholm to A3M, merging and reading alignment files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["format_a3m", "merge_a3m", "parse_a3m", "read_alignment", "stockholm_to_a3m"]

STOCKHOLM_SUFFIXES = (".sto", ".stockholm")
GAPS = "-."


def parse_a3m(text: str) -> list[tuple[str, str]]:
    """(header without '>', sequence) pairs of an A3M or FASTA text."""
    rows: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(">"):
            rows.append((line[1:], []))
        elif line and rows and not line.startswith("#"):
            rows[-1][1].append(line)
    return [(header, "".join(parts)) for header, parts in rows]


def format_a3m(rows: Iterable[tuple[str, str]]) -> str:
    return "".join(f">{header}\n{sequence}\n" for header, sequence in rows)


def match_columns(row: str) -> str:
    """An A3M row without its insertions: one letter or '-' per query residue."""
    return "".join(ch for ch in row if not ch.islower() and ch != ".")


def merge_a3m(alignments: Sequence[str], max_seqs: int | None = None) -> str:
    """One A3M of the same query: the first alignment's query row, then every other row once."""
    parsed = [parse_a3m(text) for text in alignments]
    query = parsed[0][0]
    rows, seen = [query], {query[1]}
    for alignment in parsed:
        for header, sequence in alignment[1:]:
            if sequence not in seen and (max_seqs is None or len(rows) < max_seqs):
                seen.add(sequence)
                rows.append((header, sequence))
    return format_a3m(rows)


def alignment_to_a3m(query: str, target: str) -> str:
    """One A3M row from a pairwise alignment of query and target (equal length, '-' for gaps)."""
    return "".join(t.lower() if q in GAPS else ("-" if t in GAPS else t.upper())
                   for q, t in zip(query, target) if not (q in GAPS and t in GAPS))


def parse_stockholm(text: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The aligned rows (name, sequence; blocks joined) of the first alignment, and each row's
    description from its `#=GS <name> DE` line."""
    sequences: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("//"):
            break
        if line.startswith("#=GS "):
            parts = line.split(maxsplit=3)
            if len(parts) == 4 and parts[2] == "DE":
                descriptions[parts[1]] = parts[3].removeprefix("[subseq from] ")
        elif line.strip() and not line.startswith("#"):
            name, *aligned = line.split(maxsplit=1)
            sequences.setdefault(name, []).append("".join(aligned).strip())
    return [(name, "".join(parts)) for name, parts in sequences.items()], descriptions


def stockholm_to_a3m(text: str, max_seqs: int | None = None) -> str:
    """A3M of a Stockholm alignment whose first row is the query: the query's residues are the
    match columns, other columns become lower-case insertions; rows deduplicated, query first."""
    rows, descriptions = parse_stockholm(text)
    if not rows:
        raise ValueError("the Stockholm alignment has no sequences")
    (query_name, query), *hits = rows
    a3m = [(query_name, "".join(ch.upper() for ch in query if ch not in GAPS))]
    for name, aligned in hits:
        header = f"{name} {descriptions[name]}" if name in descriptions else name
        a3m.append((header, alignment_to_a3m(query, aligned)))
    return merge_a3m([format_a3m(a3m)], max_seqs)


def read_alignment(path: Path) -> str:
    """A precomputed alignment file (A3M, or Stockholm by its suffix) as A3M text."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix != ".a3m" and suffix not in STOCKHOLM_SUFFIXES:
        raise ValueError(f"{path.name}: alignments must be A3M (.a3m) or Stockholm (.sto, .stockholm)")
    text = path.read_text()
    return stockholm_to_a3m(text) if suffix in STOCKHOLM_SUFFIXES else text
