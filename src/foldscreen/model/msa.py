"""The MSA module (AF3 Algorithm 8): MSA sampling and embedding, then blocks that update the MSA
and pass it to the pair representation.

Constructors take OpenFold3's config names as keywords; each `from_config` takes OpenFold3's
`architecture.msa.msa_module_embedder` or `architecture.msa.msa_module` config directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .pairformer import PairBlock, stack_args
from .primitives import LayerNorm, Linear, chunked
from .transition import Transition

Permutation = Callable[[int], Sequence[int] | mx.array | np.ndarray]
"""A random permutation of range(n), as OpenFold3's `torch.randperm(n)`."""


def subsample_msa(msa_feat: mx.array, msa_mask: mx.array, no_rows: int,
                  permutation: Permutation) -> tuple[mx.array, mx.array]:
    """`no_rows` rows of one sample's MSA, non-empty rows first (OpenFold3's inference sampling).

    msa_feat: [N_msa, N_token, C], msa_mask: [N_msa, N_token]. With at least `no_rows` non-empty
    rows (rows whose mask has a one), a random `no_rows` of them; otherwise every non-empty row in
    order, then empty rows in random order up to `no_rows` in all.
    """
    valid = np.asarray(msa_mask.sum(axis=-1) > 0)
    valid_rows, empty_rows = np.flatnonzero(valid), np.flatnonzero(~valid)
    if len(valid_rows) >= no_rows:
        rows = valid_rows[np.asarray(permutation(len(valid_rows)))][:no_rows]
    elif len(empty_rows) > 0:
        fill = empty_rows[np.asarray(permutation(len(empty_rows)))][:no_rows - len(valid_rows)]
        rows = np.concatenate([valid_rows, fill])
    else:
        rows = valid_rows
    rows = mx.array(rows.astype(np.int32))
    return msa_feat[rows], msa_mask[rows]


class MSAModuleEmbedder(nn.Module):
    """MSA features, sampled and embedded with the single input (AF3 Algorithm 8, lines 1-4)."""

    def __init__(self, c_m_feats: int, c_m: int, c_s_input: int, subsample_all_msa: bool = True,
                 min_subsampled_all_msa: int = 1024, max_subsampled_all_msa: int = 1024) -> None:
        super().__init__()
        self.subsample_all_msa = subsample_all_msa
        self.min_subsampled_all_msa = min_subsampled_all_msa
        self.max_subsampled_all_msa = max_subsampled_all_msa
        self.linear_m = Linear(c_m_feats, c_m, bias=False)
        self.linear_s_input = Linear(c_s_input, c_m, bias=False)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> MSAModuleEmbedder:
        """From OpenFold3's msa_module_embedder config (its inference path only)."""
        if cfg.get("subsample_main_msa"):
            raise ValueError("subsample_main_msa is OpenFold3's training sampling; not ported")
        names = ("c_m_feats", "c_m", "c_s_input", "subsample_all_msa", "min_subsampled_all_msa",
                 "max_subsampled_all_msa")
        return cls(**{name: cfg[name] for name in names})

    def _depth(self, key: mx.array | None) -> int:
        """How many rows to sample, drawn between the configured bounds."""
        return mx.random.randint(self.min_subsampled_all_msa, self.max_subsampled_all_msa + 1,
                                 key=key).item()

    def _subsample(self, msa_feat: mx.array, msa_mask: mx.array, permutation: Permutation | None,
                   keys: Sequence[mx.array] | None) -> tuple[mx.array, mx.array]:
        """Each sample of the batch sampled alone.

        Without `keys`, all to one depth drawn from MLX's global generator, rows drawn by
        `permutation` (default: MLX's); with one key per sample, each sample's depth and rows
        come from its own key, and shallower samples get empty rows up to the deepest.
        """
        batch_dims = msa_mask.shape[:-2]
        feats = msa_feat.reshape(-1, *msa_feat.shape[-3:])
        masks = msa_mask.reshape(-1, *msa_mask.shape[-2:])
        if keys is None:
            depth = self._depth(None)
            samples = [subsample_msa(feat, mask, depth, permutation or mx.random.permutation)
                       for feat, mask in zip(feats, masks, strict=True)]
        else:
            samples = []
            for feat, mask, key in zip(feats, masks, keys, strict=True):
                depth_key, rows_key = mx.random.split(key)
                samples.append(subsample_msa(feat, mask, self._depth(depth_key),
                                             lambda n, key=rows_key: mx.random.permutation(n, key=key)))
        rows = max(mask.shape[0] for _, mask in samples)
        feat = mx.stack([mx.pad(f, [(0, rows - f.shape[0]), (0, 0), (0, 0)]) for f, _ in samples])
        mask = mx.stack([mx.pad(m, [(0, rows - m.shape[0]), (0, 0)]) for _, m in samples])
        return (feat.reshape(*batch_dims, *feat.shape[1:]),
                mask.reshape(*batch_dims, *mask.shape[1:]))

    def __call__(self, batch: Mapping[str, mx.array], s_input: mx.array,
                 permutation: Permutation | None = None,
                 keys: Sequence[mx.array] | None = None) -> tuple[mx.array, mx.array]:
        """batch["msa"]: [*, N_msa, N, 32], "has_deletion", "deletion_value", "msa_mask":
        [*, N_msa, N]; s_input: [*, N, C_s_input] -> (m [*, N_seq, N, C_m], msa_mask [*, N_seq, N]).

        `permutation` draws the sampled rows (default: MLX's random permutation); `keys`, one
        per batch item, draw each item's rows instead.
        """
        msa_feat = mx.concatenate([batch["msa"].astype(mx.float32),
                                   batch["has_deletion"][..., None],
                                   batch["deletion_value"][..., None]], axis=-1)
        msa_mask = batch["msa_mask"]
        if self.subsample_all_msa:
            msa_feat, msa_mask = self._subsample(msa_feat, msa_mask, permutation, keys)
        m = self.linear_m(msa_feat) + self.linear_s_input(s_input)[..., None, :, :]
        return m, msa_mask


class OuterProductMean(nn.Module):
    """Outer product mean (AF3 Algorithm 9)."""

    def __init__(self, c_m: int, c_z: int, c_hidden: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.layer_norm = LayerNorm(c_m)
        self.linear_1 = Linear(c_m, c_hidden, bias=False)
        self.linear_2 = Linear(c_m, c_hidden, bias=False)
        self.linear_out = Linear(c_hidden * c_hidden, c_z)

    def _outer(self, a: mx.array, b: mx.array) -> mx.array:
        """a: [*, I, S, C], b: [*, S, J, C] -> linear_out of the sum over S: [*, I, J, C_z]"""
        outer = mx.einsum("...isc,...sje->...ijce", a, b)
        return self.linear_out(outer.reshape(*outer.shape[:-2], -1))

    def __call__(self, m: mx.array, mask: mx.array | None = None,
                 chunk_size: int | None = None) -> mx.array:
        """m: [*, S, N, C_m], mask: [*, S, N] -> the pair update [*, N, N, C_z].

        Chunks along the first token axis.
        """
        if mask is None:
            mask = mx.ones(m.shape[:-1], dtype=m.dtype)
        m = self.layer_norm(m)
        a = self.linear_1(m) * mask[..., None]
        b = self.linear_2(m) * mask[..., None]
        outer = chunked(self._outer, [mx.swapaxes(a, -2, -3)], chunk_size, axis=-3,
                        broadcast=[b])
        norm = mx.einsum("...si,...sj->...ij", mask, mask)[..., None] + self.eps
        return outer / norm


class MSAPairWeightedAveraging(nn.Module):
    """MSA pair-weighted averaging (AF3 Algorithm 10)."""

    def __init__(self, c_in: int, c_hidden: int, c_z: int, no_heads: int,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.c_hidden = c_hidden
        self.no_heads = no_heads
        self.inf = inf
        self.layer_norm_m = LayerNorm(c_in)
        self.layer_norm_z = LayerNorm(c_z)
        self.linear_z = Linear(c_z, no_heads, bias=False)
        self.linear_v = Linear(c_in, c_hidden * no_heads, bias=False)
        self.linear_o = Linear(c_hidden * no_heads, c_in, bias=False)
        self.linear_g = Linear(c_in, c_hidden * no_heads, bias=False)

    def _average(self, m: mx.array, weights: mx.array) -> mx.array:
        """m: [*, S, N, C_m], weights: [*, 1, H, Q, K] -> [*, S, N, C_m]"""
        m = self.layer_norm_m(m)
        v = self.linear_v(m)
        v = mx.swapaxes(v.reshape(*v.shape[:-1], self.no_heads, self.c_hidden), -2, -3)
        o = mx.swapaxes(weights @ v, -2, -3)  # [*, S, Q, H, C]
        o = o * mx.sigmoid(self.linear_g(m)).reshape(o.shape)
        return self.linear_o(o.reshape(*o.shape[:-2], -1))

    def __call__(self, m: mx.array, z: mx.array, mask: mx.array | None = None,
                 chunk_size: int | None = None) -> mx.array:
        """m: [*, S, N, C_m], z: [*, N, N, C_z], mask: [*, N, N] pair mask -> the MSA update.

        Chunks along the MSA rows S.
        """
        if mask is None:
            mask = mx.ones(z.shape[:-1], dtype=z.dtype)
        bias = mx.moveaxis(self.linear_z(self.layer_norm_z(z)), -1, -3)  # [*, H, N, N]
        bias = bias + (self.inf * (mask - 1))[..., None, :, :]
        weights = mx.softmax(bias, axis=-1, precise=True)[..., None, :, :, :]
        return chunked(self._average, [m], chunk_size, axis=-3, broadcast=[weights])


class MSAModuleBlock(nn.Module):
    """One block of the MSA module (AF3 Algorithm 8, lines 6-14).

    In OpenFold3, the last block of a stack with `opm_first` has no MSA update (no `msa_att_row`
    and no `msa_transition`): its MSA would not be used again.
    """

    def __init__(self, c_m: int, c_z: int, c_hidden_msa_att: int, c_hidden_opm: int,
                 c_hidden_mul: int, c_hidden_pair_att: int, no_heads_msa: int,
                 no_heads_pair: int, transition_n: int, opm_first: bool = True,
                 inf: float = 1e9, last_block: bool = False) -> None:
        super().__init__()
        self.opm_first = opm_first
        self.skip_msa_update = last_block and opm_first
        if not self.skip_msa_update:
            self.msa_att_row = MSAPairWeightedAveraging(c_m, c_hidden_msa_att, c_z, no_heads_msa,
                                                        inf=inf)
            self.msa_transition = Transition(c_m, transition_n)
        self.outer_product_mean = OuterProductMean(c_m, c_z, c_hidden_opm)
        self.pair_stack = PairBlock(c_z, c_hidden_mul, c_hidden_pair_att, no_heads_pair,
                                    transition_n, inf=inf)

    def __call__(self, m: mx.array, z: mx.array, msa_mask: mx.array, pair_mask: mx.array,
                 chunk_size: int | None = None) -> tuple[mx.array, mx.array]:
        """m: [*, S, N, C_m], z: [*, N, N, C_z], masks [*, S, N] and [*, N, N] -> (m, z)."""
        if self.opm_first:
            z = z + self.outer_product_mean(m, msa_mask, chunk_size)
        if not self.skip_msa_update:
            m = m + self.msa_att_row(m, z, pair_mask, chunk_size)
            m = m + self.msa_transition(m, msa_mask, chunk_size)
            if not self.opm_first:
                z = z + self.outer_product_mean(m, msa_mask, chunk_size)
        return m, self.pair_stack(z, pair_mask, chunk_size)


class MSAModuleStack(nn.Module):
    """The MSA module's blocks (AF3 Algorithm 8, lines 5-15); returns the pair representation."""

    def __init__(self, c_m: int, c_z: int, c_hidden_msa_att: int, c_hidden_opm: int,
                 c_hidden_mul: int, c_hidden_pair_att: int, no_heads_msa: int,
                 no_heads_pair: int, no_blocks: int, transition_n: int, opm_first: bool = True,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.blocks = [
            MSAModuleBlock(c_m, c_z, c_hidden_msa_att, c_hidden_opm, c_hidden_mul,
                           c_hidden_pair_att, no_heads_msa, no_heads_pair, transition_n,
                           opm_first=opm_first, inf=inf, last_block=i == no_blocks - 1)
            for i in range(no_blocks)]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> MSAModuleStack:
        """From OpenFold3's msa_module config; training-only keys (dropout, ...) are ignored."""
        return cls(**stack_args(cfg, ("c_m", "c_z", "c_hidden_msa_att", "c_hidden_opm", "c_hidden_mul",
                                      "c_hidden_pair_att", "no_heads_msa", "no_heads_pair", "no_blocks",
                                      "transition_n", "opm_first", "inf")))

    def __call__(self, m: mx.array, z: mx.array, msa_mask: mx.array, pair_mask: mx.array,
                 chunk_size: int | None = None) -> mx.array:
        """m: [*, S, N, C_m], z: [*, N, N, C_z], masks [*, S, N] and [*, N, N] -> z."""
        for block in self.blocks:
            m, z = block(m, z, msa_mask, pair_mask, chunk_size)
        return z
