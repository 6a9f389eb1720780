"""Parity of the MSA module with OpenFold3's: embedder and sampling, outer product mean,
pair-weighted averaging, blocks and stack; and chunking that changes nothing."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch
from openfold3.core.model.feature_embedders.input_embedders import (
    MSAModuleEmbedder as TorchMSAModuleEmbedder,
)
from openfold3.core.model.latent.msa_module import MSAModuleBlock as TorchMSAModuleBlock
from openfold3.core.model.latent.msa_module import MSAModuleStack as TorchMSAModuleStack
from openfold3.core.model.layers.msa import (
    MSAPairWeightedAveraging as TorchMSAPairWeightedAveraging,
)
from openfold3.core.model.layers.outer_product_mean import (
    OuterProductMean as TorchOuterProductMean,
)
from openfold3.projects.of3_all_atom.config import linear_init_config as lin_init

from foldscreen.model.batch import to_mlx_batch
from foldscreen.model.msa import (
    MSAModuleBlock,
    MSAModuleEmbedder,
    MSAModuleStack,
    MSAPairWeightedAveraging,
    OuterProductMean,
)

from .parity import TOLERANCE, featurised_batch, inputs, mask, port, randomise, relative_error

N_SEQ, N, C_M, C_Z = 5, 11, 8, 16  # odd N

# Small versions of OpenFold3's architecture.msa.msa_module config.
STACK_CONFIG = dict(c_m=C_M, c_z=C_Z, c_hidden_msa_att=4, c_hidden_opm=4, c_hidden_mul=8,
                    c_hidden_pair_att=4, no_heads_msa=2, no_heads_pair=2, transition_type="swiglu",
                    transition_n=2, msa_dropout=0.15, pair_dropout=0.25, opm_first=True,
                    fuse_projection_weights=False, blocks_per_ckpt=None, inf=1e9, eps=1e-8,
                    linear_init_params=lin_init.msa_module_init, tune_chunk_size=False)
BLOCK_KEYS = ("c_m", "c_z", "c_hidden_msa_att", "c_hidden_opm", "c_hidden_mul",
              "c_hidden_pair_att", "no_heads_msa", "no_heads_pair", "transition_n", "inf")


def msa_inputs(seed: int = 0):
    """m, z, an MSA mask with one empty row and masked tokens, and the pair mask."""
    m = inputs(1, N_SEQ, N, C_M, seed=seed)
    z = inputs(1, N, N, C_Z, seed=seed + 1)
    msa_mask_t, _ = mask(1, N_SEQ, N, seed=seed + 2, p_masked=0.3)
    msa_mask_t[:, 3] = 0.0  # an empty row
    token_t, _ = mask(1, N, seed=seed + 3, p_masked=0.3)
    pair_t = token_t[..., :, None] * token_t[..., None, :]
    return m, z, (msa_mask_t, mx.array(msa_mask_t.numpy())), (pair_t, mx.array(pair_t.numpy()))


def test_outer_product_mean():
    reference = randomise(TorchOuterProductMean(C_M, C_Z, 4, linear_init_params=lin_init.opm_init))
    ours = port(reference, OuterProductMean(C_M, C_Z, 4))
    (m_t, m_m), _, (mask_t, mask_m), _ = msa_inputs()
    with torch.no_grad():
        expected = reference(m_t, mask=mask_t)
    whole = ours(m_m, mask_m)
    assert relative_error(whole, expected) <= TOLERANCE
    for size in (3, 4):
        assert relative_error(ours(m_m, mask_m, chunk_size=size), expected) <= TOLERANCE
        assert relative_error(ours(m_m, mask_m, chunk_size=size), torch.from_numpy(
            np.asarray(whole))) <= 1e-6


def test_pair_weighted_averaging():
    reference = randomise(TorchMSAPairWeightedAveraging(
        C_M, 4, C_Z, 2, inf=1e9, linear_init_params=lin_init.msa_pair_avg_init))
    ours = port(reference, MSAPairWeightedAveraging(C_M, 4, C_Z, 2, inf=1e9))
    (m_t, m_m), (z_t, z_m), _, (pair_t, pair_m) = msa_inputs(seed=10)
    with torch.no_grad():
        expected = reference(m_t, z=z_t, mask=pair_t)
    whole = ours(m_m, z_m, pair_m)
    assert relative_error(whole, expected) <= TOLERANCE
    for size in (2, 4):
        chunked = ours(m_m, z_m, pair_m, chunk_size=size)
        assert relative_error(chunked, torch.from_numpy(np.asarray(whole))) <= 1e-6


@pytest.mark.parametrize("opm_first, last_block", [(True, False), (True, True), (False, True)])
def test_msa_module_block(opm_first, last_block):
    config = {key: value for key, value in STACK_CONFIG.items()
              if key not in ("blocks_per_ckpt", "tune_chunk_size")}
    config["opm_first"] = opm_first
    reference = randomise(TorchMSAModuleBlock(**config, last_block=last_block), seed=1)
    ours = port(reference, MSAModuleBlock(**{key: config[key] for key in BLOCK_KEYS},
                                          opm_first=opm_first, last_block=last_block))
    has_msa_update = not (opm_first and last_block)
    assert any(key.startswith("msa_att_row") for key in reference.state_dict()) == has_msa_update
    (m_t, m_m), (z_t, z_m), (msa_t, msa_m), (pair_t, pair_m) = msa_inputs(seed=20)
    with torch.no_grad():
        m_ref, z_ref = reference(m_t, z_t, msa_mask=msa_t, pair_mask=pair_t)
    m_out, z_out = ours(m_m, z_m, msa_m, pair_m)
    assert relative_error(z_out, z_ref, pair_m) <= TOLERANCE
    assert relative_error(m_out, m_ref, mx.max(pair_m, axis=-2)[:, None]) <= TOLERANCE
    assert has_msa_update == (relative_error(m_out, m_t) > 0.1)


def test_msa_module_stack_and_chunking():
    reference = randomise(TorchMSAModuleStack(**STACK_CONFIG, no_blocks=2), seed=2)
    ours = port(reference, MSAModuleStack.from_config({**STACK_CONFIG, "no_blocks": 2}))
    (m_t, m_m), (z_t, z_m), (msa_t, msa_m), (pair_t, pair_m) = msa_inputs(seed=30)
    with torch.no_grad():
        expected = reference(m_t, z_t, msa_mask=msa_t, pair_mask=pair_t)
    whole = ours(m_m, z_m, msa_m, pair_m)
    assert relative_error(whole, expected, pair_m) <= TOLERANCE
    chunked = ours(m_m, z_m, msa_m, pair_m, chunk_size=4)
    assert relative_error(chunked, torch.from_numpy(np.asarray(whole))) <= 1e-6


@pytest.fixture(scope="module")
def featurised(tmp_path_factory):
    """OpenFold3's inference batch for two protein chains (7 + 4 = 11 tokens), query-only MSAs."""
    return featurised_batch(tmp_path_factory.mktemp("msa_batch"), {"A": "MKTAYIA", "B": "GSHM"})


EMBEDDER_CONFIG = dict(c_m_feats=34, c_m=C_M, c_s_input=20, subsample_main_msa=False,
                       subsample_all_msa=True, min_subsampled_all_msa=1024,
                       max_subsampled_all_msa=1024)


def embedder_pair(config):
    reference = randomise(TorchMSAModuleEmbedder(
        **config, linear_init_params=lin_init.msa_module_emb_init), seed=3)
    return reference, port(reference, MSAModuleEmbedder.from_config(config))


def test_embedder_on_a_featurised_batch(featurised):
    reference, ours = embedder_pair(EMBEDDER_CONFIG)
    s_t, s_m = inputs(1, N, 20, seed=40)
    with torch.no_grad():
        m_ref, mask_ref = reference(featurised, s_t)
    m_out, mask_out = ours(to_mlx_batch(featurised), s_m)
    assert m_out.shape == (1, 2, N, C_M)
    assert relative_error(m_out, m_ref) <= TOLERANCE
    assert np.array_equal(np.asarray(mask_out), mask_ref.numpy())


def random_msa_batch(seed: int):
    """Six rows of random MSA features; rows 2 and 4 are empty (masked everywhere)."""
    rng = np.random.default_rng(seed)
    msa = np.eye(32, dtype=np.int32)[rng.integers(0, 32, (1, 6, N))]
    msa_mask = (rng.random((1, 6, N)) > 0.2).astype(np.float32)
    msa_mask[:, :, 0] = 1.0
    msa_mask[:, [2, 4]] = 0.0
    arrays = dict(msa=msa, msa_mask=msa_mask,
                  has_deletion=(rng.random((1, 6, N)) > 0.7).astype(np.float32),
                  deletion_value=rng.random((1, 6, N)).astype(np.float32))
    return ({k: torch.from_numpy(v.copy()) for k, v in arrays.items()},
            {k: mx.array(v) for k, v in arrays.items()})


@pytest.mark.parametrize("depth", [3, 5, 8])  # fewer, more than the non-empty rows, all rows
def test_embedder_sampling_follows_openfold3(depth):
    config = {**EMBEDDER_CONFIG, "min_subsampled_all_msa": depth, "max_subsampled_all_msa": depth}
    reference, ours = embedder_pair(config)
    batch_t, batch_m = random_msa_batch(seed=depth)
    s_t, s_m = inputs(1, N, 20, seed=41)
    torch.manual_seed(0)  # a seed whose permutations are not the identity, at every depth
    with torch.no_grad():
        m_ref, mask_ref = reference(batch_t, s_t)
    torch.manual_seed(0)
    torch.randint(depth, depth + 1, (1,))  # OpenFold3 draws the depth first
    m_out, mask_out = ours(batch_m, s_m, permutation=lambda n: torch.randperm(n).numpy())
    assert m_out.shape == (1, min(depth, 6), N, C_M)
    assert relative_error(m_out, m_ref) <= TOLERANCE
    assert np.array_equal(np.asarray(mask_out), mask_ref.numpy())


def test_openfold3_config_builds_the_same_parameters():
    """At OpenFold3's real sizes, every checkpoint key of both modules has its parameter."""
    from openfold3.projects.of3_all_atom.config.model_config import model_config

    msa = model_config.architecture.msa
    port(TorchMSAModuleEmbedder(**msa.msa_module_embedder),
         MSAModuleEmbedder.from_config(msa.msa_module_embedder))
    port(TorchMSAModuleStack(**msa.msa_module), MSAModuleStack.from_config(msa.msa_module))
