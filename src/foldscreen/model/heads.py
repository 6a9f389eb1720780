"""The confidence heads (AF3 Algorithm 31) and the distogram head: OpenFold3's auxiliary heads.

Inputs carry the sample axis as in OpenFold3's forward pass: the batch features and the trunk
outputs have it with size 1 (`[*, 1, ...]`), the predicted atom positions have all S samples
(`[*, S, N_atom, 3]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from openfold3.core.data.resources.residues import (
    STANDARD_PROTEIN_RESIDUES_ORDER,
    STANDARD_RESIDUES_WITH_GAP_3,
)
from openfold3.core.data.resources.token_atom_constants import atom_name_to_index_by_restype

from .pairformer import PairFormerStack
from .primitives import LayerNorm, Linear, chunked

Batch = Mapping[str, mx.array]

GLYCINE = STANDARD_PROTEIN_RESIDUES_ORDER["G"]
PURINES = {"dna": ("DA", "DG"), "rna": ("A", "G")}
PYRIMIDINES = {"dna": ("DC", "DT"), "rna": ("C", "U")}


def _is_restype(restype: mx.array, names: tuple[str, ...]) -> mx.array:
    return sum(restype[..., STANDARD_RESIDUES_WITH_GAP_3.index(name)] for name in names)


def _atom_offset(restype: mx.array, atom_name: str) -> mx.array:
    """[*, N_token]: the atom's index within each token's residue (-1 where it has none)."""
    table = mx.array(atom_name_to_index_by_restype[atom_name]["index"], dtype=mx.float32)
    return (restype.astype(mx.float32) @ table).astype(mx.int32)


def representative_atom_index(batch: Batch) -> mx.array:
    """[*, N_token]: the index of each token's representative atom, as OpenFold3 picks it.

    Cβ of standard amino acids (Cα of glycine), C4 of purines, C2 of pyrimidines, the only atom
    of atomized tokens (ligands, modified residues). A token that is none of these (unknown
    nucleotides, padding) gets atom 0 of the complex.
    """
    feature = {name: batch[name].astype(mx.int32) for name in
               ("is_atomized", "is_protein", "is_dna", "is_rna", "start_atom_index")}
    restype = batch["restype"].astype(mx.int32)
    atomized = feature["is_atomized"]
    protein = feature["is_protein"] * (1 - atomized)
    glycine = protein * restype[..., GLYCINE]
    dna, rna = feature["is_dna"] * (1 - atomized), feature["is_rna"] * (1 - atomized)
    purine = dna * _is_restype(restype, PURINES["dna"]) + rna * _is_restype(restype, PURINES["rna"])
    pyrimidine = (dna * _is_restype(restype, PYRIMIDINES["dna"])
                  + rna * _is_restype(restype, PYRIMIDINES["rna"]))
    start = feature["start_atom_index"]
    return ((start + _atom_offset(restype, "CB")) * protein * (1 - glycine)
            + (start + _atom_offset(restype, "CA")) * glycine
            + (start + _atom_offset(restype, "C4")) * purine
            + (start + _atom_offset(restype, "C2")) * pyrimidine
            + start * atomized)


def distance_one_hot(x_i: mx.array, x_j: mx.array, min_bin: float, max_bin: float,
                     no_bin: int, inf: float) -> mx.array:
    """One-hot of |x_i - x_j| in `no_bin` bins from min_bin to max_bin, the last open-ended.

    Compared squared, with strict bounds; distances below min_bin fall in no bin.
    """
    step = (max_bin - min_bin) / (no_bin - 1)
    lower = mx.array([min_bin + step * k for k in range(no_bin)], dtype=mx.float32) ** 2
    upper = mx.concatenate([lower[1:], mx.array([inf], dtype=mx.float32)])
    d = mx.sum((x_i - x_j) ** 2, axis=-1, keepdims=True)
    return ((d > lower) & (d < upper)).astype(x_i.dtype)


class AtomSlots:
    """Each atom's slot among its token's `max_atoms_per_token`, as the per-atom heads lay them.

    The slots of token t are t * max + k, k < num_atoms_per_token[t] for unmasked tokens. The
    used slots, in order, are the atoms; rows with fewer atoms than the longest are zero-padded.
    """

    def __init__(self, token_mask: mx.array, num_atoms_per_token: mx.array,
                 max_atoms_per_token: int) -> None:
        atoms = num_atoms_per_token.astype(mx.int32) * token_mask.astype(mx.int32)
        used = mx.arange(max_atoms_per_token) < atoms[..., None]  # [*, N_token, max]
        used = used.reshape(*used.shape[:-2], -1)
        n_slots = used.shape[-1]
        n_atoms = int(mx.max(mx.sum(used, axis=-1)).item())
        slot = mx.arange(n_slots)
        order = mx.sort(mx.where(used, slot, slot + n_slots), axis=-1)[..., :n_atoms]
        self.valid = (order < n_slots)[..., None]
        self.index = mx.where(self.valid[..., 0], order, 0)[..., None]  # [*, N_atom, 1]

    def select(self, x: mx.array) -> mx.array:
        """[*, N_token * max, C] -> [*, N_atom, C]"""
        return mx.where(self.valid, mx.take_along_axis(x, self.index, axis=-2), 0)


class PairformerEmbedding(nn.Module):
    """Trunk outputs and predicted distances through a PairFormer (AF3 Algorithm 31, lines 1-4).

    The PairFormer's output replaces s and z (OpenFold3 adds no residual around it).
    """

    def __init__(self, pairformer: Mapping[str, Any], c_s_input: int, c_z: int, min_bin: float,
                 max_bin: float, no_bin: int, inf: float) -> None:
        super().__init__()
        self.min_bin, self.max_bin, self.no_bin, self.inf = min_bin, max_bin, no_bin, inf
        self.linear_i = Linear(c_s_input, c_z, bias=False)
        self.linear_j = Linear(c_s_input, c_z, bias=False)
        self.linear_distance = Linear(no_bin, c_z, bias=False)
        self.pairformer_stack = PairFormerStack.from_config(pairformer)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PairformerEmbedding:
        names = ("pairformer", "c_s_input", "c_z", "min_bin", "max_bin", "no_bin", "inf")
        return cls(**{name: cfg[name] for name in names})

    def _embed_rows(self, z: mx.array, s_input_i: mx.array, x_i: mx.array,
                    s_input_j: mx.array, x_j: mx.array) -> mx.array:
        z = z + self.linear_i(s_input_i) + self.linear_j(s_input_j)
        one_hot = distance_one_hot(x_i, x_j, self.min_bin, self.max_bin, self.no_bin, self.inf)
        return z + self.linear_distance(one_hot)

    def __call__(self, s_input: mx.array, s: mx.array, z: mx.array, x: mx.array,
                 token_mask: mx.array, chunk_size: int | None = None
                 ) -> tuple[mx.array, mx.array]:
        """s_input [*, N, C_s_input], s [*, N, C_s], z [*, N, N, C_z] and token_mask [*, N] of
        the trunk, x [*, S, N, 3] representative atom positions -> s, z with S samples."""
        rows = [z, s_input[..., :, None, :], x[..., :, None, :]]
        z = chunked(self._embed_rows, rows, chunk_size, axis=-3,
                    broadcast=[s_input[..., None, :, :], x[..., None, :, :]])
        batch = z.shape[:-3]
        s = mx.broadcast_to(s, batch + s.shape[-2:])
        single_mask = mx.broadcast_to(token_mask, batch + token_mask.shape[-1:])
        pair_mask = single_mask[..., :, None] * single_mask[..., None, :]
        return self.pairformer_stack(s, z, single_mask, pair_mask, chunk_size)


class PairHead(nn.Module):
    """Binned pair logits: PAE and, symmetrised, PDE (AF3 Algorithm 31, lines 5-6).

    Without the layer norm, the distogram head (AF3 Section 4.4). Symmetrised logits are
    f(z_ij) + f(z_ji), the layer norm and linear map applied to each before the sum.
    """

    def __init__(self, c_z: int, c_out: int, symmetric: bool, layer_norm: bool = True) -> None:
        super().__init__()
        self.symmetric = symmetric
        if layer_norm:
            self.layer_norm = LayerNorm(c_z)
        self.linear = Linear(c_z, c_out, bias=False)

    def _logits(self, z: mx.array) -> mx.array:
        return self.linear(self.layer_norm(z) if "layer_norm" in self else z)

    def _symmetric_logits(self, z: mx.array, z_transposed: mx.array) -> mx.array:
        return self._logits(z) + self._logits(z_transposed)

    def __call__(self, z: mx.array, chunk_size: int | None = None) -> mx.array:
        """z: [*, N, N, C_z] -> [*, N, N, c_out], in chunks of rows."""
        if not self.symmetric:
            return chunked(self._logits, [z], chunk_size, axis=-3)
        return chunked(self._symmetric_logits, [z, mx.swapaxes(z, -2, -3)], chunk_size, axis=-3)


class PerAtomHead(nn.Module):
    """Per-atom logits from s_i, one linear map per atom slot of the token: pLDDT and
    experimentally resolved (AF3 Algorithm 31, lines 7-8)."""

    def __init__(self, c_s: int, c_out: int, max_atoms_per_token: int) -> None:
        super().__init__()
        self.c_out = c_out
        self.layer_norm = LayerNorm(c_s)
        self.linear = Linear(c_s, max_atoms_per_token * c_out, bias=False)

    def __call__(self, s: mx.array, slots: AtomSlots) -> mx.array:
        """s: [*, N_token, C_s] -> [*, N_atom, c_out]"""
        logits = self.linear(self.layer_norm(s))
        return slots.select(logits.reshape(*s.shape[:-2], -1, self.c_out))


class AuxiliaryHeadsAllAtom(nn.Module):
    """The distogram head and the confidence heads (AF3 Algorithm 1, lines 16-17; Algorithm 31).

    The samples go through the confidence PairFormer one at a time (OpenFold3 does so above
    `per_sample_token_cutoff` tokens): the same logits, with the memory of one sample.
    """

    def __init__(self, heads: Mapping[str, Any]) -> None:
        """`heads` is OpenFold3's `config.architecture.heads`."""
        super().__init__()
        self.max_atoms_per_token = heads["max_atoms_per_token"]
        self.pairformer_embedding = PairformerEmbedding.from_config(heads["pairformer_embedding"])
        self.pde = PairHead(heads["pde"]["c_z"], heads["pde"]["c_out"], symmetric=True)
        self.plddt = PerAtomHead(heads["lddt"]["c_s"], heads["lddt"]["c_out"],
                                 heads["lddt"]["max_atoms_per_token"])
        self.distogram = PairHead(heads["distogram"]["c_z"], heads["distogram"]["c_out"],
                                  symmetric=True, layer_norm=False)
        resolved = heads["experimentally_resolved"]
        self.experimentally_resolved = PerAtomHead(resolved["c_s"], resolved["c_out"],
                                                   resolved["max_atoms_per_token"])
        if heads["pae"]["enabled"]:
            self.pae = PairHead(heads["pae"]["c_z"], heads["pae"]["c_out"], symmetric=False)

    def _confidence(self, s_input: mx.array, s: mx.array, z: mx.array, x: mx.array,
                    token_mask: mx.array, slots: AtomSlots, chunk_size: int | None
                    ) -> dict[str, mx.array]:
        s, z = self.pairformer_embedding(s_input, s, z, x, token_mask, chunk_size)
        logits = {"plddt_logits": self.plddt(s, slots),
                  "experimentally_resolved_logits": self.experimentally_resolved(s, slots),
                  "pde_logits": self.pde(z, chunk_size)}
        if "pae" in self:
            logits["pae_logits"] = self.pae(z, chunk_size)
        mx.eval(logits)
        return logits

    def __call__(self, batch: Batch, s_input: mx.array, s: mx.array, z: mx.array,
                 atom_positions: mx.array, chunk_size: int | None = None) -> dict[str, mx.array]:
        """Logits under OpenFold3's output names.

        batch features [*, 1, ...]; s_input [*, 1, N_token, C_s_input], s [*, 1, N_token, C_s],
        z [*, 1, N_token, N_token, C_z] from the trunk; atom_positions [*, S, N_atom, 3].
        Returns plddt_logits [*, S, N_atom, 50], experimentally_resolved_logits
        [*, S, N_atom, 2], pde_logits and pae_logits [*, S, N_token, N_token, 64] and
        distogram_logits [*, 1, N_token, N_token, 64].
        """
        token_mask = batch["token_mask"].astype(mx.float32)
        index = representative_atom_index(batch)
        x = mx.take_along_axis(atom_positions, index[..., None], axis=-2)  # [*, S, N_token, 3]
        slots = AtomSlots(token_mask, batch["num_atoms_per_token"], self.max_atoms_per_token)
        groups = [x[..., i:i + 1, :, :] for i in range(x.shape[-3])]
        parts = [self._confidence(s_input, s, z, group, token_mask, slots, chunk_size)
                 for group in groups]
        outputs = {key: mx.concatenate([part[key] for part in parts],
                                       axis=-4 if key in ("pde_logits", "pae_logits") else -3)
                   for key in parts[0]}
        outputs["distogram_logits"] = self.distogram(z, chunk_size)
        return outputs
