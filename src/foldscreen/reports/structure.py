"""The tokens of a predicted sample: the task's token layout with the sample's coordinates.

The layout (`contracts.layout`, recorded by the inference stage from what OpenFold3
featurised) says which atoms make each token and what chain, residue and molecule type it
belongs to; the sample's mmCIF only gives the atoms' coordinates, in the same order. The
representative atom of a token (interface contacts, pDockQ2) is CB (CA for glycine) for an
amino acid, C1' for a nucleotide, the atom itself for an atomised token, and the first atom
of a token that has none of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from ..contracts.layout import TokenLayout, read_layout

_FIELDS = ["label_atom_id", "Cartn_x", "Cartn_y", "Cartn_z"]


@dataclass(frozen=True)
class ChainTokens:
    """One chain of a sample: its tokens and its (consecutive) atoms."""

    chain_id: str
    molecule_type: str
    n_residues: int  # residues of a polymer, atoms of a ligand
    tokens: np.ndarray  # token indices
    atoms: slice


@dataclass(frozen=True)
class Tokens:
    chain_id: list[str]
    residue_number: list[int]
    residue_name: list[str]
    atom_name: list[str | None]  # the atom of an atomised token, else None
    atom_start: np.ndarray  # first atom of each token
    positions: np.ndarray  # [n_tokens, 3] representative atoms
    chains: list[ChainTokens]
    n_atoms: int

    def __len__(self) -> int:
        return len(self.chain_id)

    def token_plddt(self, atom_plddt: np.ndarray) -> np.ndarray:
        """Mean pLDDT over each token's atoms."""
        counts = np.diff(np.append(self.atom_start, self.n_atoms))
        return np.add.reduceat(atom_plddt, self.atom_start) / counts


def read_tokens(layout_path: Path, model_path: Path) -> Tokens:
    """The tokens of the task's layout, placed where the sample's mmCIF puts their atoms."""
    layout = read_layout(layout_path)
    names, xyz = read_atoms(model_path)
    if names != layout.atom_name:
        raise ValueError(f"{model_path.name}: its {len(names)} atoms are not the {layout.n_atoms} atoms "
                         "of the task's token layout")
    starts = np.array(layout.atom_start, dtype=np.int64)
    ends = np.append(starts[1:], layout.n_atoms)
    representatives = [start + representative_offset(layout, token, names[start:end])
                       for token, (start, end) in enumerate(zip(starts, ends))]
    return Tokens(
        chain_id=layout.chain_id, residue_number=layout.residue_number,
        residue_name=layout.residue_name,
        atom_name=[names[start] if atomized else None for start, atomized in zip(starts, layout.atomized)],
        atom_start=starts, positions=xyz[representatives], chains=chain_tokens(layout, ends),
        n_atoms=layout.n_atoms)


def read_atoms(path: Path) -> tuple[list[str], np.ndarray]:
    """The atom names and coordinates of an mmCIF model, in the file's order."""
    table = gemmi.cif.read_file(str(path)).sole_block().find("_atom_site.", _FIELDS)
    names = [gemmi.cif.as_string(v) for v in table.column(0)]  # names such as "C1'" come quoted
    xyz = np.column_stack([np.array(table.column(i), dtype=float) for i in (1, 2, 3)])
    return names, xyz


def representative_offset(layout: TokenLayout, token: int, atoms: list[str]) -> int:
    """Which of the token's atoms stands for it (see the module's docstring)."""
    kind = layout.molecule_type[token]
    if layout.atomized[token] or kind == "ligand":
        return 0
    wanted = ("CA" if layout.residue_name[token] == "GLY" else "CB") if kind == "protein" else "C1'"
    return atoms.index(wanted) if wanted in atoms else 0


def chain_tokens(layout: TokenLayout, ends: np.ndarray) -> list[ChainTokens]:
    """The chains of the layout, in order of their first token."""
    chain_ids = np.array(layout.chain_id)
    chains = []
    for chain in dict.fromkeys(layout.chain_id):
        tokens = np.flatnonzero(chain_ids == chain)
        kind = layout.molecule_type[tokens[0]]
        first, last = layout.atom_start[tokens[0]], int(ends[tokens[-1]])
        residues = {layout.residue_number[t] for t in tokens}
        chains.append(ChainTokens(chain, kind, last - first if kind == "ligand" else len(residues),
                                  tokens, slice(first, last)))
    return chains
