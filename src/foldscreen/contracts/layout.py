"""The token layout of a predicted task: OpenFold3's tokens, as it featurised the query.

A standard residue is one token; every atom of a ligand or of an atomised residue is a token of
its own (AF3 SI 2.6). A token's atoms are consecutive, in the order of the structure file's
atoms and of the per-atom pLDDT. The inference stage writes the layout from the featurised
batch (TOKENS_FILE in the task folder); the reports stage reads it, so that nothing about the
tokens is guessed from the mmCIF (an unknown residue, X or N, is written there as HETATM but
is one token).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..io import atomic_write_json, read_json

TOKENS_FILE = "tokens.json"


@dataclass(frozen=True)
class TokenLayout:
    chain_id: list[str]  # per token
    residue_number: list[int]
    residue_name: list[str]
    molecule_type: list[str]  # protein, rna, dna or ligand
    atomized: list[bool]  # a token of one atom (ligands, atomised residues)
    atom_start: list[int]  # the token's first atom
    atom_name: list[str]  # per atom

    @property
    def n_tokens(self) -> int:
        return len(self.chain_id)

    @property
    def n_atoms(self) -> int:
        return len(self.atom_name)


def write_layout(path: Path, layout: TokenLayout) -> None:
    atomic_write_json(path, asdict(layout))


def read_layout(path: Path) -> TokenLayout:
    return TokenLayout(**read_json(path))
