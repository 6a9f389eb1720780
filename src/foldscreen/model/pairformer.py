"""The pair stack block and the PairFormer (AF3 Algorithm 17).

Constructors take OpenFold3's config names as keywords; `PairFormerStack.from_config` takes
OpenFold3's `architecture.pairformer` config (a mapping) directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .primitives import Attention, InFlight, LayerNorm, Linear, tracing
from .transition import Transition
from .triangle import TriangleAttention, TriangleMultiplicationIncoming, TriangleMultiplicationOutgoing


class PairBlock(nn.Module):
    """Triangle updates, triangle attention and transition of z (AF3 Algorithm 17, lines 2-6).

    Used by the PairFormer and MSA module blocks (as `pair_stack`) and by the template pair
    stack (as each block itself; its `tri_mul_first` is True in OpenFold3's config).
    """

    def __init__(self, c_z: int, c_hidden_mul: int, c_hidden_pair_att: int,
                 no_heads_pair: int, transition_n: int, inf: float = 1e9,
                 tri_mul_first: bool = True) -> None:
        super().__init__()
        self.tri_mul_first = tri_mul_first
        self.tri_mul_out = TriangleMultiplicationOutgoing(c_z, c_hidden_mul)
        self.tri_mul_in = TriangleMultiplicationIncoming(c_z, c_hidden_mul)
        self.tri_att_start = TriangleAttention(c_z, c_hidden_pair_att, no_heads_pair, inf=inf)
        self.tri_att_end = TriangleAttention(c_z, c_hidden_pair_att, no_heads_pair,
                                             starting=False, inf=inf)
        self.pair_transition = Transition(c_z, transition_n)

    def _multiplications(self, z: mx.array, mask: mx.array, chunk: int | None) -> mx.array:
        z = z + self.tri_mul_out(z, mask, chunk)
        return z + self.tri_mul_in(z, mask, chunk)

    def _attentions(self, z: mx.array, mask: mx.array, chunk: int | None) -> mx.array:
        z = z + self.tri_att_start(z, mask, chunk)
        return z + self.tri_att_end(z, mask, chunk)

    def __call__(self, z: mx.array, pair_mask: mx.array,
                 chunk_size: int | None = None) -> mx.array:
        """z: [*, N, N, C_z], pair_mask: [*, N, N] -> the new z (residuals included)."""
        if self.tri_mul_first:
            z = self._attentions(self._multiplications(z, pair_mask, chunk_size),
                                 pair_mask, chunk_size)
        else:
            z = self._multiplications(self._attentions(z, pair_mask, chunk_size),
                                      pair_mask, chunk_size)
        return z + self.pair_transition(z, pair_mask, chunk_size)


class AttentionPairBias(nn.Module):
    """Single attention with pair bias, as in the PairFormer (AF3 Algorithm 24, no AdaLN)."""

    def __init__(self, c_s: int, c_z: int, c_hidden: int, no_heads: int,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.inf = inf
        self.layer_norm_a = LayerNorm(c_s)
        self.layer_norm_z = LayerNorm(c_z)
        self.linear_z = Linear(c_z, no_heads, bias=False)
        self.mha = Attention(c_s, c_s, c_s, c_hidden, no_heads, gating=True, q_bias=True)

    def __call__(self, a: mx.array, z: mx.array, mask: mx.array | None = None) -> mx.array:
        """a: [*, N, C_s], z: [*, N, N, C_z], mask: [*, N] -> the update [*, N, C_s]."""
        if mask is None:
            mask = mx.ones(a.shape[:-1], dtype=a.dtype)
        a = self.layer_norm_a(a)
        mask_bias = (self.inf * (mask - 1))[..., None, None, :]  # [*, 1, 1, N]
        pair_bias = mx.moveaxis(self.linear_z(self.layer_norm_z(z)), -1, -3)  # [*, H, N, N]
        return self.mha(a, a, [mask_bias, pair_bias])


class PairFormerBlock(nn.Module):
    """One PairFormer block (AF3 Algorithm 17, lines 2-8)."""

    def __init__(self, c_s: int, c_z: int, c_hidden_pair_bias: int, no_heads_pair_bias: int,
                 c_hidden_mul: int, c_hidden_pair_att: int, no_heads_pair: int,
                 transition_n: int, inf: float = 1e9) -> None:
        super().__init__()
        self.pair_stack = PairBlock(c_z, c_hidden_mul, c_hidden_pair_att, no_heads_pair,
                                    transition_n, inf=inf)
        self.attn_pair_bias = AttentionPairBias(c_s, c_z, c_hidden_pair_bias,
                                                no_heads_pair_bias, inf=inf)
        self.single_transition = Transition(c_s, transition_n)

    def __call__(self, s: mx.array, z: mx.array, single_mask: mx.array, pair_mask: mx.array,
                 chunk_size: int | None = None) -> tuple[mx.array, mx.array]:
        z = self.pair_stack(z, pair_mask, chunk_size)
        s = s + self.attn_pair_bias(s, z, single_mask)
        s = s + self.single_transition(s, single_mask, chunk_size)
        return s, z


def stack_args(cfg: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The arguments `names` from an OpenFold3 block-stack config; refuses variants not ported."""
    if cfg.get("transition_type", "swiglu") != "swiglu" or cfg.get("fuse_projection_weights"):
        raise ValueError("only SwiGLU transitions and unfused triangle updates are ported")
    return {name: cfg[name] for name in names}


class PairFormerStack(nn.Module):
    """The PairFormer stack (AF3 Algorithm 17)."""

    def __init__(self, c_s: int, c_z: int, c_hidden_pair_bias: int, no_heads_pair_bias: int,
                 c_hidden_mul: int, c_hidden_pair_att: int, no_heads_pair: int,
                 no_blocks: int, transition_n: int, inf: float = 1e9) -> None:
        super().__init__()
        self.blocks = [
            PairFormerBlock(c_s, c_z, c_hidden_pair_bias, no_heads_pair_bias, c_hidden_mul,
                            c_hidden_pair_att, no_heads_pair, transition_n, inf=inf)
            for _ in range(no_blocks)]
        self._compiled: Callable[..., tuple[mx.array, mx.array]] | None = None
        self._block_args = (c_s, c_z, c_hidden_pair_bias, no_heads_pair_bias, c_hidden_mul,
                            c_hidden_pair_att, no_heads_pair, transition_n, inf)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PairFormerStack:
        """From OpenFold3's pairformer config; training-only keys (dropout, ...) are ignored."""
        return cls(**stack_args(cfg, ("c_s", "c_z", "c_hidden_pair_bias", "no_heads_pair_bias",
                                      "c_hidden_mul", "c_hidden_pair_att", "no_heads_pair", "no_blocks",
                                      "transition_n", "inf")))

    def compiled_block(self) -> Callable[..., tuple[mx.array, mx.array]]:
        """One compiled graph for every block: (block parameters, s, z, masks) -> (s, z).

        The parameters are inputs, so the 48 blocks share one trace per input shape; a spare
        block (not one of the stack's) holds them while the graph is traced.
        """
        if self._compiled is None:
            spare = PairFormerBlock(*self._block_args)

            def run(parameters: dict, s: mx.array, z: mx.array, single_mask: mx.array,
                    pair_mask: mx.array, chunk_size: int | None) -> tuple[mx.array, mx.array]:
                spare.update(parameters)
                return spare(s, z, single_mask, pair_mask, chunk_size)
            self._compiled = mx.compile(run)
        return self._compiled

    def __call__(self, s: mx.array, z: mx.array, single_mask: mx.array, pair_mask: mx.array,
                 chunk_size: int | None = None,
                 compiled: bool = False) -> tuple[mx.array, mx.array]:
        """s: [*, N, C_s], z: [*, N, N, C_z], masks [*, N] and [*, N, N] -> (s, z).

        `compiled` runs each block as one compiled graph (a trace per chunk size; its chunks
        are parts of the graph).
        """
        if compiled:
            run, queue = self.compiled_block(), InFlight()
            with tracing():
                for block in self.blocks:
                    s, z = run(block.parameters(), s, z, single_mask, pair_mask, chunk_size)
                    queue.push(s, z)
            return s, z
        for block in self.blocks:
            s, z = block(s, z, single_mask, pair_mask, chunk_size)
        return s, z
