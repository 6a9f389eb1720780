"""Parity of the MLX primitives with OpenFold3's, and chunking that changes nothing."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch
from openfold3.core.model.primitives.attention import Attention as TorchAttention
from openfold3.core.model.primitives.normalization import AdaLN as TorchAdaLN
from openfold3.core.model.primitives.normalization import LayerNorm as TorchLayerNorm

from foldscreen.model.primitives import AdaLN, Attention, LayerNorm, attention, chunked, fused_attention
from foldscreen.model.weights import WeightsMismatch, load_state

from .parity import TOLERANCE, inputs, mask, port, randomise, relative_error


@pytest.mark.parametrize("scale, offset", [(True, True), (True, False), (False, False)])
def test_layer_norm(scale, offset):
    reference = randomise(TorchLayerNorm(12, create_scale=scale, create_offset=offset))
    ours = port(reference, LayerNorm(12, create_scale=scale, create_offset=offset))
    x_t, x_m = inputs(3, 7, 12)
    assert relative_error(ours(x_m), reference(x_t)) <= TOLERANCE


def test_adaptive_layer_norm():
    reference = randomise(TorchAdaLN(12, 20))
    ours = port(reference, AdaLN(12, 20))
    (a_t, a_m), (s_t, s_m) = inputs(2, 9, 12), inputs(2, 9, 20, seed=1)
    assert relative_error(ours(a_m, s_m), reference(a_t, s_t)) <= TOLERANCE


def test_gated_attention_with_two_biases_and_a_key_mask():
    reference = randomise(TorchAttention(16, 16, 16, 8, 4, gating=True))
    ours = port(reference, Attention(16, 16, 16, 8, 4, gating=True))
    x_t, x_m = inputs(2, 11, 16)  # odd N
    pair_t, pair_m = inputs(2, 4, 11, 11, seed=1)
    keep_t, keep_m = mask(2, 1, 1, 11, seed=2)
    out_t = reference(x_t, x_t, biases=[pair_t, 1e9 * (keep_t - 1)])
    out_m = ours(x_m, x_m, [pair_m, 1e9 * (keep_m - 1)])
    assert relative_error(out_m, out_t) <= TOLERANCE


@pytest.mark.parametrize("bias_shape", [
    (1, 1, 4, 7, 7),  # one bias for every row and task
    (2, 3, 4, 7, 7),  # a bias per row
    (2, 1, 4, 7, 7),  # a bias per task, the same for its rows (triangle attention, batched)
    (1, 3, 1, 1, 7),  # a key mask per row only: broadcast
    (4, 7, 7),  # fewer axes than the queries
])
def test_fused_attention_equals_the_plain_one_whatever_the_bias_broadcasts_over(bias_shape):
    """The fused kernel's rank-4 layout, made from [task, row, H, Q, C] queries. On this CPU
    MLX's fused attention is its own composition of operations, so float32 compares closely;
    in half precision `attention` takes this path."""
    (_, q), (_, k), (_, v) = (inputs(2, 3, 4, 7, 8, seed=seed) for seed in range(3))
    _, bias = inputs(*bias_shape, seed=3)
    expected = attention(q, k, v, [bias])
    assert relative_error(fused_attention(q, k, v, bias), torch.from_numpy(np.asarray(expected))) <= 1e-5
    half = attention(*(x.astype(mx.bfloat16) for x in (q, k, v)), [bias])
    assert half.dtype == mx.bfloat16
    assert relative_error(half.astype(mx.float32), torch.from_numpy(np.asarray(expected))) <= 2e-2


def test_a_missing_or_extra_key_is_named():
    state = randomise(TorchAttention(8, 8, 8, 4, 2)).state_dict()
    state["linear_x.weight"] = state.pop("linear_q.weight")
    named = r"missing \['linear_q.weight'\].*unexpected \['linear_x.weight'\]"
    with pytest.raises(WeightsMismatch, match=named):
        load_state(Attention(8, 8, 8, 4, 2), state)


def test_chunking_changes_nothing():
    x = mx.random.normal((7, 5, 3), key=mx.random.key(0))
    y = mx.random.normal((3,), key=mx.random.key(1))
    whole = chunked(lambda a, b: mx.tanh(a) * b, [x], None, axis=0, broadcast=[y])
    for size in (1, 2, 3, 7):
        parts = chunked(lambda a, b: mx.tanh(a) * b, [x], size, axis=0, broadcast=[y])
        assert mx.array_equal(parts, whole)
