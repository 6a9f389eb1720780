"""Triangle updates of the pair representation: multiplicative updates and triangle attention."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .primitives import Attention, LayerNorm, Linear, chunked, is_fused, rows_within


class TriangleMultiplicativeUpdate(nn.Module):
    """Triangle multiplicative update, outgoing or incoming edges (AF3 Algorithms 12 and 13).

    Returns the update (not z plus the update); the product over the third node k is computed
    `chunk_size` rows i at a time, with the output projection, so only a chunk of the
    [*, N, N, c_hidden] product exists at once.
    """

    def __init__(self, c_z: int, c_hidden: int, outgoing: bool = True) -> None:
        super().__init__()
        self.outgoing = outgoing
        self.linear_g = Linear(c_z, c_z, bias=False)
        self.linear_z = Linear(c_hidden, c_z, bias=False)
        self.layer_norm_in = LayerNorm(c_z)
        self.layer_norm_out = LayerNorm(c_hidden)
        self.linear_a_p = Linear(c_z, c_hidden, bias=False)
        self.linear_a_g = Linear(c_z, c_hidden, bias=False)
        self.linear_b_p = Linear(c_z, c_hidden, bias=False)
        self.linear_b_g = Linear(c_z, c_hidden, bias=False)

    def _output(self, a: mx.array, z: mx.array, b: mx.array) -> mx.array:
        """Rows i of the update from a: [*, i, C, k], z (normed): [*, i, j, C_z], b: [*, C, k, j]."""
        x = mx.moveaxis(mx.swapaxes(a, -2, -3) @ b, -3, -1)  # [*, i, j, C]
        x = self.linear_z(self.layer_norm_out(x))
        return x * mx.sigmoid(self.linear_g(z))

    def __call__(self, z: mx.array, mask: mx.array | None = None,
                 chunk_size: int | None = None) -> mx.array:
        """z: [*, N, N, C_z], mask: [*, N, N] -> the update [*, N, N, C_z]."""
        if mask is None:
            mask = mx.ones(z.shape[:-1], dtype=z.dtype)
        mask = mask[..., None]
        z = self.layer_norm_in(z)
        a = mask * mx.sigmoid(self.linear_a_g(z)) * self.linear_a_p(z)
        b = mask * mx.sigmoid(self.linear_b_g(z)) * self.linear_b_p(z)
        if self.outgoing:  # x_ij = sum_k a_ik b_jk
            a = mx.swapaxes(a, -1, -2)  # [*, i, C, k]
            b = mx.swapaxes(mx.moveaxis(b, -1, -3), -1, -2)  # [*, C, k, j]
        else:  # x_ij = sum_k a_ki b_kj
            a = mx.moveaxis(a, -3, -1)  # [*, i, C, k]
            b = mx.moveaxis(b, -1, -3)  # [*, C, k, j]
        return chunked(self._output, [a, z], chunk_size, axis=-3, broadcast=[b])


class TriangleMultiplicationOutgoing(TriangleMultiplicativeUpdate):
    """Triangle multiplicative update using outgoing edges (AF3 Algorithm 12)."""

    def __init__(self, c_z: int, c_hidden: int) -> None:
        super().__init__(c_z, c_hidden, outgoing=True)


class TriangleMultiplicationIncoming(TriangleMultiplicativeUpdate):
    """Triangle multiplicative update using incoming edges (AF3 Algorithm 13)."""

    def __init__(self, c_z: int, c_hidden: int) -> None:
        super().__init__(c_z, c_hidden, outgoing=False)


class TriangleAttention(nn.Module):
    """Triangle attention around the starting node (AF3 Algorithm 14), or the ending node.

    With `starting=False` it is OpenFold3's `tri_att_end`: z and the mask are transposed, and the
    triangle bias is taken from the untransposed pair, b_ik (the supplement's Algorithm 15 has
    b_ki). Returns the update; rows are attended `chunk_size` at a time, or where that is unset
    and the attention is not fused, as many as keep the scores within `SCORES_BYTES`.
    """

    def __init__(self, c_in: int, c_hidden: int, no_heads: int, starting: bool = True,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.starting = starting
        self.inf = inf
        self.layer_norm = LayerNorm(c_in)
        self.linear_z = Linear(c_in, no_heads, bias=False)
        self.mha = Attention(c_in, c_in, c_in, c_hidden, no_heads, gating=True)

    def _rows(self, x: mx.array, bias: mx.array) -> mx.array:
        """x: [*, I, J, C], bias: [*, 1, H, J, J] (the triangle bias and the key mask)."""
        return self.mha(x, x, [bias])

    def __call__(self, z: mx.array, mask: mx.array | None = None,
                 chunk_size: int | None = None) -> mx.array:
        """z: [*, N, N, C_in], mask: [*, N, N] -> the update [*, N, N, C_in].

        The mask is the outer product of a token mask (as OpenFold3 builds the pair mask), so
        the keys a row may attend are the same for every unmasked row: the key mask joins the
        triangle bias as one [*, H, J, J] bias, not a bias as large as the scores. A masked
        row's output (OpenFold3's is as meaningless) then differs from OpenFold3's; nothing
        unmasked ever reads it.
        """
        if mask is None:
            mask = mx.ones(z.shape[:-1], dtype=z.dtype)
        x = self.layer_norm(z)
        triangle_bias = mx.moveaxis(self.linear_z(x), -1, -3)  # b_ij: [*, H, I, J]
        if not self.starting:
            x, mask = mx.swapaxes(x, -2, -3), mx.swapaxes(mask, -1, -2)
        key_mask = mx.max(mask, axis=-2)  # [*, J]: the keys of every unmasked row
        bias = triangle_bias + (self.inf * (key_mask - 1))[..., None, None, :]
        if chunk_size is None and not is_fused(x.dtype):  # scores [*, I, H, J, J], I rows
            row_bytes = math.prod(x.shape[:-3]) * self.mha.no_heads * x.shape[-2] ** 2 * x.dtype.size
            chunk_size = rows_within(x.shape[-3], row_bytes)
        x = chunked(self._rows, [x], chunk_size, axis=-3, broadcast=[bias[..., None, :, :, :]])
        return x if self.starting else mx.swapaxes(x, -2, -3)
