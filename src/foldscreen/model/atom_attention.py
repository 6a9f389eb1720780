"""Atom attention (the encoder over sequence-local windows) and the diffusion transformer.

The diffusion transformer runs over atom windows or, in the diffusion module, over all tokens.
"""

from __future__ import annotations

from collections.abc import Mapping

import mlx.core as mx
import mlx.nn as nn

from .primitives import AdaLN, Attention, LayerNorm, Linear, chunked
from .transition import SwiGLU

Batch = Mapping[str, mx.array]


class AtomWindows:
    """Sequence-local atom windows (AF3 Algorithm 7), cut as OpenFold3 cuts them.

    The atoms are split into blocks of `n_query` queries, right-padded to a whole block. Each
    block attends to `n_key` keys centred on it, shifted to lie inside the first
    `sum(atom_mask)` atoms (OpenFold3 assumes the masked atoms are trailing padding); keys that
    still fall outside (fewer atoms than `n_key`) are zero and masked out.
    """

    def __init__(self, atom_mask: mx.array, n_query: int, n_key: int) -> None:
        self.n_atom = atom_mask.shape[-1]
        self.n_query, self.n_key = n_query, n_key
        self.n_blocks = -(-self.n_atom // n_query)
        count = mx.sum(atom_mask, axis=-1, keepdims=True).astype(mx.int32)  # [*, 1]
        centres = n_query // 2 + n_query * mx.arange(self.n_blocks)
        window = centres[:, None] + mx.arange(-n_key // 2, n_key // 2)  # [N_blocks, n_key]
        underflow = mx.maximum(-window[:, 0], 0)
        overflow = mx.maximum(window[:, -1] - (count - 1), 0)  # [*, N_blocks]
        keys = window + mx.where(underflow > 0, underflow, -overflow)[..., None]  # [*, N_blocks, n_key]
        last = (count - 1)[..., None]
        self.invalid = ((keys < 0) | (keys > last)).reshape(*keys.shape[:-2], -1)
        self.index = mx.clip(keys, 0, last).reshape(*keys.shape[:-2], -1)  # [*, N_blocks * n_key]
        mask = atom_mask[..., None]
        self.pair_mask = self.queries(mask)[..., :, None, 0] * self.keys(mask)[..., None, :, 0]

    def queries(self, x: mx.array) -> mx.array:
        """[*, N_atom, C] -> [*, N_blocks, n_query, C], zero-padded."""
        padding = self.n_blocks * self.n_query - self.n_atom
        x = mx.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, padding), (0, 0)])
        return x.reshape(*x.shape[:-2], self.n_blocks, self.n_query, x.shape[-1])

    def keys(self, x: mx.array) -> mx.array:
        """[*, N_atom, C] -> [*, N_blocks, n_key, C], zero outside the atoms."""
        x = mx.take_along_axis(x, self.index[..., None], axis=-2)
        x = mx.where(self.invalid[..., None], 0, x)
        return x.reshape(*x.shape[:-2], self.n_blocks, self.n_key, x.shape[-1])

    def unblock(self, x: mx.array) -> mx.array:
        """[*, N_blocks, n_query, C] -> [*, N_atom, C]"""
        return x.reshape(*x.shape[:-3], -1, x.shape[-1])[..., : self.n_atom, :]


def aggregate_to_tokens(x: mx.array, atom_to_token_index: mx.array, atom_mask: mx.array,
                        n_token: int, eps: float = 1e-9) -> mx.array:
    """Mean over each token's unmasked atoms: [*, N_atom, C] -> [*, N_token, C]."""
    batch, n_atom, channels = x.shape[:-2], x.shape[-2], x.shape[-1]
    mask = mx.broadcast_to(atom_mask, x.shape[:-1]).astype(x.dtype)
    token = mx.where(mask > 0, atom_to_token_index, n_token).reshape(-1, n_atom)  # spare token
    rows = (token + (n_token + 1) * mx.arange(token.shape[0])[:, None]).reshape(-1)
    n_rows = token.shape[0] * (n_token + 1)
    total = mx.zeros((n_rows, channels), x.dtype).at[rows].add(
        (x * mask[..., None]).reshape(-1, channels))
    count = mx.zeros((n_rows,), x.dtype).at[rows].add(mask.reshape(-1))
    mean = total / (count[:, None] + eps)
    return mean.reshape(*batch, n_token + 1, channels)[..., :n_token, :]


class ConditionedTransitionBlock(nn.Module):
    """SwiGLU transition with adaptive layer norm and adaLN-zero gate (AF3 Algorithm 25)."""

    def __init__(self, c_a: int, c_s: int, n: int) -> None:
        super().__init__()
        self.layer_norm = AdaLN(c_a, c_s)
        self.swiglu = SwiGLU(c_a, n * c_a)
        self.linear_g = Linear(c_s, c_a)
        self.linear_out = Linear(n * c_a, c_a, bias=False)

    def __call__(self, a: mx.array, s: mx.array, mask: mx.array) -> mx.array:
        b = self.swiglu(self.layer_norm(a, s))
        return mx.sigmoid(self.linear_g(s)) * self.linear_out(b) * mask[..., None]


class CrossAttentionPairBias(nn.Module):
    """Sequence-local attention with pair bias and adaptive layer norm (AF3 Algorithm 24).

    `z` is the pair representation already cut into windows, [*, N_blocks, n_query, n_key, C_z];
    `bias(z, mask)` turns it into the attention bias, made once for all calls that share it.
    """

    def __init__(self, c_a: int, c_s: int, c_z: int, c_hidden: int, no_heads: int,
                 n_query: int, n_key: int, inf: float = 1e9) -> None:
        super().__init__()
        self.n_query, self.n_key, self.inf = n_query, n_key, inf
        self.layer_norm_a_q = AdaLN(c_a, c_s)
        self.layer_norm_a_k = AdaLN(c_a, c_s)
        self.linear_ada_out = Linear(c_s, c_a)
        self.linear_z = Linear(c_z, no_heads, bias=False)
        self.mha = Attention(c_a, c_a, c_a, c_hidden, no_heads, gating=True, q_bias=True)

    def bias(self, z: mx.array, mask: mx.array) -> mx.array:
        """The attention bias [*, N_blocks, H, n_query, n_key]: pair bias plus key mask."""
        windows = AtomWindows(mask, self.n_query, self.n_key)
        mask_bias = (self.inf * (windows.pair_mask - 1))[..., None, :, :]
        return mask_bias + mx.moveaxis(self.linear_z(z), -1, -3)

    def __call__(self, a: mx.array, s: mx.array, bias: mx.array, mask: mx.array) -> mx.array:
        windows = AtomWindows(mask, self.n_query, self.n_key)
        a_q = self.layer_norm_a_q(windows.queries(a), windows.queries(s))
        a_k = self.layer_norm_a_k(windows.keys(a), windows.keys(s))
        a = windows.unblock(self.mha(a_q, a_k, [bias]))
        return mx.sigmoid(self.linear_ada_out(s)) * a


class DiffusionAttentionPairBias(nn.Module):
    """Attention over all tokens with pair bias and adaptive layer norm (AF3 Algorithm 24).

    `z` is the pair representation [*, N, N, C_z]; masked tokens are masked out as keys.
    `bias(z, mask)` turns it into the attention bias, made once for all calls that share it.
    """

    def __init__(self, c_a: int, c_s: int, c_z: int, c_hidden: int, no_heads: int,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.inf = inf
        self.layer_norm_a = AdaLN(c_a, c_s)
        self.linear_ada_out = Linear(c_s, c_a)
        self.linear_z = Linear(c_z, no_heads, bias=False)
        self.mha = Attention(c_a, c_a, c_a, c_hidden, no_heads, gating=True, q_bias=True)

    def bias(self, z: mx.array, mask: mx.array) -> mx.array:
        """The attention bias [*, H, N, N]: pair bias plus key mask."""
        mask_bias = (self.inf * (mask - 1))[..., None, None, :]
        return mask_bias + mx.moveaxis(self.linear_z(z), -1, -3)

    def __call__(self, a: mx.array, s: mx.array, bias: mx.array, mask: mx.array) -> mx.array:
        a = self.layer_norm_a(a, s)
        return mx.sigmoid(self.linear_ada_out(s)) * self.mha(a, a, [bias])


class DiffusionTransformerBlock(nn.Module):
    """Attention with pair bias then conditioned transition, each a residual (AF3 Algorithm 23).

    Attention is over sequence-local atom windows, or over all tokens when `n_query` is None.
    """

    def __init__(self, c_a: int, c_s: int, c_z: int, c_hidden: int, no_heads: int,
                 n_transition: int, n_query: int | None, n_key: int | None,
                 inf: float = 1e9) -> None:
        super().__init__()
        if n_query is None:
            self.attention_pair_bias = DiffusionAttentionPairBias(
                c_a, c_s, c_z, c_hidden, no_heads, inf)
        else:
            self.attention_pair_bias = CrossAttentionPairBias(
                c_a, c_s, c_z, c_hidden, no_heads, n_query, n_key, inf)
        self.conditioned_transition = ConditionedTransitionBlock(c_a, c_s, n_transition)

    def __call__(self, a: mx.array, s: mx.array, bias: mx.array, mask: mx.array) -> mx.array:
        a = a + self.attention_pair_bias(a, s, bias, mask)
        return a + self.conditioned_transition(a, s, mask)


class DiffusionTransformer(nn.Module):
    """Stack of diffusion transformer blocks (AF3 Algorithm 23).

    Over sequence-local atom windows (`z` cut into windows, [*, N_blocks, n_query, n_key, C_z])
    or, with `n_query=None`, over all tokens (`z` [*, N, N, C_z]). `z` is normalised once for
    all blocks, as OpenFold3 does. `biases(z, mask)` are the blocks' attention biases: what
    depends on `z` alone, made once where `z` is fixed across many calls (the diffusion steps),
    then `run(a, s, biases, mask)`.
    """

    def __init__(self, c_a: int, c_s: int, c_z: int, c_hidden: int, no_heads: int,
                 no_blocks: int, n_transition: int, n_query: int | None, n_key: int | None,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.layer_norm_z = LayerNorm(c_z, create_offset=False)
        self.blocks = [
            DiffusionTransformerBlock(c_a, c_s, c_z, c_hidden, no_heads, n_transition,
                                      n_query, n_key, inf)
            for _ in range(no_blocks)
        ]

    def biases(self, z: mx.array, mask: mx.array) -> list[mx.array]:
        """Each block's attention bias (pair bias and key mask)."""
        z = self.layer_norm_z(z)
        return [block.attention_pair_bias.bias(z, mask) for block in self.blocks]

    def run(self, a: mx.array, s: mx.array, biases: list[mx.array], mask: mx.array) -> mx.array:
        for block, bias in zip(self.blocks, biases, strict=True):
            a = block(a, s, bias, mask)
        return a

    def __call__(self, a: mx.array, s: mx.array, z: mx.array, mask: mx.array) -> mx.array:
        return self.run(a, s, self.biases(z, mask), mask)


class RefAtomFeatureEmbedder(nn.Module):
    """Reference-conformer atom features into c_l and windowed p_lm (AF3 Algorithm 5, l. 1-6)."""

    def __init__(self, c_atom_ref: Mapping[str, int], c_atom: int, c_atom_pair: int) -> None:
        super().__init__()
        self.linear_ref_pos = Linear(3, c_atom, bias=False)
        self.linear_ref_charge = Linear(1, c_atom, bias=False)
        self.linear_ref_mask = Linear(1, c_atom, bias=False)
        self.linear_ref_element = Linear(c_atom_ref["element"], c_atom, bias=False)
        self.linear_ref_atom_chars = Linear(c_atom_ref["name_chars"], c_atom, bias=False)
        self.linear_ref_offset = Linear(3, c_atom_pair, bias=False)
        self.linear_inv_sq_dists = Linear(1, c_atom_pair, bias=False)
        self.linear_valid_mask = Linear(1, c_atom_pair, bias=False)

    def __call__(self, batch: Batch, windows: AtomWindows) -> tuple[mx.array, mx.array]:
        """Returns c_l [*, N_atom, c_atom] and p_lm [*, N_blocks, n_query, n_key, c_atom_pair]."""
        pos = batch["ref_pos"].astype(mx.float32)
        chars = batch["ref_atom_name_chars"]
        c = self.linear_ref_pos(pos)
        c = c + self.linear_ref_charge(mx.arcsinh(batch["ref_charge"].astype(mx.float32))[..., None])
        c = c + self.linear_ref_mask(batch["ref_mask"].astype(mx.float32)[..., None])
        c = c + self.linear_ref_element(batch["ref_element"].astype(mx.float32))
        c = c + self.linear_ref_atom_chars(
            chars.reshape(*chars.shape[:-2], -1).astype(mx.float32))

        pair_mask = windows.pair_mask[..., None]
        d = (windows.queries(pos)[..., :, None, :] - windows.keys(pos)[..., None, :, :]) * pair_mask
        uid = batch["ref_space_uid"][..., None]
        same = windows.queries(uid)[..., :, None, :] == windows.keys(uid)[..., None, :, :]
        v = same.astype(mx.float32) * pair_mask
        p = self.linear_ref_offset(d) * v
        p = p + self.linear_inv_sq_dists(1.0 / (1 + mx.sum(d**2, axis=-1, keepdims=True))) * v
        return c, p + self.linear_valid_mask(v) * v


class NoisyPositionEmbedder(nn.Module):
    """Trunk conditioning and noisy positions into the atom representations (AF3 Alg. 5, l. 8-12)."""

    def __init__(self, c_s: int, c_z: int, c_atom: int, c_atom_pair: int) -> None:
        super().__init__()
        self.layer_norm_s = LayerNorm(c_s, create_offset=False)
        self.linear_s = Linear(c_s, c_atom, bias=False)
        self.layer_norm_z = LayerNorm(c_z, create_offset=False)
        self.linear_z = Linear(c_z, c_atom_pair, bias=False)
        self.linear_r = Linear(3, c_atom, bias=False)

    def _pair(self, z: mx.array) -> mx.array:
        return self.linear_z(self.layer_norm_z(z))

    def __call__(self, batch: Batch, windows: AtomWindows, c: mx.array, p: mx.array,
                 s_trunk: mx.array, z_trunk: mx.array,
                 chunk_size: int | None = None) -> tuple[mx.array, mx.array]:
        """c_l, p_lm conditioned on s_i [*, N_token, c_s] and z_ij [*, N_token, N_token, c_z].

        s_i reaches each atom through `atom_to_token_index` (OpenFold3 repeats each token
        `num_atoms_per_token` times: the same wherever masked tokens and atoms are trailing
        padding). `chunk_size` bounds the rows of z_ij normalised at once. The noisy positions
        enter q_l through `linear_r`, apart from this (they change at every step; this does not).
        """
        atom_mask, token_of_atom = batch["atom_mask"], batch["atom_to_token_index"]
        s = self.linear_s(self.layer_norm_s(s_trunk)) * batch["token_mask"][..., None]
        c = c + mx.take_along_axis(s, token_of_atom[..., None], axis=-2) * atom_mask[..., None]

        z = chunked(self._pair, [z_trunk], chunk_size, axis=-3)  # [*, N_token, N_token, c_ap]
        n_token = z.shape[-2]
        q_token = windows.queries(token_of_atom[..., None])[..., 0]  # [*, N_blocks, n_query]
        k_token = windows.keys(token_of_atom[..., None])[..., 0]  # [*, N_blocks, n_key]
        pair = q_token[..., :, None] * n_token + k_token[..., None, :]
        pair = pair.reshape(*pair.shape[:-3], -1, 1)
        z = mx.take_along_axis(z.reshape(*z.shape[:-3], -1, z.shape[-1]), pair, axis=-2)
        p = p + z.reshape(p.shape[:-1] + z.shape[-1:]) * windows.pair_mask[..., None]
        return c, p


class AtomAttentionEncoder(nn.Module):
    """Atom attention encoder: atoms to token activations a_i (AF3 Algorithm 5).

    With `add_noisy_pos` (the diffusion module) the call takes the noisy positions r_l and the
    trunk's s_i and z_ij; without (the trunk's input embedder) q_l starts as c_l.
    """

    def __init__(self, c_atom_ref: Mapping[str, int], c_atom: int, c_atom_pair: int, c_token: int,
                 add_noisy_pos: bool, c_hidden: int, no_heads: int, no_blocks: int,
                 n_transition: int, n_query: int, n_key: int, c_s: int | None = None,
                 c_z: int | None = None, inf: float = 1e9) -> None:
        super().__init__()
        self.n_query, self.n_key = n_query, n_key
        self.ref_atom_feature_embedder = RefAtomFeatureEmbedder(c_atom_ref, c_atom, c_atom_pair)
        if add_noisy_pos:
            self.noisy_position_embedder = NoisyPositionEmbedder(c_s, c_z, c_atom, c_atom_pair)
        self.linear_l = Linear(c_atom, c_atom_pair, bias=False)
        self.linear_m = Linear(c_atom, c_atom_pair, bias=False)
        self.pair_mlp = [nn.ReLU(), Linear(c_atom_pair, c_atom_pair, bias=False),
                         nn.ReLU(), Linear(c_atom_pair, c_atom_pair, bias=False),
                         nn.ReLU(), Linear(c_atom_pair, c_atom_pair, bias=False)]
        self.atom_transformer = DiffusionTransformer(
            c_atom, c_atom, c_atom_pair, c_hidden, no_heads, no_blocks, n_transition,
            n_query, n_key, inf)
        self.linear_q = [Linear(c_atom, c_token, bias=False), nn.ReLU()]

    def conditioning(self, batch: Batch, s_trunk: mx.array | None = None,
                     z_trunk: mx.array | None = None,
                     chunk_size: int | None = None) -> tuple[mx.array, mx.array]:
        """c_l [*, N_atom, c_atom] and p_lm [*, N_blocks, n_query, n_key, c_atom_pair].

        Everything of the encoder that the noisy positions do not change: made once per rollout.
        """
        windows = AtomWindows(batch["atom_mask"], self.n_query, self.n_key)
        c, p = self.ref_atom_feature_embedder(batch, windows)
        if s_trunk is not None:
            c, p = self.noisy_position_embedder(batch, windows, c, p, s_trunk, z_trunk, chunk_size)
        c_l, c_m = self.linear_l(nn.relu(c)), self.linear_m(nn.relu(c))
        pair_mask = windows.pair_mask[..., None]
        p = p + (windows.queries(c_l)[..., :, None, :] + windows.keys(c_m)[..., None, :, :]) \
            * pair_mask
        update = p
        for layer in self.pair_mlp:
            update = layer(update)
        return c, (p + update) * pair_mask

    def encode(self, batch: Batch, q: mx.array, c: mx.array,
               biases: list[mx.array]) -> tuple[mx.array, mx.array]:
        """a_i [*, N_token, c_token] and the transformed q_l, given the atom transformer's biases."""
        atom_mask = batch["atom_mask"]
        q = self.atom_transformer.run(q, c, biases, atom_mask) * atom_mask[..., None]
        a = q
        for layer in self.linear_q:
            a = layer(a)
        a = aggregate_to_tokens(a, batch["atom_to_token_index"], atom_mask,
                                batch["token_mask"].shape[-1])
        return a, q

    def __call__(self, batch: Batch, r: mx.array | None = None, s_trunk: mx.array | None = None,
                 z_trunk: mx.array | None = None, chunk_size: int | None = None
                 ) -> tuple[mx.array, mx.array, mx.array, mx.array]:
        """a_i [*, N_token, c_token], then q_l, c_l and p_lm for the decoder.

        r: [*, N_atom, 3] noisy positions, s_trunk: [*, N_token, c_s], z_trunk:
        [*, N_token, N_token, c_z], given together or not at all.
        """
        c, p = self.conditioning(batch, s_trunk, z_trunk, chunk_size)
        q = c if r is None else c + self.noisy_position_embedder.linear_r(r)
        a, q = self.encode(batch, q, c, self.atom_transformer.biases(p, batch["atom_mask"]))
        return a, q, c, p
