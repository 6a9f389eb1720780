"""The trunk's input embedder: atom attention, per-token features and relative positions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .atom_attention import AtomAttentionEncoder, Batch
from .primitives import Linear, chunked

# Per-token integer features the relative position encoding compares, in this order; two
# derived columns follow them in token_positions.
POSITIONS = ("residue_index", "token_index", "asym_id", "entity_id", "sym_id")
RESIDUE, TOKEN, CHAIN, ENTITY, SYM, CYCLIC_RANK, CYCLIC_LENGTH = range(7)
# The atom attention encoder's arguments in OpenFold3's config (the rest is for training).
ENCODER_KEYS = ("c_atom_ref", "c_atom", "c_atom_pair", "c_token", "c_hidden", "no_heads",
                "no_blocks", "n_transition", "n_query", "n_key", "inf")


def cyclic_ranks(cyclic_mask: mx.array, asym_id: mx.array) -> tuple[mx.array, mx.array]:
    """Each token's rank among its chain's cyclic tokens (-1 if not cyclic), and their count."""
    n = asym_id.shape[-1]
    cyclic = cyclic_mask.astype(mx.bool_)
    in_chain = (asym_id[..., :, None] == asym_id[..., None, :]) & cyclic[..., None, :]
    before = mx.arange(n)[None, :] < mx.arange(n)[:, None]
    rank = mx.where(cyclic, mx.sum(in_chain & before, axis=-1), -1)
    return rank, mx.sum(in_chain, axis=-1)


def token_positions(batch: Batch) -> mx.array:
    """[*, N_token, 7] int32: the POSITIONS, then the cyclic rank and cyclic chain length."""
    columns = [batch[name].astype(mx.int32) for name in POSITIONS]
    if "cyclic_mask" in batch:
        columns += cyclic_ranks(batch["cyclic_mask"], columns[CHAIN])
    else:
        columns += [mx.full(columns[0].shape, -1, mx.int32), mx.zeros_like(columns[0])]
    return mx.stack(columns, axis=-1)


def relative_offsets(i: mx.array, j: mx.array, column: int) -> mx.array:
    """pos_i - pos_j of one POSITIONS column, wrapped around within cyclic chains.

    i [*, N_i, 1, 7] and j [*, 1, N_j, 7] are token_positions of the rows and the columns.

    Inside a cyclic chain of L tokens the offset is OpenFold3's cyclic offset of the tokens'
    ranks: -d for d = (rank_j - rank_i) mod L up to round(L / 2) (half to even), else L - d.
    """
    offset = i[..., column] - j[..., column]
    rank_i, rank_j, length = i[..., CYCLIC_RANK], j[..., CYCLIC_RANK], i[..., CYCLIC_LENGTH]
    cyclic = (rank_i >= 0) & (rank_j >= 0) & (i[..., CHAIN] == j[..., CHAIN])
    d = mx.remainder(rank_j - rank_i, mx.maximum(length, 1))
    half = mx.round(length / 2).astype(mx.int32)
    return mx.where(cyclic, mx.where(d <= half, -d, length - d), offset)


def relative_position_bins(i: mx.array, j: mx.array, max_relative_idx: int,
                           max_relative_chain: int) -> tuple[mx.array, ...]:
    """Bin indices of AF3 Algorithm 3's one-hot features between token rows i and columns j.

    i [*, N_i, 1, 7] and j [*, 1, N_j, 7] are token_positions; returns (residue bin, token bin,
    same entity, chain bin), each [*, N_i, N_j].
    """
    same_chain = i[..., CHAIN] == j[..., CHAIN]
    same_residue = i[..., RESIDUE] == j[..., RESIDUE]
    same_entity = i[..., ENTITY] == j[..., ENTITY]

    def binned(column: int, condition: mx.array, clip: int) -> mx.array:
        offset = mx.clip(relative_offsets(i, j, column) + clip, 0, 2 * clip)
        return mx.where(condition, offset, 2 * clip + 1)

    return (binned(RESIDUE, same_chain, max_relative_idx),
            binned(TOKEN, same_chain & same_residue, max_relative_idx),
            same_entity,
            binned(SYM, same_entity, max_relative_chain))


class InputEmbedderAllAtom(nn.Module):
    """Input embedder: s_input, s and z from the features (AF3 Algorithm 1 l. 1-5, Alg. 2-3)."""

    def __init__(self, c_s_input: int, c_s: int, c_z: int, max_relative_idx: int,
                 max_relative_chain: int, atom_attn_enc: Mapping[str, Any]) -> None:
        super().__init__()
        self.max_relative_idx = max_relative_idx
        self.max_relative_chain = max_relative_chain
        self.atom_attn_enc = AtomAttentionEncoder(**atom_attn_enc, add_noisy_pos=False)
        self.linear_s = Linear(c_s_input, c_s, bias=False)
        self.linear_z_i = Linear(c_s_input, c_z, bias=False)
        self.linear_z_j = Linear(c_s_input, c_z, bias=False)
        n_relpos = 2 * (2 * max_relative_idx + 2) + 1 + (2 * max_relative_chain + 2)
        self.linear_relpos = Linear(n_relpos, c_z, bias=False)
        self.linear_token_bonds = Linear(1, c_z, bias=False)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> InputEmbedderAllAtom:
        """From OpenFold3's architecture.input_embedder config (training-only keys ignored)."""
        encoder = {key: cfg["atom_attn_enc"][key] for key in ENCODER_KEYS}
        return cls(cfg["c_s_input"], cfg["c_s"], cfg["c_z"], cfg["max_relative_idx"],
                   cfg["max_relative_chain"], encoder)

    def relative_position_encoding(self, i: mx.array, j: mx.array) -> mx.array:
        """linear_relpos of Algorithm 3's concatenated one-hots [*, N_i, N_j, c_z].

        i [*, N_i, 1, 7] and j [*, 1, N_j, 7] are token_positions of the rows and the columns.

        A one-hot times a matrix is a column of it: the columns are looked up and summed
        instead of building the [*, N_i, N_j, 139] one-hot features.
        """
        residue, token, same_entity, chain = relative_position_bins(
            i, j, self.max_relative_idx, self.max_relative_chain)
        columns = self.linear_relpos.weight.T  # [C_relpos, c_z]
        n_bins = 2 * self.max_relative_idx + 2
        return (mx.take(columns, residue, axis=0) + mx.take(columns, n_bins + token, axis=0)
                + same_entity[..., None] * columns[2 * n_bins]
                + mx.take(columns, 2 * n_bins + 1 + chain, axis=0))

    def _pair_rows(self, z_i: mx.array, positions_i: mx.array, token_bonds: mx.array,
                   z_j: mx.array, positions_j: mx.array) -> mx.array:
        """z for rows i: z_i, positions_i [*, N_i, 1, C], token_bonds [*, N_i, N_token, 1]."""
        z = z_i + z_j
        z = z + self.relative_position_encoding(positions_i, positions_j)
        return z + self.linear_token_bonds(token_bonds.astype(z.dtype))

    def __call__(self, batch: Batch, chunk_size: int | None = None
                 ) -> tuple[mx.array, mx.array, mx.array]:
        """s_input [*, N_token, c_s_input], s [*, N_token, c_s], z [*, N_token, N_token, c_z].

        `chunk_size` bounds the rows of z built at once.
        """
        a = self.atom_attn_enc(batch)[0]
        s_input = mx.concatenate([
            a,
            batch["restype"].astype(mx.float32),
            batch["profile"].astype(mx.float32),
            batch["deletion_mean"].astype(mx.float32)[..., None],
        ], axis=-1)
        s = self.linear_s(s_input)
        positions = token_positions(batch)
        rows = [self.linear_z_i(s_input)[..., :, None, :], positions[..., :, None, :],
                batch["token_bonds"][..., None]]
        columns = [self.linear_z_j(s_input)[..., None, :, :], positions[..., None, :, :]]
        z = chunked(self._pair_rows, rows, chunk_size, axis=-3, broadcast=columns)
        return s_input, s, z
