"""The whole MLX OpenFold3 against OpenFold3's own model: same weights, features and noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foldscreen.inference.model_config import model_config
from foldscreen.inference.settings import InferenceSettings
from foldscreen.model.batch import to_mlx_batch
from foldscreen.model.openfold3 import OpenFold3
from foldscreen.model.weights import load_state, module_state

from .parity import randomise
from .test_diffusion import Recorded, serve_to_torch
from .test_trunk import complex_batch

SETTINGS = InferenceSettings(samples=2, diffusion_steps=3, recycles=1)
AGGREGATED = ("gpde", "ptm", "iptm", "disorder", "has_clash", "sample_ranking_score")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """OpenFold3's outputs and the MLX model's, with the noise OpenFold3 drew fed to MLX."""
    from openfold3.projects.of3_all_atom.model import OpenFold3 as TorchOpenFold3

    config = model_config(SETTINGS)
    reference = randomise(TorchOpenFold3(config), seed=5)
    batch = complex_batch(tmp_path_factory.mktemp("e2e"))
    ours = OpenFold3(config.architecture)
    load_state(ours, module_state(reference.state_dict()))
    draws = Recorded((1, SETTINGS.samples, batch["atom_mask"].shape[-1], 3), SETTINGS.diffusion_steps)
    with pytest.MonkeyPatch.context() as patch:
        queue = serve_to_torch(patch, draws.torch_queue())
        with torch.no_grad():
            batch_t, outputs_t = reference(dict(batch))
        assert not queue  # every draw OpenFold3 made came from the recorded ones
    outputs_m = ours(to_mlx_batch(batch), seed=0, draws=draws)
    outputs_m = {k: torch.from_numpy(np.array(v)) for k, v in outputs_m.items()}
    return config, batch_t, outputs_t, outputs_m


def test_sampled_coordinates_agree_to_a_thousandth_of_an_angstrom(both):
    _, _, outputs_t, outputs_m = both
    difference = outputs_m["atom_positions_predicted"] - outputs_t["atom_positions_predicted"]
    rms = difference.square().sum(-1).mean(-1).sqrt()  # per sample
    assert rms.shape == (1, SETTINGS.samples)
    assert float(rms.max()) <= 1e-3


def test_every_aggregated_confidence_agrees(both):
    from openfold3.core.metrics.aggregate_confidence_ranking import get_confidence_scores

    config, batch_t, outputs_t, outputs_m = both
    scores_t, scores_m = (get_confidence_scores(batch=batch_t, outputs=outputs, config=config,
                                                compute_per_sample=False)
                          for outputs in (outputs_t, outputs_m))
    for name in AGGREGATED:
        np.testing.assert_allclose(scores_m[name].numpy(), scores_t[name].numpy(), atol=1e-4, err_msg=name)
    for name in ("chain_ptm", "chain_pair_iptm", "bespoke_iptm"):
        assert scores_m[name].keys() == scores_t[name].keys()
        for key in scores_t[name]:
            np.testing.assert_allclose(np.asarray(scores_m[name][key]), np.asarray(scores_t[name][key]),
                                       atol=1e-4, err_msg=f"{name} {key}")
    plddt_m, plddt_t = scores_m["plddt"].numpy(), scores_t["plddt"].numpy()
    np.testing.assert_allclose(plddt_m.mean(-1), plddt_t.mean(-1), atol=1e-4)  # avg_plddt
    np.testing.assert_allclose(plddt_m, plddt_t, atol=1e-3)


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """The demo architecture with random weights in MLX, and a featurised complex."""
    from openfold3.projects.of3_all_atom.model import OpenFold3 as TorchOpenFold3

    config = model_config(SETTINGS)
    state = module_state(randomise(TorchOpenFold3(config), seed=6).state_dict())
    batch = to_mlx_batch(complex_batch(tmp_path_factory.mktemp("compiled")))
    return config, state, batch


def mlx_model(config, state, compiled: bool = False) -> OpenFold3:
    model = OpenFold3(config.architecture, compiled=compiled)
    load_state(model, state)
    return model


def relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_a_compiled_model_equals_the_uncompiled_one(demo_model):
    config, state, batch = demo_model
    plain = mlx_model(config, state)(batch, seed=3)
    compiled = mlx_model(config, state, compiled=True)
    for _ in range(2):  # the second call reuses the traced graph
        outputs = compiled(batch, seed=3)
        for key in ("atom_positions_predicted", "plddt_logits", "pae_logits"):
            assert relative(outputs[key], plain[key]) <= 1e-5, key


def test_bfloat16_trunk_and_transformer_stay_close_to_float32(demo_model):
    import mlx.core as mx

    config, state, batch = demo_model
    exact = mlx_model(config, state)(batch, seed=3)
    model = mlx_model(config, state)
    model.set_precision(mx.bfloat16)
    assert model.pairformer_stack.blocks[0].single_transition.linear_out.weight.dtype == mx.bfloat16
    low = model(batch, seed=3)
    assert low["atom_positions_predicted"].dtype == mx.float32
    trunk = relative(low["zij_trunk"], exact["zij_trunk"])
    assert 0 < trunk <= 5e-2  # bfloat16 really ran, and stayed close
    positions = np.asarray(low["atom_positions_predicted"]) - np.asarray(exact["atom_positions_predicted"])
    assert np.sqrt((positions**2).sum(-1).mean()) <= 1.0  # angstrom RMS, random weights


def test_a_padded_task_gives_the_unpadded_answer(demo_model):
    config, state, batch = demo_model
    model = mlx_model(config, state)
    n_token, n_atom = batch["token_mask"].shape[-1], batch["atom_mask"].shape[-1]
    plain = model(batch, seed=4)
    padded = model(batch, seed=4, padded=(n_token + 13, n_atom + 70))
    for key, value in plain.items():
        assert padded[key].shape == value.shape, key
        assert relative(padded[key], value) <= 1e-5, key


def test_size_buckets_bound_the_padding():
    from foldscreen.model.buckets import atom_bucket, token_bucket

    for n in range(1, 3000, 7):
        assert n <= token_bucket(n) <= max(64, n * 1.25 + 16) and token_bucket(n) % 16 == 0
        assert n <= atom_bucket(n) <= max(32, n * 1.25 + 32) and atom_bucket(n) % 32 == 0
    assert len({token_bucket(n) for n in range(100, 400)}) <= 10  # few graphs for many sizes


def test_a_batched_task_equals_the_same_task_alone(demo_model, tmp_path):
    from foldscreen.contracts import Chain
    from foldscreen.inference.featurise import featurise, query_set

    config, state, batch = demo_model
    chains = (Chain("protein", ("A",), sequence="MKVLAAGIVGLLLAQW"),)
    other = to_mlx_batch(featurise(query_set("mono", chains, {}), "mono", 3, tmp_path))
    assert other["msa_mask"].shape[1] != batch["msa_mask"].shape[1]  # MSAs of different depths
    for compiled in (False, True):
        model = mlx_model(config, state, compiled=compiled)
        alone, other_alone = model(batch, seed=4), model(other, seed=9)
        together = model.predict([other, batch], [9, 4])
        for key, value in alone.items():
            assert together[1][key].shape == value.shape, key
            assert relative(together[1][key], value) <= 1e-5, key
            assert relative(together[0][key], other_alone[key]) <= 1e-5, key
    # A seed gives the same structures whatever it is batched with; another seed, others.
    twice = mlx_model(config, state).predict([batch, batch], [4, 5])
    positions = "atom_positions_predicted"
    assert relative(twice[0][positions], alone[positions]) <= 1e-5
    assert relative(twice[1][positions], alone[positions]) > 1e-2
