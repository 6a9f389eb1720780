"""Readers for every query source: FASTA, CSV/TSV sample sheets, OpenFold3 and AlphaFold3 JSON.

Each reader yields one `Query` per query in the source, or a `Failure` for a query that cannot
be read. Readers only parse; `validate` checks the chemistry.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from ..contracts import MOLECULE_TYPES, POLYMER_TYPES, Chain, Failure, Query
from .ids import chain_letters, sanitise_id

Item = Query | Failure

SHEET_COLUMNS = ("id", "sequence", "molecule_type", "copies", "smiles", "ccd", "msa")


class ReadError(ValueError):
    """A query that cannot be read; carries the field at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def read_queries(sources: Iterable[Path]) -> list[Item]:
    """Read every source in order; a repeated query id becomes a failure (the first one wins)."""
    return unique_ids([item for path in sources for item in read_source(Path(path))])


def unique_ids(items: Iterable[Item]) -> list[Item]:
    """The items, a query whose id an earlier one has made a failure (the first one wins)."""
    seen: dict[str, str] = {}
    unique: list[Item] = []
    for item in items:
        if isinstance(item, Query):
            if item.query_id in seen:
                item = Failure(item.original_id, item.source, "ingest", "id",
                               f"duplicate id {item.query_id!r} (first defined at {seen[item.query_id]})",
                               item.factors)
            else:
                seen[item.query_id] = item.source
        unique.append(item)
    return unique


def read_source(path: Path) -> Iterator[Item]:
    """Read every query of one source file, choosing the reader by the file's extension."""
    if not path.is_file():
        raise ValueError(f"query file {path} does not exist (queries in the config)")
    suffix = path.suffix.lower()
    if suffix in (".fa", ".fasta", ".faa", ".fas"):
        yield from read_fasta(path)
    elif suffix in (".csv", ".tsv"):
        yield from read_sheet(path)
    elif suffix == ".json":
        yield from read_json(path)
    else:
        raise ValueError(f"{path}: unknown query file type {suffix!r} (use .fasta, .csv, .tsv or .json)")


def read_fasta(path: Path) -> Iterator[Item]:
    """ColabFold-style FASTA: one record per query, complex chains separated by ':'."""
    header: str | None = None
    lines: list[str] = []
    line_no = 0
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith(">"):
            if header is not None:
                yield _fasta_query(path, line_no, header, "".join(lines))
            header, lines, line_no = line[1:].strip(), [], n
        elif line.strip() and header is not None:
            lines.append(line.strip())
    if header is not None:
        yield _fasta_query(path, line_no, header, "".join(lines))


def _fasta_query(path: Path, line_no: int, header: str, sequence: str) -> Item:
    raw_id = header.split()[0] if header.split() else ""
    chains = [(seq, "protein", 1, None) for seq in sequence.split(":")]
    return _make_query(raw_id, f"{path.name}:{line_no}", chains, [])


def read_sheet(path: Path) -> Iterator[Item]:
    """A sample sheet: one row per query (columns in SHEET_COLUMNS; see the README)."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        columns = {c.strip().lower() for c in reader.fieldnames or ()}
        if "id" not in columns or not columns & {"sequence", "smiles", "ccd"}:
            raise ValueError(
                f"{path}: a sample sheet needs an 'id' column and at least one of "
                f"'sequence', 'smiles', 'ccd' (found {sorted(columns)})"
            )
        for n, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            yield _sheet_query(path, n, row)


def _sheet_query(path: Path, line_no: int, row: dict[str, str]) -> Item:
    source = f"{path.name}:{line_no}"
    try:
        polymers = _sheet_polymers(path.parent, row)
    except ReadError as err:
        return Failure(row.get("id", ""), source, "ingest", err.field, err.reason)
    ligands = [("smiles", s.strip()) for s in row.get("smiles", "").split(";") if s.strip()]
    ligands += [("ccd", c.strip()) for c in row.get("ccd", "").split(";") if c.strip()]
    if not polymers and not ligands:
        return Failure(row.get("id", ""), source, "ingest", "sequence", "empty sequence and no ligand")
    return _make_query(row.get("id", ""), source, polymers, ligands)


def _sheet_polymers(base: Path, row: dict[str, str]) -> list[tuple[str, str, int, str | None]]:
    if not row.get("sequence"):
        return []
    sequences = row["sequence"].split(":")
    n = len(sequences)
    types = _per_chain(row.get("molecule_type", ""), n, "molecule_type", "protein")
    copies_text = _per_chain(row.get("copies", ""), n, "copies", "1")
    msas = _per_chain(row.get("msa", ""), n, "msa", "")
    copies = []
    for text in copies_text:
        if not text.isdigit() or int(text) < 1:
            raise ReadError("copies", f"copies must be a whole number of at least 1, not {text!r}")
        copies.append(int(text))
    paths = [str((base / m).resolve()) if m else None for m in msas]
    return list(zip(sequences, [t.lower() for t in types], copies, paths, strict=True))


def _per_chain(text: str, n: int, field: str, default: str) -> list[str]:
    """A column holding one value for all chains, or one per chain separated by ':'."""
    values = [v.strip() for v in text.split(":")] if text else [default]
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ReadError(field, f"{field} lists {len(values)} values for {n} chains")
    return [v or default for v in values]


def read_json(path: Path) -> Iterator[Item]:
    """OpenFold3 query-set JSON ({"queries": {...}}) or AlphaFold3 input JSON (one job or a list)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if isinstance(data, dict) and "queries" in data:
        for name, query in data["queries"].items():
            yield _of3_query(path, name, query)
    else:
        jobs = data if isinstance(data, list) else [data]
        for n, job in enumerate(jobs):
            yield _af3_query(path, n, job)


def _of3_query(path: Path, name: str, query: dict) -> Item:
    source = f"{path.name}:{name}"
    chains: list[Chain] = []
    try:
        unknown = set(query) - {"chains", "query_name"}
        if unknown:
            raise ReadError(sorted(unknown)[0], f"query fields {sorted(unknown)} are not supported")
        for entry in query.get("chains", []):
            chains.append(_of3_chain(path.parent, entry))
    except ReadError as err:
        return Failure(name, source, "ingest", err.field, err.reason)
    return _finish(name, source, chains, [])


_OF3_CHAIN_FIELDS = {"molecule_type", "chain_ids", "sequence", "smiles", "ccd_codes",
                     "main_msa_file_paths", "paired_msa_file_paths", "description"}


def _of3_chain(base: Path, entry: dict) -> Chain:
    unknown = set(entry) - _OF3_CHAIN_FIELDS
    if unknown:
        raise ReadError(sorted(unknown)[0], f"chain fields {sorted(unknown)} are not supported")
    molecule_type = str(entry.get("molecule_type", "")).lower()
    chain_ids = entry.get("chain_ids") or []
    chain_ids = [chain_ids] if isinstance(chain_ids, str) else chain_ids
    if not chain_ids:
        raise ReadError("chain_ids", "every chain needs at least one chain id")
    ccd = entry.get("ccd_codes")
    return Chain(
        molecule_type=molecule_type,
        chain_ids=tuple(str(c) for c in chain_ids),
        sequence=entry.get("sequence"),
        smiles=entry.get("smiles"),
        ccd_codes=tuple([ccd] if isinstance(ccd, str) else ccd) if ccd else None,
        msa_path=_first_path(base, entry.get("main_msa_file_paths")),
        paired_msa_path=_first_path(base, entry.get("paired_msa_file_paths")),
    )


def _first_path(base: Path, value: str | list | None) -> str | None:
    if not value:
        return None
    first = value if isinstance(value, str) else value[0]
    return str((base / first).resolve())


_AF3_KINDS = {"protein", "rna", "dna", "ligand"}


def _af3_query(path: Path, n: int, job: dict) -> Item:
    name = str(job.get("name", "")) if isinstance(job, dict) else ""
    source = f"{path.name}:{name or n}"
    try:
        if not isinstance(job, dict) or "sequences" not in job:
            raise ReadError("sequences", "not an AlphaFold3 job: no 'sequences' list")
        chains = [_af3_chain(path.parent, entry) for entry in job["sequences"]]
    except ReadError as err:
        return Failure(name, source, "ingest", err.field, err.reason)
    return _finish(name, source, chains, [])


def _af3_chain(base: Path, entry: dict) -> Chain:
    kinds = set(entry) & _AF3_KINDS
    if len(kinds) != 1:
        raise ReadError("sequences", f"each entry needs one of {sorted(_AF3_KINDS)}, got {sorted(entry)}")
    kind = kinds.pop()
    body = entry[kind]
    for unsupported in ("modifications", "templates"):
        if body.get(unsupported):
            raise ReadError(unsupported, f"AlphaFold3 '{unsupported}' are not supported yet")
    ids = body.get("id") or []
    ids = [ids] if isinstance(ids, str) else list(ids)
    if not ids:
        raise ReadError("id", f"{kind} entry has no chain id")
    ccd = body.get("ccdCodes")
    return Chain(
        molecule_type=kind,
        chain_ids=tuple(ids),
        sequence=body.get("sequence"),
        smiles=body.get("smiles"),
        ccd_codes=tuple(ccd) if ccd else None,
        msa_path=_first_path(base, body.get("unpairedMsaPath")),
        paired_msa_path=_first_path(base, body.get("pairedMsaPath")),
    )


def _make_query(
    raw_id: str,
    source: str,
    polymers: list[tuple[str, str, int, str | None]],
    ligands: list[tuple[str, str]],
) -> Item:
    """Build a query from polymer (sequence, type, copies, msa) and ligand (kind, value) lists."""
    total = sum(copies for _, _, copies, _ in polymers) + len(ligands)
    letters = iter(chain_letters(total))
    chains = []
    for sequence, molecule_type, copies, msa in polymers:
        ids = tuple(next(letters) for _ in range(copies))
        chains.append(Chain(molecule_type, ids, sequence=sequence, msa_path=msa))
    for kind, value in ligands:
        ids = (next(letters),)
        if kind == "smiles":
            chains.append(Chain("ligand", ids, smiles=value))
        else:
            chains.append(Chain("ligand", ids, ccd_codes=(value,)))
    return _finish(raw_id, source, chains, [])


def _finish(raw_id: str, source: str, chains: list[Chain], notes: list[str]) -> Item:
    """Sanitise the id, normalise sequences and reject what cannot be a query at all; every
    change to the user's input is noted."""
    query_id, note = sanitise_id(raw_id)
    if not query_id:
        return Failure(raw_id, source, "ingest", "id", "the query has no usable id")
    if note:
        notes.append(note)
    if not chains:
        return Failure(raw_id, source, "ingest", "chains", "the query has no chains")
    normalised = []
    for chain in chains:
        if chain.molecule_type not in MOLECULE_TYPES:
            return Failure(raw_id, source, "ingest", "molecule_type",
                           f"unknown molecule type {chain.molecule_type!r} "
                           f"(use one of {', '.join(MOLECULE_TYPES)})")
        if chain.molecule_type in POLYMER_TYPES and chain.sequence is not None:
            chain, changes = _normalised_sequence(chain)
            notes += changes
        normalised.append(chain)
    return Query(query_id, tuple(normalised), source, raw_id, tuple(notes))


def _normalised_sequence(chain: Chain) -> tuple[Chain, list[str]]:
    """The chain with its sequence upper-cased and without whitespace, and a note per change."""
    given = chain.sequence or ""
    compact = "".join(given.split())
    label = f"chain {','.join(chain.chain_ids)}"
    notes = [f"{label}: whitespace removed from the sequence"] if compact != given else []
    lower = sum(letter.islower() for letter in compact)
    if lower:
        notes.append(f"{label}: {lower} lower-case residue letters upper-cased")
    return replace(chain, sequence=compact.upper()), notes
