"""Designs: screens as biologists write them, expanded into ordinary queries.

A design is one entry of the config's `designs:` list. Its members come from query files (any
source `readers.read_source` reads: FASTA, sample sheets, OpenFold3 or AlphaFold3 JSON; each
member a protein or a complex) and its kind says how they combine:

- `pulldown`: every bait x every prey (`bait_copies`, `prey_copies`), id `bait__prey`;
- `all_vs_all`: every unordered pair of `proteins` (`homodimers: true` adds a x a), id `a__b`;
- `oligomers`: each of `proteins` in 1..`max_copies` copies or in each of `copies`, id `p__x3`;
- `ligands`: every target x every ligand of the `library` (CSV/TSV with `id` and `smiles` or
  `ccd`; SDF, read with RDKit) and of `ccd`, id `target__ligand`;
- `mutants`: the wild type (`wt__wt`) and each of `mutations` (`A23G`, `K48R/K63R`, `B:A23G`) and
  every substitution of `scan` (`"20-25"`, `"B:20-25"`), id `wt__A23G`, `wt__K48R-K63R`, `wt__B.A23G`.

Each expanded query is an ordinary `Query` (chains lettered A, B, ... in member order, identical
entities merged into copies; a mutant keeps its wild type's chain ids) carrying its factors
(`FACTOR_COLUMNS`). An element that cannot be used (a member its reader rejected, a mutation
that does not fit the wild type, a library row without a ligand) becomes a `Failure` of that
query whose reason names the design and the element; the chemistry (residue letters, SMILES,
CCD codes) is checked at ingest as for any query (`validate`, with `describe`). A design that
cannot be expanded at all raises `DesignError`, naming `designs[<i>].<field>`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..contracts import Chain, Failure, Query
from .ids import chain_letters, sanitise_id
from .readers import Item, ReadError, read_source

# The fields of each kind of design (True: required), besides `name` and `kind`.
FIELDS: dict[str, dict[str, bool]] = {
    "pulldown": {"baits": True, "preys": True, "bait_copies": False, "prey_copies": False},
    "all_vs_all": {"proteins": True, "homodimers": False},
    "oligomers": {"proteins": True, "max_copies": False, "copies": False},
    "ligands": {"targets": True, "library": False, "ccd": False},
    "mutants": {"wild_type": True, "wild_type_id": False, "mutations": False, "scan": False},
}
FILE_FIELDS = ("baits", "preys", "proteins", "targets", "library", "wild_type")
WILD_TYPE = "wt"  # the `mutation` of a mutants design's wild type, and its id's suffix
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
_MUTATION = re.compile(r"^(?:(?P<chain>[A-Za-z0-9]+):)?(?P<wt>[A-Z])(?P<position>[1-9][0-9]*)(?P<new>[A-Z])$")
_SCAN = re.compile(r"^(?:(?P<chain>[A-Za-z0-9]+):)?(?P<start>[1-9][0-9]*)(?:-(?P<end>[1-9][0-9]*))?$")


class DesignError(ValueError):
    """A design that cannot be expanded; the message starts with `designs[<i>].<field>`."""


def design_files(designs: list[dict[str, Any]]) -> list[tuple[str, Path]]:
    """Every file the designs read, with the config key that names it."""
    return [(f"designs[{index}].{field}", Path(path))
            for index, design in enumerate(designs)
            for field in FILE_FIELDS if field in design for path in _as_list(design[field])]


def expand_designs(designs: list[dict[str, Any]]) -> list[Item]:
    """Every design's queries, in config order; raises DesignError for a design that cannot be made."""
    names: dict[str, int] = {}
    items: list[Item] = []
    for index, entry in enumerate(designs):
        design = Design(index, entry)
        if design.name in names:
            raise design.error("name", f"{design.name!r} is the name of designs[{names[design.name]}] too")
        names[design.name] = index
        items += EXPANDERS[design.kind](design)
    return items


def describe(factors: dict[str, Any]) -> str:
    """The design and element a query was made from, for a failure's reason ('' for others)."""
    if not factors:
        return ""
    kind = factors["design_kind"]
    if kind in ("pulldown", "all_vs_all"):
        element = f"bait {factors['bait']!r} x prey {factors['prey']!r}"
    elif kind == "oligomers":
        element = f"{factors['target']!r} x {factors['copies']}"
    elif kind == "ligands":
        element = f"target {factors['target']!r} x ligand {factors['ligand_id']!r}"
    else:
        element = f"wild type {factors['target']!r}, mutation {factors['mutation']!r}"
    return f"design {factors['design']!r} ({kind}), {element}: "


@dataclass(frozen=True)
class Member:
    """A protein or complex of a design, as its reader gave it (a Query, or a Failure)."""

    id: str
    item: Item
    field: str

    @property
    def label(self) -> str:
        return f"{self.field} {self.id!r}"


@dataclass(frozen=True)
class Ligand:
    """A ligand of a library, or why the library's entry cannot be one (`problem`)."""

    id: str
    source: str
    smiles: str | None = None
    ccd: str | None = None
    problem: str | None = None

    def chain(self) -> Chain:
        if self.smiles is not None:
            return Chain("ligand", ("L",), smiles=self.smiles)
        return Chain("ligand", ("L",), ccd_codes=(self.ccd or "",))


@dataclass(frozen=True)
class Mutation:
    chain: str | None
    wild_type: str
    position: int
    new: str


def mutation_text(mutations: Iterable[Mutation]) -> str:
    """`A23G`, `B:A23G`, `K48R/K63R`: the `mutation` factor."""
    return "/".join(f"{m.chain + ':' if m.chain else ''}{m.wild_type}{m.position}{m.new}" for m in mutations)


def mutation_id(text: str) -> str:
    """The id part of a mutation: `B:A23G/B:K48R` -> `B.A23G-B.K48R` (a safe file name)."""
    return text.replace(":", ".").replace("/", "-")


def parse_mutations(text: str) -> list[Mutation] | None:
    """`A23G`, `B:A23G` or several joined by `/`; None when `text` is not written so."""
    found = [_MUTATION.match(part.strip()) for part in text.split("/")]
    if not text.strip() or None in found:
        return None
    return [Mutation(m["chain"], m["wt"], int(m["position"]), m["new"]) for m in found if m]


class Design:
    """One entry of `designs:` with its index, checked field by field."""

    def __init__(self, index: int, entry: Any) -> None:
        self.index = index
        if not isinstance(entry, dict) or entry.get("kind") not in FIELDS or not entry.get("name"):
            raise DesignError(f"designs[{index}]: a design needs a name and a kind ({', '.join(FIELDS)})")
        self.entry = entry
        self.name = str(entry["name"])
        self.kind = str(entry["kind"])
        allowed = FIELDS[self.kind]
        unknown = sorted(set(entry) - {"name", "kind"} - set(allowed))
        if unknown:
            fields = ", ".join(allowed)
            raise self.error(unknown[0], f"not a field of a {self.kind} design (its fields: {fields})")
        missing = [field for field, required in allowed.items() if required and field not in entry]
        if missing:
            raise self.error(missing[0], f"a {self.kind} design needs {missing[0]}")
        self.factors: dict[str, Any] = {"design": self.name, "design_kind": self.kind}

    def error(self, field: str, reason: str) -> DesignError:
        return DesignError(f"designs[{self.index}].{field}: {reason}")

    def get(self, field: str, default: Any = None) -> Any:
        return self.entry.get(field, default)

    def paths(self, field: str) -> list[Path]:
        return [Path(p) for p in _as_list(self.entry.get(field, []))]

    def members(self, field: str) -> list[Member]:
        """The proteins or complexes of the field's files, in order."""
        members = []
        for path in self.paths(field):
            try:
                items = list(read_source(path))
            except (OSError, ValueError, UnicodeDecodeError) as err:
                raise self.error(field, str(err)) from None
            for n, item in enumerate(items, start=1):
                member_id = item.query_id if isinstance(item, Query) else sanitise_id(item.query_id)[0]
                members.append(Member(member_id or f"{path.stem}_{n}", item, field))
        if not members:
            raise self.error(field, f"{', '.join(map(str, self.paths(field)))} holds no queries")
        return members

    def combined(self, suffixes: list[str], parts: list[tuple[Member, int]], factors: dict[str, Any],
                 extra: tuple[Chain, ...] = (), extra_source: str = "") -> Item:
        """The query of `parts` (each member in its copies, then `extra` chains), id `a__b__...`."""
        query_id, notes = joined_id(suffixes)
        factors = {**self.factors, **factors}
        sources = [m.item.source for m, _ in parts] + ([extra_source] if extra else [])
        source = f"{self.name}: " + " x ".join(sources)
        for member, _ in parts:
            if isinstance(member.item, Failure):
                failed = member.item
                return Failure(query_id, source, "ingest", failed.field,
                               f"{describe(factors)}{member.label} ({failed.source}) cannot be read: "
                               f"{failed.reason}", factors)
            notes += member.item.notes
        chains = combine([(m.item.chains, copies) for m, copies in parts if isinstance(m.item, Query)]
                         + [(extra, 1)])
        return Query(query_id, chains, source, query_id, tuple(notes), factors)


def joined_id(parts: list[str]) -> tuple[str, list[str]]:
    """`a__b`, shortened (with a note) when over the length of a query id."""
    query_id, note = sanitise_id("__".join(parts))
    return query_id, [note] if note else []


def combine(parts: list[tuple[tuple[Chain, ...], int]]) -> tuple[Chain, ...]:
    """Chains of several members, each in `copies` copies, as one query: identical entities
    merged into one with their copies summed, chain ids lettered A, B, ... in order."""
    copies: dict[tuple, int] = {}  # (type, sequence, smiles, ccd codes, msa files) -> copies
    for chains, times in parts:
        for c in chains:
            entity = (c.molecule_type, c.sequence, c.smiles, c.ccd_codes, c.msa_path, c.paired_msa_path)
            copies[entity] = copies.get(entity, 0) + len(c.chain_ids) * times
    letters = iter(chain_letters(sum(copies.values())))
    return tuple(Chain(kind, tuple(next(letters) for _ in range(n)), *rest)
                 for (kind, *rest), n in copies.items())


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _count(design: Design, field: str) -> int:
    value = design.get(field, 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise design.error(field, f"a number of copies is a whole number of at least 1, not {value!r}")
    return value


def _side(member: Member, copies: int) -> str:
    return member.id if copies == 1 else f"{member.id}_x{copies}"


def pulldown(design: Design) -> list[Item]:
    """Every bait x every prey: `bait__prey` (`bait_x2__prey` with bait_copies: 2)."""
    bait_copies, prey_copies = _count(design, "bait_copies"), _count(design, "prey_copies")
    baits, preys = design.members("baits"), design.members("preys")
    return [design.combined([_side(bait, bait_copies), _side(prey, prey_copies)],
                            [(bait, bait_copies), (prey, prey_copies)],
                            {"bait": bait.id, "prey": prey.id, "bait_copies": bait_copies,
                             "prey_copies": prey_copies})
            for bait in baits for prey in preys]


def all_vs_all(design: Design) -> list[Item]:
    """Every unordered pair of the proteins, in list order: `a__b` (`a__a` with homodimers: true)."""
    homodimers = design.get("homodimers", False)
    if not isinstance(homodimers, bool):
        raise design.error("homodimers", f"true or false, not {homodimers!r}")
    members = design.members("proteins")
    return [design.combined([a.id, b.id], [(a, 1), (b, 1)], {"bait": a.id, "prey": b.id})
            for i, a in enumerate(members) for b in members[i + (0 if homodimers else 1):]]


def oligomers(design: Design) -> list[Item]:
    """Each protein in 1..max_copies copies, or in each number of `copies`: `protein__x3`."""
    if ("max_copies" in design.entry) == ("copies" in design.entry):
        raise design.error("max_copies", "give max_copies (1..k copies) or copies (a list): one of the two")
    counts = design.get("copies") or list(range(1, design.get("max_copies") + 1))
    if not isinstance(counts, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                               for n in counts):
        raise design.error("copies", f"a list of whole numbers of at least 1, not {counts!r}")
    return [design.combined([member.id, f"x{n}"], [(member, n)], {"target": member.id, "copies": n})
            for member in design.members("proteins") for n in sorted(set(counts))]


def ligands(design: Design) -> list[Item]:
    """Every target x every ligand of the library: `target__ligand`."""
    library = _library(design)
    out: list[Item] = []
    for target in design.members("targets"):
        for ligand in library:
            factors = {"target": target.id, "ligand_id": ligand.id}
            if ligand.problem:
                query_id, _ = joined_id([target.id, ligand.id])
                factors = {**design.factors, **factors}
                out.append(Failure(query_id, f"{design.name}: {ligand.source}", "ingest", "library",
                                   f"{describe(factors)}{ligand.problem}", factors))
                continue
            out.append(design.combined([target.id, ligand.id], [(target, 1)], factors,
                                       extra=(ligand.chain(),), extra_source=ligand.source))
    return out


def _library(design: Design) -> list[Ligand]:
    found: list[Ligand] = []
    for path in design.paths("library"):
        if not path.is_file():
            raise design.error("library", f"no such file {path}")
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            found += _library_sheet(design, path)
        elif suffix == ".sdf":
            found += _library_sdf(design, path)
        else:
            raise design.error("library", f"{path}: unknown library type {suffix!r} (use .csv, .tsv or .sdf)")
    codes = design.get("ccd", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise design.error("ccd", f"a list of CCD codes, not {codes!r}")
    found += [Ligand(*_ligand_id(code, f"ccd {code}"), ccd=code) for code in codes]
    if not found:
        raise design.error("library", "the design has no ligands (give a library file or ccd codes)")
    return found


def _ligand_id(raw: str, fallback: str) -> tuple[str, str]:
    ligand_id, _ = sanitise_id(raw)
    return ligand_id or sanitise_id(fallback)[0], fallback


def _library_sheet(design: Design, path: Path) -> Iterator[Ligand]:
    """A ligand library sheet: `id` and `smiles` or `ccd`, one ligand per row."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        columns = {c.strip().lower() for c in reader.fieldnames or ()}
        if "id" not in columns or not columns & {"smiles", "ccd"}:
            raise design.error("library", f"{path}: a ligand library needs an 'id' column and a 'smiles' "
                                          f"or 'ccd' column (found {sorted(columns)})")
        for n, raw in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            source = f"{path.name}:{n}"
            ligand_id, _ = sanitise_id(row.get("id", ""))
            given = [key for key in ("smiles", "ccd") if row.get(key)]
            problem = (None if ligand_id and len(given) == 1
                       else f"library row {source} has no id" if not ligand_id
                       else f"library row {source} has neither a SMILES string nor a CCD code" if not given
                       else f"library row {source} has both a SMILES string and a CCD code")
            yield Ligand(ligand_id or f"{path.stem}_{n}", source, row.get("smiles") or None,
                         row.get("ccd") or None, problem)


def _library_sdf(design: Design, path: Path) -> Iterator[Ligand]:
    """An SDF library: one ligand per record, its id the record's title line, read with RDKit
    (imported here only: reading the other sources needs no chemistry)."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise design.error("library", f"{path}: reading an SDF library needs RDKit") from None
    RDLogger.DisableLog("rdApp.*")
    records = re.split(r"^\$\$\$\$[^\n]*\n?", path.read_text(), flags=re.MULTILINE)
    for n, block in enumerate((r for r in records if r.strip()), start=1):
        source = f"{path.name}:record {n}"
        title = block.splitlines()[0].strip() if block.splitlines() else ""
        ligand_id, _ = sanitise_id(title)
        mol = Chem.MolFromMolBlock(block)
        ligand_id = ligand_id or f"{path.stem}_{n}"
        if mol is None:
            yield Ligand(ligand_id, source, problem=f"RDKit cannot read SDF record {n} of {path.name}")
        else:
            yield Ligand(ligand_id, source, smiles=Chem.MolToSmiles(mol))


def mutants(design: Design) -> list[Item]:
    """The wild type (`wt__wt`), each listed mutant and every substitution of the scan."""
    wild_type = _wild_type(design)
    query_id, notes = joined_id([wild_type.id, WILD_TYPE])
    factors = {**design.factors, "target": wild_type.id, "mutation": WILD_TYPE}
    query = wild_type.query
    out: list[Item] = [Query(query_id, query.chains, f"{design.name}: {query.source}", query_id,
                             (*query.notes, *notes), factors)]
    texts = design.get("mutations", [])
    if not isinstance(texts, list):
        raise design.error("mutations", f"a list of mutations such as A23G, not {texts!r}")
    for j, text in enumerate(texts):
        parsed = parse_mutations(str(text))
        if parsed is None:
            raise design.error(f"mutations[{j}]", f"{text!r} is not a mutation: write A23G (residue, "
                                                  "position, new residue), B:A23G on chain B, K48R/K63R")
        out.append(_mutant(design, wild_type, parsed))
    scans = design.get("scan", [])
    if not isinstance(scans, list):
        raise design.error("scan", f"a list of residue ranges such as \"20-25\", not {scans!r}")
    for j, spec in enumerate(scans):
        out += _scan(design, wild_type, j, str(spec))
    return out


@dataclass(frozen=True)
class WildType:
    id: str
    query: Query


def _wild_type(design: Design) -> WildType:
    members = design.members("wild_type")
    wanted = design.get("wild_type_id")
    if wanted is not None:
        chosen = [m for m in members if wanted in (m.id, m.item.query_id)]
        if not chosen:
            raise design.error("wild_type_id", f"no query {wanted!r} in the wild_type file (it holds "
                                               f"{', '.join(m.id for m in members[:10])})")
    elif len(members) != 1:
        listed = ", ".join(m.id for m in members[:10])
        raise design.error("wild_type", f"the file holds {len(members)} queries ({listed}): "
                                        "name one with wild_type_id")
    else:
        chosen = members
    member = chosen[0]
    if isinstance(member.item, Failure):
        raise design.error("wild_type", f"the wild type {member.id!r} cannot be read: "
                                        f"{member.item.field}: {member.item.reason}")
    return WildType(member.id, member.item)


def _mutant(design: Design, wild_type: WildType, mutations: list[Mutation]) -> Item:
    text = mutation_text(mutations)
    query_id, notes = joined_id([wild_type.id, mutation_id(text)])
    factors = {**design.factors, "target": wild_type.id, "mutation": text}
    source = f"{design.name}: {wild_type.query.source} {text}"
    try:
        chains = mutate(wild_type.query.chains, mutations)
    except ReadError as err:
        return Failure(query_id, source, "ingest", err.field, describe(factors) + err.reason, factors)
    return Query(query_id, chains, source, query_id, (*wild_type.query.notes, *notes), factors)


def _scan(design: Design, wild_type: WildType, j: int, spec: str) -> list[Item]:
    """Every other standard residue at each position of `spec` (`20-25`, `B:20-25`, `7`)."""
    match = _SCAN.match(spec.strip())
    if match is None or (match["end"] and int(match["end"]) < int(match["start"])):
        raise design.error(f"scan[{j}]", f"{spec!r} is not a residue range: write 20-25, 7, or B:20-25")
    start, end = int(match["start"]), int(match["end"] or match["start"])
    try:
        chain = _mutated_chain(wild_type.query.chains, match["chain"], spec)
    except ReadError as err:
        return [_scan_failure(design, wild_type, spec, err.reason)]
    sequence = chain.sequence or ""
    out: list[Item] = []
    for position in range(start, min(end, len(sequence)) + 1):
        residue = sequence[position - 1]
        out += [_mutant(design, wild_type, [Mutation(match["chain"], residue, position, new)])
                for new in AMINO_ACIDS if new != residue]
    if end > len(sequence):
        first = max(start, len(sequence) + 1)
        out.append(_scan_failure(design, wild_type, spec, f"positions {first}-{end} are past the end of "
                                 f"chain {chain.chain_ids[0]} ({len(sequence)} residues)"))
    return out


def _scan_failure(design: Design, wild_type: WildType, spec: str, reason: str) -> Failure:
    query_id, _ = joined_id([wild_type.id, f"scan_{spec}"])
    factors = {**design.factors, "target": wild_type.id, "mutation": f"scan {spec}"}
    return Failure(query_id, f"{design.name}: {wild_type.query.source}", "ingest", "scan",
                   f"{describe(factors)}{reason}", factors)


def _mutated_chain(chains: tuple[Chain, ...], selector: str | None, text: str) -> Chain:
    """The protein chain a mutation names (its only protein entity when it names none)."""
    proteins = [c for c in chains if c.molecule_type == "protein"]
    if selector is None:
        if len(proteins) != 1:
            ids = [cid for c in proteins for cid in c.chain_ids]
            example = f"{ids[0] if ids else 'A'}:{text}"
            raise ReadError("mutation", f"{text}: the wild type has protein chains "
                                        f"{', '.join(ids) or 'none'}; name one, as in {example}")
        return proteins[0]
    for chain in chains:
        if selector in chain.chain_ids:
            if chain.molecule_type != "protein":
                raise ReadError("mutation", f"{text}: chain {selector} is {chain.molecule_type}, not protein")
            return chain
    ids = [cid for c in chains for cid in c.chain_ids]
    raise ReadError("mutation", f"{text}: the wild type has no chain {selector} (chains {', '.join(ids)})")


def mutate(chains: tuple[Chain, ...], mutations: list[Mutation]) -> tuple[Chain, ...]:
    """The wild type's chains with the mutations made; raises ReadError (field `mutation`) for one
    that does not fit. A mutation without a chain changes every copy of the only protein entity;
    one naming a chain of several copies changes that copy alone."""
    seen: set[tuple[str | None, int]] = set()
    result = list(chains)
    for m in mutations:
        text = mutation_text([m])
        chain = _mutated_chain(tuple(result), m.chain, text)
        if (m.chain, m.position) in seen:
            raise ReadError("mutation", f"position {m.position} is mutated twice")
        seen.add((m.chain, m.position))
        sequence = chain.sequence or ""
        if m.position > len(sequence):
            raise ReadError("mutation", f"position {m.position} is past the end of chain "
                                        f"{chain.chain_ids[0]} ({len(sequence)} residues)")
        if sequence[m.position - 1] != m.wild_type:
            raise ReadError("mutation", f"residue {m.position} of chain {chain.chain_ids[0]} is "
                                        f"{sequence[m.position - 1]}, not {m.wild_type}")
        if m.new not in AMINO_ACIDS or m.new == m.wild_type:
            raise ReadError("mutation", f"{m.new} is not a standard residue other than {m.wild_type}")
        changed = sequence[:m.position - 1] + m.new + sequence[m.position:]
        index = result.index(chain)
        if m.chain is None or chain.copies == 1:
            result[index] = replace(chain, sequence=changed)
        else:
            rest = tuple(cid for cid in chain.chain_ids if cid != m.chain)
            result[index:index + 1] = [replace(chain, chain_ids=(m.chain,), sequence=changed),
                                       replace(chain, chain_ids=rest)]
    return tuple(result)


EXPANDERS: dict[str, Callable[[Design], list[Item]]] = {
    "pulldown": pulldown, "all_vs_all": all_vs_all, "oligomers": oligomers, "ligands": ligands,
    "mutants": mutants,
}
