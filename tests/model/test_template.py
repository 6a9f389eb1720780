"""Parity of the template embedder with OpenFold3's, on an inference batch's empty template
slots and on random template features; and chunking that changes nothing."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch
from ml_collections import ConfigDict
from openfold3.core.model.feature_embedders.template_embedders import (
    TemplatePairEmbedderAllAtom as TorchTemplatePairEmbedder,
)
from openfold3.core.model.latent.template_module import (
    TemplateEmbedderAllAtom as TorchTemplateEmbedder,
)
from openfold3.core.model.latent.template_module import TemplatePairStack as TorchTemplatePairStack
from openfold3.projects.of3_all_atom.config import linear_init_config as lin_init

from foldscreen.model.batch import to_mlx_batch
from foldscreen.model.template import (
    TEMPLATE_FEATURES,
    TemplateEmbedderAllAtom,
    TemplatePairEmbedderAllAtom,
    TemplatePairStack,
)

from .parity import TOLERANCE, featurised_batch, inputs, mask, port, randomise, relative_error

N, C_T, C_Z = 11, 8, 16  # odd N: chains of 7 and 4 tokens

# A small version of OpenFold3's architecture.template config.
CONFIG = dict(
    c_t=C_T, c_z=C_Z, linear_init_params=lin_init.templ_module_init,
    template_pair_embedder=dict(c_in=C_Z, c_dgram=39, c_aatype=32, c_out=C_T,
                                linear_init_params=lin_init.templ_pair_feat_emb_init),
    template_pair_stack=dict(c_t=C_T, c_hidden_tri_att=4, c_hidden_tri_mul=8, no_blocks=2,
                             no_heads=2, transition_type="swiglu", pair_transition_n=2,
                             dropout_rate=0.25, tri_mul_first=True, fuse_projection_weights=False,
                             blocks_per_ckpt=None, ckpt_per_template=False, inf=1e9,
                             linear_init_params=lin_init.pair_block_init, use_reentrant=False,
                             clear_cache_between_blocks=False, tune_chunk_size=False))


@pytest.fixture(scope="module")
def featurised(tmp_path_factory):
    """OpenFold3's inference batch for two protein chains (7 + 4 = 11 tokens), no templates."""
    batch = featurised_batch(tmp_path_factory.mktemp("template_batch"), {"A": "MKTAYIA", "B": "GSHM"})
    return {key: batch[key] for key in (*TEMPLATE_FEATURES, "asym_id", "token_mask")}


def random_templates(featurised, seed: int, n_templ: int = 3):
    """Random template features of every kind, with the batch's two chains and masked tokens."""
    rng = np.random.default_rng(seed)
    shape = (1, n_templ, N)
    distances = rng.integers(0, 39, (*shape, N))
    unit = rng.standard_normal((*shape, N, 3))
    features = dict(
        template_restype=np.eye(32, dtype=np.int32)[rng.integers(0, 32, shape)],
        template_pseudo_beta_mask=(rng.random(shape) > 0.2).astype(np.float32),
        template_backbone_frame_mask=(rng.random(shape) > 0.2).astype(np.float32),
        template_distogram=np.eye(39, dtype=np.float32)[distances],
        template_unit_vector=(unit / np.linalg.norm(unit, axis=-1, keepdims=True)).astype(
            np.float32))
    batch = {key: torch.from_numpy(value) for key, value in features.items()}
    token_mask = (rng.random((1, N)) > 0.2).astype(np.float32)
    token_mask[:, 0] = 1.0
    return {**batch, "asym_id": featurised["asym_id"],
            "token_mask": torch.from_numpy(token_mask)}


def both(batch_t):
    return batch_t, to_mlx_batch(batch_t)


@pytest.mark.parametrize("templates", ["empty", "random"])
def test_template_pair_embedder(featurised, templates):
    batch_t, batch_m = both(featurised if templates == "empty" else
                            random_templates(featurised, seed=1))
    config = CONFIG["template_pair_embedder"]
    reference = randomise(TorchTemplatePairEmbedder(**config))
    ours = port(reference, TemplatePairEmbedderAllAtom.from_config(config))
    z_t, z_m = inputs(1, N, N, C_Z, seed=2)
    with torch.no_grad():
        expected = reference(batch_t, z_t)
    out = ours(batch_m, z_m)
    assert out.shape == tuple(expected.shape)
    assert relative_error(out, expected) <= TOLERANCE


def test_template_pair_stack_and_chunking():
    config = CONFIG["template_pair_stack"]
    reference = randomise(TorchTemplatePairStack(**config), seed=3)
    ours = port(reference, TemplatePairStack.from_config(config))
    t_t, t_m = inputs(1, 3, N, N, C_T, seed=4)
    token_t, token_m = mask(1, N, seed=5, p_masked=0.3)
    pair_t = (token_t[..., :, None] * token_t[..., None, :])[..., None, :, :]
    pair_m = (token_m[..., :, None] * token_m[..., None, :])[..., None, :, :]
    with torch.no_grad():
        expected = reference(t_t, pair_t)
    whole = ours(t_m, pair_m)
    assert relative_error(whole, expected, pair_m) <= TOLERANCE
    chunked = ours(t_m, pair_m, chunk_size=4)
    assert relative_error(chunked, torch.from_numpy(np.asarray(whole))) <= 1e-6


@pytest.mark.parametrize("templates", ["empty", "random"])
def test_template_embedder(featurised, templates):
    batch_t, batch_m = both(featurised if templates == "empty" else
                            random_templates(featurised, seed=6))
    reference = randomise(TorchTemplateEmbedder(ConfigDict(CONFIG)), seed=7)
    ours = port(reference, TemplateEmbedderAllAtom.from_config(CONFIG))
    token_t, token_m = batch_t["token_mask"], batch_m["token_mask"]
    pair_t = token_t[..., :, None] * token_t[..., None, :]
    pair_m = token_m[..., :, None] * token_m[..., None, :]
    z_t, z_m = inputs(1, N, N, C_Z, seed=8)
    with torch.no_grad():
        expected = reference(batch_t, z_t, pair_t)
    whole = ours(batch_m, z_m, pair_m)
    assert relative_error(whole, expected, pair_m) <= TOLERANCE
    chunked = ours(batch_m, z_m, pair_m, chunk_size=3)
    assert relative_error(chunked, torch.from_numpy(np.asarray(whole))) <= 1e-6


def test_empty_template_slots_still_count(featurised):
    """OpenFold3 averages over every slot: an extra empty slot changes the result."""
    batch_t = random_templates(featurised, seed=9, n_templ=1)
    ours = port(randomise(TorchTemplateEmbedder(ConfigDict(CONFIG)), seed=10),
                TemplateEmbedderAllAtom.from_config(CONFIG))
    padded = {key: torch.cat([batch_t[key], featurised[key][:, :1]], dim=1)
              for key in TEMPLATE_FEATURES}
    _, z = inputs(1, N, N, C_Z, seed=11)
    pair = mx.ones((1, N, N))
    one = ours(to_mlx_batch(batch_t), z, pair)
    two = ours(to_mlx_batch({**batch_t, **padded}), z, pair)
    assert relative_error(two, torch.from_numpy(np.asarray(one))) > 0.01


def test_openfold3_config_builds_the_same_parameters():
    """At OpenFold3's real sizes, every checkpoint key has its parameter."""
    from openfold3.projects.of3_all_atom.config.model_config import model_config

    template = model_config.architecture.template
    port(TorchTemplateEmbedder(template), TemplateEmbedderAllAtom.from_config(template))
