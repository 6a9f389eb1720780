"""Atom attention (the encoder over sequence-local windows) and the diffusion transformer.

The diffusion transformer runs over atom windows or, in the diffusion module, over all tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .primitives import AdaLN, Attention, LayerNorm, Linear, attention, chunked
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

    def arrays(self) -> dict[str, mx.array]:
        """What `keys` needs, as arrays (to pass the windows into a compiled graph)."""
        return {"index": self.index, "invalid": self.invalid}

    @classmethod
    def restored(cls, arrays: Mapping[str, mx.array], n_atom: int, n_query: int,
                 n_key: int) -> AtomWindows:
        """The windows of `arrays()`, for `queries`, `keys` and `unblock` (not `pair_mask`)."""
        windows = cls.__new__(cls)
        windows.n_atom, windows.n_query, windows.n_key = n_atom, n_query, n_key
        windows.n_blocks = -(-n_atom // n_query)
        windows.index, windows.invalid = arrays["index"], arrays["invalid"]
        return windows

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
    """Mean over each token's unmasked atoms: [*, N_atom, C] -> [*, N_token, C].

    Masked atoms go to a spare token in front. No constant here depends on the size: a compiled
    graph's fused kernels are named by their constants, so one that did (the spare token's
    index N_token) would build new kernels for every token bucket.
    """
    batch, n_atom, channels = x.shape[:-2], x.shape[-2], x.shape[-1]
    mask = mx.broadcast_to(atom_mask, x.shape[:-1]).astype(x.dtype)
    token = mx.where(mask > 0, atom_to_token_index + 1, 0).reshape(-1, n_atom)
    row = mx.arange(token.shape[0])[:, None]
    total = mx.zeros((token.shape[0], n_token + 1, channels), x.dtype).at[row, token].add(
        (x * mask[..., None]).reshape(-1, n_atom, channels))
    count = mx.zeros((token.shape[0], n_token + 1), x.dtype).at[row, token].add(mask.reshape(-1, n_atom))
    mean = total / (count[..., None] + eps)
    return mean.reshape(*batch, n_token + 1, channels)[..., 1:, :]


def normalised(x: mx.array) -> mx.array:
    """Layer norm without scale or offset (eps 1e-5, as every layer norm of s here)."""
    return mx.fast.layer_norm(x, None, None, 1e-5)


def stacked(linears: list[nn.Linear], scales: list[float] | None = None) -> list[mx.array]:
    """Linear layers of one input as one matrix [c_in, sum c_out] and bias (each layer's output
    times its `scales` entry): one matrix product where there were several."""
    scales = scales or [1.0] * len(linears)
    weight = mx.concatenate([linear.weight.T * scale for linear, scale in zip(linears, scales, strict=True)],
                            axis=1)
    bias = mx.concatenate([(linear.bias if "bias" in linear else mx.zeros(linear.weight.shape[:1],
                                                                          linear.weight.dtype)) * scale
                           for linear, scale in zip(linears, scales, strict=True)])
    return [weight, bias]


def heads(x: mx.array, no_heads: int) -> mx.array:
    """[*, L, H * C] -> [*, H, L, C]"""
    return mx.swapaxes(x.reshape(*x.shape[:-1], no_heads, -1), -2, -3)


def gated_attention(mha: Attention, q: mx.array, k: mx.array, v: mx.array, g: mx.array,
                    bias: mx.array) -> mx.array:
    """OpenFold3's gated attention from its projections [*, L, H * C] (q already scaled)."""
    h = mha.no_heads
    o = mx.swapaxes(attention(heads(q, h), heads(k, h), heads(v, h), [bias]), -2, -3)  # [*, Q, H, C]
    o = mx.sigmoid(g.reshape(o.shape)) * o
    return mha.linear_o(o.reshape(*o.shape[:-2], -1))


def adaptive(ada: AdaLN) -> list[tuple[mx.array, nn.Linear]]:
    """The two projections of an adaptive layer norm's s, each with the scale of s's layer norm."""
    return [(ada.layer_norm_s.weight, ada.linear_g), (ada.layer_norm_s.weight, ada.linear_s)]


def scale_shift_gate(normed: list[mx.array], raw: list[mx.array],
                     windows: AtomWindows | None = None) -> list[mx.array]:
    """(norm scale, norm shift, output gate) from the projections of s (`adaptive` and a gate)."""
    return [mx.sigmoid(normed[0]), normed[1], mx.sigmoid(raw[0])]


class ConditionedTransitionBlock(nn.Module):
    """SwiGLU transition with adaptive layer norm and adaLN-zero gate (AF3 Algorithm 25)."""

    def __init__(self, c_a: int, c_s: int, n: int) -> None:
        super().__init__()
        self.layer_norm = AdaLN(c_a, c_s)
        self.swiglu = SwiGLU(c_a, n * c_a)
        self.linear_g = Linear(c_s, c_a)
        self.linear_out = Linear(n * c_a, c_a, bias=False)

    def projections(self) -> tuple[list[tuple[mx.array, nn.Linear]], list[nn.Linear]]:
        """The linear layers of s: those after its layer norm (with the norm's scale), the rest."""
        return adaptive(self.layer_norm), [self.linear_g]

    condition = staticmethod(scale_shift_gate)

    def weights(self) -> list[mx.array]:
        """The SwiGLU's two projections as one matrix."""
        return stacked([self.swiglu.linear_a, self.swiglu.linear_b])[:1]

    def __call__(self, a: mx.array, cond: list[mx.array], mask: mx.array,
                 weights: list[mx.array]) -> mx.array:
        scale, shift, gate = cond
        x_a, x_b = mx.split((scale * normalised(a) + shift) @ weights[0], 2, axis=-1)
        return gate * self.linear_out(nn.silu(x_a) * x_b) * mask[..., None]


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

    def projections(self) -> tuple[list[tuple[mx.array, nn.Linear]], list[nn.Linear]]:
        """The linear layers of s: those after its layer norm (with the norm's scale), the rest."""
        return adaptive(self.layer_norm_a_q) + adaptive(self.layer_norm_a_k), [self.linear_ada_out]

    @staticmethod
    def condition(normed: list[mx.array], raw: list[mx.array],
                  windows: AtomWindows) -> list[mx.array]:
        """The queries' and the keys' norm scale and shift, in windows, and the output gate."""
        scale_q, shift_q, scale_k, shift_k = normed
        return [windows.queries(mx.sigmoid(scale_q)), windows.queries(shift_q),
                windows.keys(mx.sigmoid(scale_k)), windows.keys(shift_k), mx.sigmoid(raw[0])]

    def weights(self) -> list[mx.array]:
        """The projections of the queries (q, q's scale folded in, and the gate) as one matrix
        and bias, and those of the keys (k and v) as another."""
        mha = self.mha
        return [*stacked([mha.linear_q, mha.linear_g], [mha.c_hidden**-0.5, 1.0]),
                stacked([mha.linear_k, mha.linear_v])[0]]

    def __call__(self, a: mx.array, cond: list[mx.array], bias: mx.array,
                 weights: list[mx.array], windows: AtomWindows) -> mx.array:
        scale_q, shift_q, scale_k, shift_k, gate = cond
        w_qg, b_qg, w_kv = weights
        a = normalised(a)
        q, g = mx.split(mx.addmm(b_qg, scale_q * windows.queries(a) + shift_q, w_qg), 2, axis=-1)
        k, v = mx.split((scale_k * windows.keys(a) + shift_k) @ w_kv, 2, axis=-1)
        return gate * windows.unblock(gated_attention(self.mha, q, k, v, g, bias))


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

    def projections(self) -> tuple[list[tuple[mx.array, nn.Linear]], list[nn.Linear]]:
        """The linear layers of s: those after its layer norm (with the norm's scale), the rest."""
        return adaptive(self.layer_norm_a), [self.linear_ada_out]

    condition = staticmethod(scale_shift_gate)

    def weights(self) -> list[mx.array]:
        """The projections q (its scale folded in), k, v and the gate as one matrix and bias."""
        mha = self.mha
        return stacked([mha.linear_q, mha.linear_k, mha.linear_v, mha.linear_g],
                       [mha.c_hidden**-0.5, 1.0, 1.0, 1.0])

    def __call__(self, a: mx.array, cond: list[mx.array], bias: mx.array,
                 weights: list[mx.array], windows: AtomWindows | None = None) -> mx.array:
        scale, shift, gate = cond
        q, k, v, g = mx.split(mx.addmm(weights[1], scale * normalised(a) + shift, weights[0]), 4, axis=-1)
        return gate * gated_attention(self.mha, q, k, v, g, bias)


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

    def parts(self) -> tuple[nn.Module, nn.Module]:
        return self.attention_pair_bias, self.conditioned_transition

    def __call__(self, a: mx.array, cond: list[list[mx.array]], bias: mx.array, mask: mx.array,
                 weights: list[list[mx.array]], windows: AtomWindows | None) -> mx.array:
        a = a + self.attention_pair_bias(a, cond[0], bias, weights[0], windows)
        return a + self.conditioned_transition(a, cond[1], mask, weights[1])


class DiffusionTransformer(nn.Module):
    """Stack of diffusion transformer blocks (AF3 Algorithm 23).

    Over sequence-local atom windows (`z` cut into windows, [*, N_blocks, n_query, n_key, C_z])
    or, with `n_query=None`, over all tokens (`z` [*, N, N, C_z]). `z` is normalised once for
    all blocks, as OpenFold3 does. What `z` fixes (`biases`) and what `s` fixes
    (`conditioning`: every block's adaptive-norm scales and shifts and adaLN-zero gates) are
    made apart, so that each is made once where it is fixed across many calls (the diffusion
    steps), then `run`.
    """

    def __init__(self, c_a: int, c_s: int, c_z: int, c_hidden: int, no_heads: int,
                 no_blocks: int, n_transition: int, n_query: int | None, n_key: int | None,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.n_query, self.n_key = n_query, n_key
        self.layer_norm_z = LayerNorm(c_z, create_offset=False)
        self.blocks = [
            DiffusionTransformerBlock(c_a, c_s, c_z, c_hidden, no_heads, n_transition,
                                      n_query, n_key, inf)
            for _ in range(no_blocks)
        ]

    def windows(self, mask: mx.array) -> AtomWindows | None:
        """The atom windows of the attention (None over all tokens)."""
        return None if self.n_query is None else AtomWindows(mask, self.n_query, self.n_key)

    def biases(self, z: mx.array, mask: mx.array) -> list[mx.array]:
        """Each block's attention bias (pair bias and key mask)."""
        z = self.layer_norm_z(z)
        return [block.attention_pair_bias.bias(z, mask) for block in self.blocks]

    def weights(self) -> dict[str, Any]:
        """The stack's linear layers regrouped for fewer matrix products (a tree of arrays).

        `conditioning`: every linear layer of s, as two matrices with their biases, the first
        acting on s normalised (each layer's own layer-norm scale folded into it), the second on
        s itself, so that `conditioning` is two matrix products for all the blocks. `blocks`:
        each block's attention projections and SwiGLU projections stacked. Made once where the
        weights are fixed across many calls (a rollout).
        """
        normed, raw = [], []
        for block in self.blocks:
            for part in block.parts():
                n, r = part.projections()
                normed += n
                raw += r
        w_normed, b_normed = stacked([linear for _, linear in normed])
        scales = mx.concatenate([mx.broadcast_to(scale[:, None], (scale.shape[0], linear.weight.shape[0]))
                                 for scale, linear in normed], axis=1)
        return {"conditioning": [w_normed * scales, b_normed, *stacked(raw)],
                "blocks": [[part.weights() for part in block.parts()] for block in self.blocks]}

    def conditioning(self, s: mx.array, weights: list[mx.array],
                     windows: AtomWindows | None = None) -> list[list[list[mx.array]]]:
        """Each block's conditioning from s [*, N, c_s] (AF3 Algorithms 24-26): for its attention
        and its transition, the adaptive-norm scale and shift and the adaLN-zero gate."""
        w_normed, b_normed, w_raw, b_raw = weights
        width = self.blocks[0].conditioned_transition.linear_g.weight.shape[0]
        normed = mx.addmm(b_normed, normalised(s), w_normed)
        raw = mx.addmm(b_raw, s, w_raw)
        cut = lambda x, i: x[..., i * width:(i + 1) * width]  # noqa: E731
        n = r = 0
        out = []
        for block in self.blocks:
            conds = []
            for part in block.parts():
                k_n, k_r = (len(x) for x in part.projections())
                args = [[cut(normed, n + i) for i in range(k_n)], [cut(raw, r + i) for i in range(k_r)]]
                conds.append(part.condition(*args, windows))
                n, r = n + k_n, r + k_r
            out.append(conds)
        return out

    def run(self, a: mx.array, conditioning: list, biases: list[mx.array], mask: mx.array,
            weights: Mapping[str, Any], windows: AtomWindows | None = None) -> mx.array:
        """a [*, N, c_a] through the blocks, given `conditioning`, `biases` and `weights`."""
        for block, cond, bias, block_weights in zip(self.blocks, conditioning, biases,
                                                    weights["blocks"], strict=True):
            a = block(a, cond, bias, mask, block_weights, windows)
        return a

    def prepare(self, s: mx.array, z: mx.array, mask: mx.array) -> dict[str, Any]:
        """What the stack needs for runs over one s and z: the biases, the conditioning, the
        weights and the windows' index arrays (a tree of arrays, for `run_prepared`)."""
        windows, weights = self.windows(mask), self.weights()
        prepared = {"biases": self.biases(z, mask), "weights": weights,
                    "conditioning": self.conditioning(s, weights["conditioning"], windows)}
        return prepared if windows is None else {**prepared, "windows": windows.arrays()}

    def run_prepared(self, a: mx.array, prepared: Mapping[str, Any], mask: mx.array) -> mx.array:
        windows = None if "windows" not in prepared else AtomWindows.restored(
            prepared["windows"], mask.shape[-1], self.n_query, self.n_key)
        return self.run(a, prepared["conditioning"], prepared["biases"], mask, prepared["weights"],
                        windows)

    def __call__(self, a: mx.array, s: mx.array, z: mx.array, mask: mx.array) -> mx.array:
        return self.run_prepared(a, self.prepare(s, z, mask), mask)


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

    def encode(self, batch: Batch, q: mx.array,
               prepared: Mapping[str, Any]) -> tuple[mx.array, mx.array]:
        """a_i [*, N_token, c_token] and the transformed q_l, given the atom transformer's
        `prepare`d biases and conditioning (from c_l and p_lm)."""
        atom_mask = batch["atom_mask"]
        q = self.atom_transformer.run_prepared(q, prepared, atom_mask) * atom_mask[..., None]
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
        a, q = self.encode(batch, q, self.atom_transformer.prepare(c, p, batch["atom_mask"]))
        return a, q, c, p
