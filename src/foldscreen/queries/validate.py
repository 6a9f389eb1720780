"""Chemistry checks of a read query: residue letters, SMILES, CCD codes, lengths, MSA files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rdkit import Chem, RDLogger

from ..contracts import Chain, Failure, Query
from .designs import describe

RDLogger.DisableLog("rdApp.*")

# The one-letter codes OpenFold3 tokenises (X and N are its unknown residues).
ALPHABETS = {
    "protein": set("ACDEFGHIKLMNPQRSTVWYX"),
    "rna": set("ACGUN"),
    "dna": set("ACGTN"),
}
_CCD_CODE = re.compile(r"^[A-Z0-9]{1,5}$")


@dataclass(frozen=True)
class Limits:
    """Configured bounds on a query."""

    max_tokens: int
    max_chain_length: int


def validate(query: Query, limits: Limits) -> Query | Failure:
    """Return the query if it can be predicted, else a Failure naming the field and the reason."""
    design = describe(query.factors)  # the design and element of a designed query, else ""
    for chain in query.chains:
        problem = _check_chain(chain, limits)
        if problem:
            field, reason = problem
            label = f"chain {','.join(chain.chain_ids)}: " if len(query.chains) > 1 else ""
            return Failure(query.original_id, query.source, "ingest", field, design + label + reason,
                           query.factors)
    tokens = sum(chain.n_tokens(ligand_atoms(chain)) for chain in query.chains)
    if tokens > limits.max_tokens:
        return Failure(query.original_id, query.source, "ingest", "sequence",
                       f"{design}the query has {tokens} tokens, over the limit of {limits.max_tokens} "
                       "(ingest.max_tokens in the config)", query.factors)
    return query


def ligand_atoms(chain: Chain) -> int | None:
    """Heavy atoms of a ligand (its tokens), or None for polymers and unknown ligands."""
    if chain.smiles is not None:
        return smiles_heavy_atoms(chain.smiles)
    if chain.ccd_codes:
        counts = [ccd_heavy_atoms(code) for code in chain.ccd_codes]
        return None if None in counts else sum(c for c in counts if c is not None)
    return None


@lru_cache(maxsize=4096)
def smiles_heavy_atoms(smiles: str) -> int | None:
    """Heavy atoms of a SMILES string, parsed once; None if RDKit cannot parse it."""
    mol = Chem.MolFromSmiles(smiles)
    return mol.GetNumHeavyAtoms() if mol is not None else None


@lru_cache(maxsize=4096)
def ccd_heavy_atoms(code: str) -> int | None:
    """Heavy atoms of a Chemical Component Dictionary entry (biotite's copy), None if unknown."""
    import biotite.structure.info as ccd

    try:
        return int((ccd.residue(code).element != "H").sum())
    except KeyError:
        return None


def _check_chain(chain: Chain, limits: Limits) -> tuple[str, str] | None:
    if chain.molecule_type == "ligand":
        return _check_ligand(chain)
    if chain.smiles or chain.ccd_codes:
        return "molecule_type", f"a {chain.molecule_type} chain takes a sequence, not a ligand"
    sequence = chain.sequence or ""
    if not sequence:
        return "sequence", "empty sequence"
    bad = sorted(set(sequence) - ALPHABETS[chain.molecule_type])
    if bad:
        first = sequence.index(bad[0]) + 1
        return "sequence", (
            f"{''.join(bad)!r} not a {chain.molecule_type} residue letter "
            f"(first at position {first}; allowed: {''.join(sorted(ALPHABETS[chain.molecule_type]))})"
        )
    if len(sequence) > limits.max_chain_length:
        return "sequence", (
            f"sequence of {len(sequence)} residues is over the limit of {limits.max_chain_length} "
            "(ingest.max_chain_length in the config)"
        )
    for path in (chain.msa_path, chain.paired_msa_path):
        if path and not Path(path).is_file():
            return "msa", f"precomputed MSA file {path} does not exist"
    return None


def _check_ligand(chain: Chain) -> tuple[str, str] | None:
    if chain.sequence:
        return "molecule_type", "a ligand takes a SMILES string or CCD codes, not a sequence"
    if chain.smiles is not None:
        if not chain.smiles.strip():
            return "smiles", "empty SMILES string"
        if smiles_heavy_atoms(chain.smiles) is None:
            return "smiles", f"RDKit cannot parse the SMILES string {chain.smiles!r}"
        return None
    codes = chain.ccd_codes or ()
    if not codes:
        return "ccd", "a ligand needs a SMILES string or a CCD code"
    bad = [c for c in codes if not _CCD_CODE.match(c)]
    if bad:
        return "ccd", f"{bad[0]!r} is not a CCD code (1-5 capital letters or digits)"
    unknown = [c for c in codes if ccd_heavy_atoms(c) is None]
    if unknown:
        return "ccd", f"{unknown[0]!r} is not in the Chemical Component Dictionary"
    return None
