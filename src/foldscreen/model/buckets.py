"""Size buckets: a task's features padded to one of a few sizes, its outputs cut back.

A compiled MLX graph is traced, and its GPU kernels built, once per input shape; padding the
tokens and atoms of every task to a small set of sizes lets one graph serve many queries. The
network already treats masked tokens and atoms as trailing padding (every softmax, mean and
normalisation is masked), so padding changes no answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mlx.core as mx

# The sizes themselves are plain arithmetic, shared with the plan (which must not import MLX).
from ..contracts.sizes import atom_bucket, token_bucket  # noqa: F401

# Axes (after the batch axis) that run over tokens or atoms, per feature of OpenFold3's batch.
TOKEN_AXES = {
    **dict.fromkeys(("token_index", "restype", "is_protein", "is_rna", "is_dna", "is_ligand",
                     "is_atomized", "token_mask", "num_atoms_per_token", "start_atom_index",
                     "residue_index", "asym_id", "entity_id", "sym_id", "cyclic_mask",
                     "deletion_mean", "profile"), (1,)),
    "token_bonds": (1, 2),
    **dict.fromkeys(("msa", "has_deletion", "deletion_value", "msa_mask",
                     "template_pseudo_beta_mask", "template_backbone_frame_mask",
                     "template_restype"), (2,)),
    **dict.fromkeys(("template_distogram", "template_unit_vector"), (2, 3)),
}
ATOM_AXES = dict.fromkeys(("atom_mask", "atom_to_token_index", "ref_pos", "ref_mask",
                           "ref_element", "ref_charge", "ref_atom_name_chars", "ref_space_uid"),
                          (1,))
# Outputs of the model and their token or atom axes, counted from the end.
OUTPUT_TOKEN_AXES = {"si_trunk": (-2,), "zij_trunk": (-3, -2), "pae_logits": (-3, -2),
                     "pde_logits": (-3, -2), "distogram_logits": (-3, -2)}
OUTPUT_ATOM_AXES = {"atom_positions_predicted": (-2,), "plddt_logits": (-2,),
                    "experimentally_resolved_logits": (-2,)}


def _pad(x: mx.array, axes: tuple[int, ...], size: int) -> mx.array:
    widths = [(0, 0)] * x.ndim
    for axis in axes:
        widths[axis] = (0, size - x.shape[axis])
    return mx.pad(x, widths)


def pad_batch(batch: dict[str, mx.array], n_token: int, n_atom: int) -> dict[str, mx.array]:
    """The batch ([1, ...]) with its tokens padded to `n_token` and atoms to `n_atom` (zeros)."""
    padded = {}
    for key, value in batch.items():
        if key in TOKEN_AXES:
            value = _pad(value, TOKEN_AXES[key], n_token)
        elif key in ATOM_AXES:
            value = _pad(value, ATOM_AXES[key], n_atom)
        padded[key] = value
    return padded


MSA_FEATURES = ("msa", "has_deletion", "deletion_value", "msa_mask")


def stack_batches(batches: Sequence[Mapping[str, mx.array]], size: tuple[int, int]
                  ) -> dict[str, mx.array]:
    """Tasks' batches ([1, ...] each) padded to `size` (tokens, atoms) and stacked on axis 0.

    Their MSAs are padded with empty rows to the deepest one (a masked row changes nothing).
    """
    padded = [pad_batch(dict(batch), *size) for batch in batches]
    if len(padded) == 1:
        return padded[0]
    depth = max(batch["msa_mask"].shape[1] for batch in padded)
    for batch in padded:
        for key in MSA_FEATURES:
            batch[key] = _pad(batch[key], (1,), depth)
    return {key: value if value.ndim == 0 else mx.concatenate([batch[key] for batch in padded])
            for key, value in padded[0].items()}


def crop_outputs(outputs: dict[str, mx.array], n_token: int, n_atom: int) -> dict[str, mx.array]:
    """The model's outputs cut back to the task's own `n_token` tokens and `n_atom` atoms."""
    cropped = {}
    for key, value in outputs.items():
        index = [slice(None)] * value.ndim
        for axis in OUTPUT_TOKEN_AXES.get(key, ()):
            index[axis] = slice(0, n_token)
        for axis in OUTPUT_ATOM_AXES.get(key, ()):
            index[axis] = slice(0, n_atom)
        cropped[key] = value[tuple(index)]
    return cropped
