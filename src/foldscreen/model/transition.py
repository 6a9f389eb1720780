"""The SwiGLU transition used for the pair, single and MSA representations."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .primitives import LayerNorm, Linear, chunked


class SwiGLU(nn.Module):
    """SwiGLU activation: swish(a x) * (b x)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.linear_a = Linear(c_in, c_out, bias=False)
        self.linear_b = Linear(c_in, c_out, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        return nn.silu(self.linear_a(x)) * self.linear_b(x)


class Transition(nn.Module):
    """SwiGLU transition (AF3 Algorithm 11); the hidden width is n * c_in."""

    def __init__(self, c_in: int, n: int) -> None:
        super().__init__()
        self.layer_norm = LayerNorm(c_in)
        self.swiglu = SwiGLU(c_in, n * c_in)
        self.linear_out = Linear(n * c_in, c_in, bias=False)

    def _transition(self, x: mx.array, mask: mx.array) -> mx.array:
        return self.linear_out(self.swiglu(self.layer_norm(x))) * mask

    def __call__(self, x: mx.array, mask: mx.array | None = None,
                 chunk_size: int | None = None) -> mx.array:
        """x: [*, N, C_in], mask: [*, N] (None: all kept) -> the update [*, N, C_in].

        Chunks along the token axis N (axis -2).
        """
        if mask is None:
            mask = mx.ones(x.shape[:-1], dtype=x.dtype)
        mask = mx.broadcast_to(mask, x.shape[:-1])[..., None]
        return chunked(self._transition, [x, mask], chunk_size, axis=-2)
