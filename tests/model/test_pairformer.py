"""Parity of the transition, triangle updates, pair stack and PairFormer with OpenFold3's."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch
from mlx.utils import tree_flatten
from openfold3.core.model.latent.base_blocks import PairBlock as TorchPairBlock
from openfold3.core.model.latent.pairformer import PairFormerBlock as TorchPairFormerBlock
from openfold3.core.model.latent.pairformer import PairFormerStack as TorchPairFormerStack
from openfold3.core.model.latent.template_module import TemplatePairBlock
from openfold3.core.model.layers.attention_pair_bias import (
    AttentionPairBias as TorchAttentionPairBias,
)
from openfold3.core.model.layers.transition import SwiGLUTransition
from openfold3.core.model.layers.triangular_attention import (
    TriangleAttention as TorchTriangleAttention,
)
from openfold3.core.model.layers.triangular_multiplicative_update import (
    TriangleMultiplicationIncoming as TorchTriangleMultiplicationIncoming,
)
from openfold3.core.model.layers.triangular_multiplicative_update import (
    TriangleMultiplicationOutgoing as TorchTriangleMultiplicationOutgoing,
)
from openfold3.projects.of3_all_atom.config.model_config import model_config

from foldscreen.model.pairformer import AttentionPairBias, PairBlock, PairFormerBlock, PairFormerStack
from foldscreen.model.transition import Transition
from foldscreen.model.triangle import (
    TriangleAttention,
    TriangleMultiplicationIncoming,
    TriangleMultiplicationOutgoing,
)

from .parity import TOLERANCE, inputs, mask, port, randomise, relative_error

B, N = 2, 11  # batch and an odd token count
C_S, C_Z, C_MUL, C_ATT, HEADS, N_TRANS = 24, 16, 12, 8, 2, 2
PAIRFORMER = dict(c_s=C_S, c_z=C_Z, c_hidden_pair_bias=6, no_heads_pair_bias=4,
                  c_hidden_mul=C_MUL, c_hidden_pair_att=C_ATT, no_heads_pair=HEADS,
                  transition_n=N_TRANS, inf=1e9)
TORCH_ONLY = dict(transition_type="swiglu", pair_dropout=0.25, fuse_projection_weights=False)


def token_masks(seed: int = 3):
    """A token mask [B, N] with some tokens masked and its pair mask, for both frameworks."""
    single_t, single_m = mask(B, N, seed=seed, p_masked=0.3)
    assert 0 < float(single_m.sum()) < B * N
    return (single_t, single_m), (single_t[..., :, None] * single_t[..., None, :],
                                  single_m[..., :, None] * single_m[..., None, :])


def drift(chunked: mx.array, whole: mx.array) -> float:
    """||chunked - whole|| / ||whole||."""
    a, b = np.asarray(chunked, dtype=np.float64), np.asarray(whole, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("shape", [(B, N, C_S), (B, N, N, C_Z)])
def test_transition(shape):
    reference = randomise(SwiGLUTransition(shape[-1], N_TRANS))
    ours = port(reference, Transition(shape[-1], N_TRANS))
    x_t, x_m = inputs(*shape)
    keep_t, keep_m = mask(*shape[:-1], seed=1)
    with torch.no_grad():
        out_t = reference(x_t, mask=keep_t)
    out_m = ours(x_m, keep_m)
    assert relative_error(out_m, out_t) <= TOLERANCE
    assert float(mx.abs(out_m * (1 - keep_m[..., None])).max()) == 0.0
    assert drift(ours(x_m, keep_m, chunk_size=3), out_m) <= 1e-6


@pytest.mark.parametrize("outgoing", [True, False])
def test_triangle_multiplication(outgoing):
    torch_class = (TorchTriangleMultiplicationOutgoing if outgoing
                   else TorchTriangleMultiplicationIncoming)
    mlx_class = TriangleMultiplicationOutgoing if outgoing else TriangleMultiplicationIncoming
    reference = randomise(torch_class(C_Z, C_MUL))
    ours = port(reference, mlx_class(C_Z, C_MUL))
    z_t, z_m = inputs(B, N, N, C_Z)
    keep_t, keep_m = mask(B, N, N, seed=1)
    with torch.no_grad():
        out_t = reference(z_t, mask=keep_t, inplace_safe=False)
    out_m = ours(z_m, keep_m)
    assert relative_error(out_m, out_t) <= TOLERANCE
    assert drift(ours(z_m, keep_m, chunk_size=4), out_m) <= 1e-6


@pytest.mark.parametrize("starting", [True, False])
def test_triangle_attention(starting):
    """The ending node is checked against OpenFold3's pair stack usage: z and the mask
    transposed, `transpose_bias=True`, the output transposed back."""
    reference = randomise(TorchTriangleAttention(C_Z, C_ATT, HEADS))
    ours = port(reference, TriangleAttention(C_Z, C_ATT, HEADS, starting=starting))
    z_t, z_m = inputs(B, N, N, C_Z)
    (_, _), (keep_t, keep_m) = token_masks()
    with torch.no_grad():
        if starting:
            out_t = reference(z_t, mask=keep_t)
        else:
            out_t = reference(z_t.transpose(-2, -3), mask=keep_t.transpose(-1, -2),
                              transpose_bias=True).transpose(-2, -3)
    out_m = ours(z_m, keep_m)
    assert relative_error(out_m, out_t, keep_m) <= TOLERANCE
    assert drift(ours(z_m, keep_m, chunk_size=3), out_m) <= 1e-6


def test_unfused_triangle_attention_bounds_its_scores_unless_a_chunk_size_is_set(monkeypatch):
    """Without a chunk size, float32 triangle attention attends as many rows at once as keep
    its scores within SCORES_BYTES (16 GB a tensor at 1,000 tokens otherwise): the same update;
    a set chunk size wins, and half precision (fused: no scores held) is never chunked."""
    from foldscreen.model import primitives, triangle

    assert primitives.rows_within(1000, 4 * 1000**2 * 4) == 16  # 1,000 tokens, 4 heads
    assert primitives.rows_within(384, 4 * 384**2 * 4) == 113  # 384 tokens: 4 chunks
    assert primitives.rows_within(256, 4 * 256**2 * 4) is None  # up to 256 tokens, no chunks
    ours = port(randomise(TorchTriangleAttention(C_Z, C_ATT, HEADS)), TriangleAttention(C_Z, C_ATT, HEADS))
    _, z_m = inputs(B, N, N, C_Z)
    _, (_, keep_m) = token_masks()
    whole = ours(z_m, keep_m)
    sizes = []

    def recorded(fn, arrays, chunk_size, **kwargs):
        sizes.append(chunk_size)
        return primitives.chunked(fn, arrays, chunk_size, **kwargs)

    monkeypatch.setattr(triangle, "chunked", recorded)
    monkeypatch.setattr(primitives, "SCORES_BYTES", 3 * B * HEADS * N * N * 4)  # 3 rows of scores
    assert drift(ours(z_m, keep_m), whole) <= 1e-6
    ours(z_m, keep_m, chunk_size=5)
    ours.set_dtype(mx.bfloat16)
    ours(z_m.astype(mx.bfloat16), keep_m)
    assert sizes == [3, 5, None]


def test_attention_with_pair_bias():
    reference = randomise(TorchAttentionPairBias(C_S, C_S, C_S, C_S, C_Z, 6, 4))
    ours = port(reference, AttentionPairBias(C_S, C_Z, 6, 4))
    (s_t, s_m), (z_t, z_m) = inputs(B, N, C_S), inputs(B, N, N, C_Z, seed=1)
    (keep_t, keep_m), _ = token_masks()
    with torch.no_grad():
        out_t = reference(s_t, z_t, mask=keep_t, use_high_precision_attention=True)
    assert relative_error(ours(s_m, z_m, keep_m), out_t) <= TOLERANCE


def pair_block_kwargs():
    return dict(c_z=C_Z, c_hidden_mul=C_MUL, c_hidden_pair_att=C_ATT, no_heads_pair=HEADS,
                transition_n=N_TRANS, inf=1e9)


def test_pair_block():
    reference = randomise(TorchPairBlock(**pair_block_kwargs(), **TORCH_ONLY))
    ours = port(reference, PairBlock(**pair_block_kwargs()))
    z_t, z_m = inputs(B, N, N, C_Z)
    _, (keep_t, keep_m) = token_masks()
    with torch.no_grad():
        out_t = reference(z_t, keep_t)
    out_m = ours(z_m, keep_m)
    assert relative_error(out_m, out_t, keep_m) <= TOLERANCE
    assert drift(ours(z_m, keep_m, chunk_size=4), out_m) <= 1e-6


@pytest.mark.parametrize("tri_mul_first", [True, False])
def test_pair_block_as_template_pair_block(tri_mul_first):
    """The template stack's blocks hold the same keys; all templates go through at once."""
    reference = randomise(TemplatePairBlock(
        c_t=C_Z, c_hidden_tri_mul=C_MUL, c_hidden_tri_att=C_ATT, no_heads=HEADS,
        transition_type="swiglu", pair_transition_n=N_TRANS, dropout_rate=0.25,
        tri_mul_first=tri_mul_first, fuse_projection_weights=False, ckpt_per_template=False,
        inf=1e9))
    ours = port(reference, PairBlock(**pair_block_kwargs(), tri_mul_first=tri_mul_first))
    t_t, t_m = inputs(1, 2, N, N, C_Z)  # [batch, templates, N, N, C_t]
    _, (keep_t, keep_m) = token_masks()
    keep_t = keep_t[:1, None].expand(1, 2, N, N)  # one token mask for both templates
    keep_m = mx.broadcast_to(keep_m[:1, None], (1, 2, N, N))
    with torch.no_grad():
        out_t = reference(t_t, keep_t)
    assert relative_error(ours(t_m, keep_m), out_t, keep_m) <= TOLERANCE


def assert_single_and_pair_agree(reference, ours):
    """Both modules on the same s, z and masks: s and z agree where unmasked; returns the MLX
    outputs."""
    (s_t, s_m), (z_t, z_m) = inputs(B, N, C_S), inputs(B, N, N, C_Z, seed=1)
    (single_t, single_m), (pair_t, pair_m) = token_masks()
    with torch.no_grad():
        s_out_t, z_out_t = reference(s_t, z_t, single_t, pair_t)
    s_out_m, z_out_m = ours(s_m, z_m, single_m, pair_m)
    assert relative_error(s_out_m, s_out_t, single_m) <= TOLERANCE
    assert relative_error(z_out_m, z_out_t, pair_m) <= TOLERANCE
    return s_out_m, z_out_m


def test_pairformer_block():
    reference = randomise(TorchPairFormerBlock(**PAIRFORMER, **TORCH_ONLY))
    assert_single_and_pair_agree(reference, port(reference, PairFormerBlock(**PAIRFORMER)))


def test_pairformer_stack_of_two_blocks_chunked_or_not():
    reference = randomise(TorchPairFormerStack(**PAIRFORMER, **TORCH_ONLY, no_blocks=2,
                                               blocks_per_ckpt=None))
    ours = port(reference, PairFormerStack(**PAIRFORMER, no_blocks=2))
    s_out_m, z_out_m = assert_single_and_pair_agree(reference, ours)
    (_, s_m), (_, z_m) = inputs(B, N, C_S), inputs(B, N, N, C_Z, seed=1)
    (_, single_m), (_, pair_m) = token_masks()
    s_chunk, z_chunk = ours(s_m, z_m, single_m, pair_m, chunk_size=4)
    assert drift(s_chunk, s_out_m) <= 1e-6
    assert drift(z_chunk, z_out_m) <= 1e-6


def test_from_config_has_openfold3_keys_and_shapes():
    cfg = dict(model_config.architecture.pairformer, no_blocks=1)
    reference = TorchPairFormerStack(**cfg)
    ours = PairFormerStack.from_config(cfg)
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in tree_flatten(ours.parameters())} == expected
