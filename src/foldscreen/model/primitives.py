"""Primitives shared by every part of the network: linear, layer norms, attention, chunking."""

from __future__ import annotations

import collections
import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Sequence

import mlx.core as mx
import mlx.nn as nn


def Linear(c_in: int, c_out: int, bias: bool = True) -> nn.Linear:
    """A linear layer; its `weight` is [c_out, c_in] as in PyTorch and OpenFold3."""
    return nn.Linear(c_in, c_out, bias=bias)


class LayerNorm(nn.Module):
    """Layer norm over the last axis, with or without a learned scale and offset (eps 1e-5)."""

    def __init__(self, c: int, create_scale: bool = True, create_offset: bool = True,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        if create_scale:
            self.weight = mx.ones((c,))
        if create_offset:
            self.bias = mx.zeros((c,))

    def __call__(self, x: mx.array) -> mx.array:
        return mx.fast.layer_norm(x, self.get("weight"), self.get("bias"), self.eps)


class AdaLN(nn.Module):
    """Adaptive layer norm (AF3 Algorithm 26)."""

    def __init__(self, c_a: int, c_s: int) -> None:
        super().__init__()
        self.layer_norm_a = LayerNorm(c_a, create_scale=False, create_offset=False)
        self.layer_norm_s = LayerNorm(c_s, create_offset=False)
        self.linear_g = Linear(c_s, c_a)
        self.linear_s = Linear(c_s, c_a, bias=False)

    def __call__(self, a: mx.array, s: mx.array) -> mx.array:
        a = self.layer_norm_a(a)
        s = self.layer_norm_s(s)
        return mx.sigmoid(self.linear_g(s)) * a + self.linear_s(s)


SCORES_BYTES = 2**28
"""The most bytes of attention scores a triangle attention without a set chunk size holds at
once where its attention is not fused (float32: the template stack and the confidence heads,
even when the trunk runs in bfloat16). At 384 tokens the 4 x 384^3 float32 scores of one call
are 0.9 GiB, and their softmax as much again: 256 MiB attends them in 4 chunks of rows, which
took the heads' peak from 3.5 to 1.9 GiB on the CPU and 384 tokens on the GPU from 8.17 to
7.27 GiB (benchmarks/RESULTS.md, lease L12). At 1,000 tokens the scores are 16 GB a tensor
(lease L10 peaked at 83 GiB). One task of up to 256 tokens is not chunked."""


def is_fused(dtype: mx.Dtype) -> bool:
    """Whether `attention` runs MLX's fused kernel for inputs of `dtype`."""
    return dtype in (mx.bfloat16, mx.float16)


def rows_within(rows: int, bytes_per_row: int) -> int | None:
    """Rows per chunk that keep `bytes_per_row`-byte rows within SCORES_BYTES; None if all fit."""
    if rows * bytes_per_row <= SCORES_BYTES:
        return None
    return max(1, SCORES_BYTES // bytes_per_row)


def attention(q: mx.array, k: mx.array, v: mx.array, biases: Sequence[mx.array]) -> mx.array:
    """softmax(q k^T + sum(biases)) v over [..., H, Q/K, C]; q is already scaled.

    In half precision this is MLX's fused attention (on a CUDA GPU cuDNN's, which never holds
    the [..., H, Q, K] scores). In float32 a single bias is added by the matrix product itself
    (one operation, not two); several are added together with one pass over the scores.
    """
    if biases and is_fused(q.dtype) and k.shape[:-2] == q.shape[:-2] == v.shape[:-2]:
        return fused_attention(q, k, v, sum(biases[1:], biases[0]).astype(q.dtype))
    k_t = mx.swapaxes(k, -1, -2)
    if len(biases) == 1:
        scores = mx.addmm(biases[0], q, k_t)
    else:
        scores = q @ k_t
        for bias in biases:
            scores = scores + bias
    return mx.softmax(scores, axis=-1, precise=True) @ v


def fused_attention(q: mx.array, k: mx.array, v: mx.array, bias: mx.array) -> mx.array:
    """`mx.fast.scaled_dot_product_attention` over any leading axes [*, H, Q/K, C] (q scaled).

    The fused kernel takes rank-4 inputs: the leading axes are flattened where the bias shares
    them or broadcasts over all of them, split along the first axis where it shares only that
    (a batch of tasks whose one bias serves every row or sample), else the bias is broadcast.
    The bias is made row-contiguous before it is broadcast: MLX's CUDA kernel copies a bias
    whose last axis is strided, and a copy of the broadcast one is as large as the scores
    (the transposed pair bias of triangle attention: 8 GB per call at 1,000 tokens in bfloat16).
    """
    bias = mx.contiguous(bias.reshape((1,) * (q.ndim - bias.ndim) + bias.shape))
    lead, bias_lead = q.shape[:-3], bias.shape[:-3]
    if all(n == 1 for n in bias_lead) or bias_lead == lead:
        n = math.prod(lead)
        out = mx.fast.scaled_dot_product_attention(
            q.reshape(n, *q.shape[-3:]), k.reshape(n, *k.shape[-3:]), v.reshape(n, *v.shape[-3:]),
            scale=1.0, mask=bias.reshape(math.prod(bias_lead), *bias.shape[-3:]))
        return out.reshape(*lead, *out.shape[-3:])
    if bias_lead[0] == lead[0]:
        return mx.stack([fused_attention(q[i], k[i], v[i], bias[i]) for i in range(lead[0])])
    return fused_attention(q, k, v, mx.broadcast_to(bias, (*lead, *bias.shape[-3:])))


class Attention(nn.Module):
    """Gated multi-head attention with any number of additive biases (OpenFold3's Attention).

    `c_hidden` is the per-head width; biases broadcast to [*, H, Q, K].
    """

    def __init__(self, c_q: int, c_k: int, c_v: int, c_hidden: int, no_heads: int,
                 gating: bool = True, q_bias: bool = False, o_bias: bool = False) -> None:
        super().__init__()
        self.c_hidden = c_hidden
        self.no_heads = no_heads
        self.linear_q = Linear(c_q, c_hidden * no_heads, bias=q_bias)
        self.linear_k = Linear(c_k, c_hidden * no_heads, bias=False)
        self.linear_v = Linear(c_v, c_hidden * no_heads, bias=False)
        self.linear_o = Linear(c_hidden * no_heads, c_q, bias=o_bias)
        if gating:
            self.linear_g = Linear(c_q, c_hidden * no_heads, bias=False)

    def _heads(self, x: mx.array) -> mx.array:
        """[*, L, H * C] -> [*, H, L, C]"""
        return mx.swapaxes(x.reshape(*x.shape[:-1], self.no_heads, self.c_hidden), -2, -3)

    def __call__(self, q_x: mx.array, kv_x: mx.array, biases: Sequence[mx.array] = ()) -> mx.array:
        q = self._heads(self.linear_q(q_x)) * (1.0 / math.sqrt(self.c_hidden))
        k = self._heads(self.linear_k(kv_x))
        v = self._heads(self.linear_v(kv_x))
        o = mx.swapaxes(attention(q, k, v, biases), -2, -3)  # [*, Q, H, C]
        if "linear_g" in self:
            o = o * mx.sigmoid(self.linear_g(q_x)).reshape(o.shape)
        return self.linear_o(o.reshape(*o.shape[:-2], -1))


QUEUE_DEPTH = 2
"""How many queued evaluations `InFlight` lets the host run ahead of the device by default."""


class InFlight:
    """Queues evaluations so that the host builds the next while the device runs this one, but
    runs at most `depth` ahead: without CUDA graphs MLX's host outruns the GPU, and every queued
    step holds its buffers (65 GiB at 384 tokens with the queue unbounded). Within one
    evaluation MLX itself runs up to about 1,000 kernels ahead; only its memory limit bounds
    that (`inference.memory_limit_gib`)."""

    def __init__(self, depth: int | None = None) -> None:
        self.depth = QUEUE_DEPTH if depth is None else depth
        self.queued: collections.deque[tuple[mx.array, ...]] = collections.deque()

    def push(self, *arrays: mx.array) -> None:
        mx.async_eval(*arrays)
        self.queued.append(arrays)
        if len(self.queued) > self.depth:
            mx.eval(*self.queued.popleft())


_TRACING = contextvars.ContextVar("tracing", default=False)


@contextlib.contextmanager
def tracing() -> Iterator[None]:
    """Calls of compiled graphs: `chunked` code traced here goes into the graph, unevaluated."""
    token = _TRACING.set(True)
    try:
        yield
    finally:
        _TRACING.reset(token)


def chunked(fn: Callable[..., mx.array], inputs: Sequence[mx.array], chunk_size: int | None,
            axis: int, broadcast: Sequence[mx.array] = ()) -> mx.array:
    """fn(*input slices, *broadcast), slicing `inputs` along `axis` in chunks of `chunk_size`.

    Each chunk is evaluated before the next is built (MLX is lazy: without that, chunking does
    not lower the peak memory), except while `tracing` a compiled graph: there the chunks are
    parts of the graph, each chunk's intermediates freed once its output is made.
    `chunk_size=None` runs fn once on the whole inputs.
    """
    length = inputs[0].shape[axis]
    if chunk_size is None or chunk_size >= length:
        return fn(*inputs, *broadcast)
    outputs = []
    for start in range(0, length, chunk_size):
        index = [slice(None)] * inputs[0].ndim
        index[axis] = slice(start, start + chunk_size)
        out = fn(*(x[tuple(index)] for x in inputs), *broadcast)
        if not _TRACING.get():
            mx.eval(out)
        outputs.append(out)
    return mx.concatenate(outputs, axis=axis)
