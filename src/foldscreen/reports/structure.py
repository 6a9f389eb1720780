"""The tokens of a predicted structure, read from its mmCIF the way OpenFold3 tokenises.

A standard residue of a polymer is one token; every atom of a ligand or a non-standard residue
is a token of its own (AF3 SI 2.6). Atoms are in the file's order, which is the order of the
per-atom pLDDT in the confidences JSON, and the atoms of a token are consecutive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

AMINO_ACIDS = frozenset({"ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU",
                         "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "UNK"})
RNA = frozenset({"A", "C", "G", "U", "N"})
DNA = frozenset({"DA", "DC", "DG", "DT", "DN"})
_FIELDS = ["group_PDB", "label_atom_id", "label_comp_id", "label_asym_id", "auth_seq_id",
           "Cartn_x", "Cartn_y", "Cartn_z"]


@dataclass(frozen=True)
class Chain:
    chain_id: str
    molecule_type: str
    n_residues: int
    tokens: np.ndarray  # token indices
    atoms: slice


@dataclass(frozen=True)
class Tokens:
    chain_id: list[str]
    residue_number: list[int]
    residue_name: list[str]
    atom_name: list[str | None]  # the atom of a per-atom token, else None
    atom_start: np.ndarray  # first atom of each token
    positions: np.ndarray  # [n_tokens, 3] representative atoms
    chains: list[Chain]
    n_atoms: int

    def __len__(self) -> int:
        return len(self.chain_id)

    def token_plddt(self, atom_plddt: np.ndarray) -> np.ndarray:
        """Mean pLDDT over each token's atoms."""
        counts = np.diff(np.append(self.atom_start, self.n_atoms))
        return np.add.reduceat(atom_plddt, self.atom_start) / counts


def representative_atom(residue_name: str) -> str:
    """CB (CA for glycine) for amino acids, C1' for nucleotides."""
    if residue_name in AMINO_ACIDS:
        return "CA" if residue_name == "GLY" else "CB"
    return "C1'"


def molecule_type(residue_names: set[str], hetero: bool) -> str:
    if hetero:
        return "ligand"
    if residue_names & AMINO_ACIDS:
        return "protein"
    return "dna" if residue_names & DNA else "rna" if residue_names & RNA else "ligand"


def read_tokens(path: Path) -> Tokens:
    """Tokens, chains and representative positions of one mmCIF model."""
    table = gemmi.cif.read_file(str(path)).sole_block().find("_atom_site.", _FIELDS)
    group, comp, asym, seq = (list(table.column(i)) for i in (0, 2, 3, 4))
    atom = [gemmi.cif.as_string(v) for v in table.column(1)]  # names such as "C1'" come quoted
    xyz = np.column_stack([np.array(table.column(i), dtype=float) for i in (5, 6, 7)])
    tokens = _Builder(xyz)
    start = 0
    for end in range(1, len(atom) + 1):
        if end < len(atom) and (asym[end], seq[end], comp[end]) == (asym[start], seq[start], comp[start]):
            continue
        standard = group[start] == "ATOM" and comp[start] in AMINO_ACIDS | RNA | DNA
        tokens.add_residue(asym[start], int(seq[start]), comp[start], atom[start:end], start, standard,
                           hetero=group[start] == "HETATM")
        start = end
    return tokens.build(len(atom))


class _Builder:
    def __init__(self, xyz: np.ndarray) -> None:
        self.xyz = xyz
        self.chain_id: list[str] = []
        self.residue_number: list[int] = []
        self.residue_name: list[str] = []
        self.atom_name: list[str | None] = []
        self.atom_start: list[int] = []
        self.positions: list[int] = []
        self.chains: dict[str, dict] = {}

    def add_residue(self, chain: str, number: int, name: str, atoms: list[str], first: int,
                    standard: bool, hetero: bool) -> None:
        info = self.chains.setdefault(chain, {"names": set(), "hetero": True, "residues": 0,
                                              "atoms": 0, "first_atom": first})
        info["names"].add(name)
        info["hetero"] &= hetero
        info["residues"] += 1
        info["atoms"] += len(atoms)
        if standard:
            wanted = representative_atom(name)
            self._token(chain, number, name, None, first,
                        first + atoms.index(wanted) if wanted in atoms else first)
        else:
            for offset, atom in enumerate(atoms):
                self._token(chain, number, name, atom, first + offset, first + offset)

    def _token(self, chain: str, number: int, name: str, atom: str | None, start: int, rep: int) -> None:
        self.chain_id.append(chain)
        self.residue_number.append(number)
        self.residue_name.append(name)
        self.atom_name.append(atom)
        self.atom_start.append(start)
        self.positions.append(rep)

    def build(self, n_atoms: int) -> Tokens:
        chains, n_tokens = [], len(self.chain_id)
        for chain, info in self.chains.items():
            tokens = np.flatnonzero(np.array(self.chain_id) == chain) if n_tokens else np.zeros(0, int)
            kind = molecule_type(info["names"], info["hetero"])
            chains.append(Chain(chain, kind, info["atoms"] if kind == "ligand" else info["residues"],
                                tokens, slice(info["first_atom"], info["first_atom"] + info["atoms"])))
        return Tokens(self.chain_id, self.residue_number, self.residue_name, self.atom_name,
                      np.array(self.atom_start, dtype=np.int64), self.xyz[self.positions], chains, n_atoms)
