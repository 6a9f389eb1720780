"""The query record and its chains, and the failure row: what every stage reads and writes.

A `Query` is what ingestion makes of one source query; its chains travel to the later stages in
the `record` column of the ingest table (`chains_from_json`), and each becomes a chain entry of
the OpenFold3 query JSON (`to_of3`). A `Failure` is one row of a failures table. A query made by
a design (`queries.designs`) and its failure carry the design's factors (`FACTOR_COLUMNS` of
`tables`: design, bait, prey, ...), which become columns of the final tables.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

MOLECULE_TYPES = ("protein", "rna", "dna", "ligand")
POLYMER_TYPES = ("protein", "rna", "dna")

# Bracket atoms, two-letter organic-subset atoms, then one-letter ones (aromatic in lower case).
_SMILES_ATOM = re.compile(r"\[[^\]]*\]|Cl|Br|[BCNOPSFI]|[bcnops]")


@dataclass(frozen=True)
class Chain:
    """One chain entity of a query: a polymer sequence or a ligand, in one or more copies."""

    molecule_type: str
    chain_ids: tuple[str, ...]
    sequence: str | None = None
    smiles: str | None = None
    ccd_codes: tuple[str, ...] | None = None
    msa_path: str | None = None
    paired_msa_path: str | None = None

    @property
    def copies(self) -> int:
        return len(self.chain_ids)

    @property
    def entity(self) -> str:
        """The chemical identity of the chain: its sequence, SMILES or CCD codes."""
        if self.sequence is not None:
            return self.sequence
        if self.smiles is not None:
            return self.smiles
        return " ".join(self.ccd_codes or ())

    @property
    def hash(self) -> str:
        """Content hash of the chain entity; identical chains share it across queries."""
        return chain_hash(self.molecule_type, self.entity)

    def n_tokens(self, ligand_atoms: int | None = None) -> int:
        """Tokens for all copies: one per residue, one per ligand heavy atom."""
        if self.molecule_type in POLYMER_TYPES:
            per_copy = len(self.sequence or "")
        elif ligand_atoms is not None:
            per_copy = ligand_atoms
        elif self.smiles is not None:
            per_copy = estimate_smiles_atoms(self.smiles)
        else:
            per_copy = 30 * len(self.ccd_codes or ())  # a typical CCD ligand, for planning only
        return per_copy * self.copies

    def to_of3(self) -> dict:
        """The chain as an entry of an OpenFold3 query JSON."""
        out: dict = {"molecule_type": self.molecule_type, "chain_ids": list(self.chain_ids)}
        if self.sequence is not None:
            out["sequence"] = self.sequence
        if self.smiles is not None:
            out["smiles"] = self.smiles
        if self.ccd_codes is not None:
            out["ccd_codes"] = list(self.ccd_codes)
        return out


@dataclass(frozen=True)
class Query:
    """A query as read from a source: an id and its chains, not yet validated."""

    query_id: str
    chains: tuple[Chain, ...]
    source: str
    original_id: str
    notes: tuple[str, ...] = field(default=())
    factors: dict[str, Any] = field(default_factory=dict)  # a design's factors; empty otherwise

    @property
    def n_tokens(self) -> int:
        return sum(chain.n_tokens() for chain in self.chains)

    def to_of3(self) -> dict:
        """The query in OpenFold3's query-set JSON form."""
        return {"queries": {self.query_id: {"chains": [c.to_of3() for c in self.chains]}}}

    def digest(self) -> str:
        """Hash of everything that defines the query's prediction."""
        payload = json.dumps([self.query_id, [asdict(c) for c in self.chains]], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Failure:
    """Why a query (or one of its tasks) was rejected: the query, the field and the reason."""

    query_id: str
    source: str
    stage: str
    field: str
    reason: str
    factors: dict[str, Any] = field(default_factory=dict)  # of the design's query that failed


def chains_from_json(text: str) -> tuple[Chain, ...]:
    """The chains of an ingest-table `record` column."""
    chains = []
    for entry in json.loads(text):
        for key in ("chain_ids", "ccd_codes"):
            if entry.get(key) is not None:
                entry[key] = tuple(entry[key])
        chains.append(Chain(**entry))
    return tuple(chains)


def chain_hash(molecule_type: str, entity: str) -> str:
    """sha256 of the molecule type and the entity (sequence, SMILES or CCD codes)."""
    return hashlib.sha256(f"{molecule_type}:{entity}".encode()).hexdigest()


def estimate_smiles_atoms(smiles: str) -> int:
    """Heavy-atom count of a SMILES string without parsing it (for planning chunks)."""
    atoms = _SMILES_ATOM.findall(smiles)
    return max(1, sum(1 for a in atoms if not re.fullmatch(r"\[\d*H[^a-z\]]*\]", a)))
