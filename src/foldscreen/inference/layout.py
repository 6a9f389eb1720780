"""The token layout of a featurised task (contracts.layout), read from OpenFold3's atom array."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..contracts.layout import TokenLayout


def token_layout(batch: dict[str, Any]) -> TokenLayout:
    """The tokens OpenFold3 made of the task's query (batch size 1), in its order."""
    from openfold3.core.data.resources.residues import MoleculeType

    atoms = batch["atom_array"][0]
    token_id = np.asarray(atoms.token_id)
    starts = np.flatnonzero(np.r_[True, token_id[1:] != token_id[:-1]])
    n_tokens = int(batch["token_mask"].shape[-1])
    if not np.array_equal(token_id[starts], np.arange(n_tokens)):
        raise ValueError(f"the atom array's tokens are not the features' {n_tokens} tokens in order")
    return TokenLayout(
        chain_id=[str(c) for c in atoms.chain_id[starts]],
        residue_number=[int(r) for r in atoms.res_id[starts]],
        residue_name=[str(r) for r in atoms.res_name[starts]],
        molecule_type=[MoleculeType(int(m)).name.lower() for m in atoms.molecule_type_id[starts]],
        atomized=[bool(a) for a in atoms.is_atomized[starts]],
        atom_start=[int(s) for s in starts],
        atom_name=[str(a) for a in atoms.atom_name],
    )
