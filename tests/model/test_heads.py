"""Parity of the confidence and distogram heads with OpenFold3's, on a real featurised complex."""

from __future__ import annotations

import copy

import mlx.core as mx
import numpy as np
import pytest
import torch
from ml_collections import ConfigDict
from mlx.utils import tree_flatten
from openfold3.core.metrics.aggregate_confidence_ranking import get_confidence_scores
from openfold3.core.model.heads.head_modules import (
    AuxiliaryHeadsAllAtom as TorchAuxiliaryHeads,
)
from openfold3.core.model.heads.prediction_heads import (
    PairformerEmbedding as TorchPairformerEmbedding,
)
from openfold3.core.utils.atomize_utils import (
    broadcast_token_feat_to_atoms,
    get_token_representative_atoms,
    max_atom_per_token_masked_select,
)

from foldscreen.inference.model_config import model_config
from foldscreen.inference.settings import InferenceSettings
from foldscreen.model.batch import to_mlx_batch
from foldscreen.model.heads import (
    AtomSlots,
    AuxiliaryHeadsAllAtom,
    distance_one_hot,
    representative_atom_index,
)

from .parity import TOLERANCE, featurised_batch, inputs, port, randomise, relative_error

SAMPLES = 2
LOGITS = ("plddt_logits", "experimentally_resolved_logits", "pde_logits", "pae_logits",
          "distogram_logits")
PAIR_LOGITS = ("pde_logits", "pae_logits", "distogram_logits")


def drift(chunked: mx.array, whole: mx.array) -> float:
    a, b = np.asarray(chunked, dtype=np.float64), np.asarray(whole, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def complex_batch(tmp_path_factory) -> dict:
    """OpenFold3's features of protein + protein (starting with a glycine) + methyl acetate,
    19 tokens and 114 atoms, with the sample axis added as `OpenFold3.forward` adds it."""
    batch = featurised_batch(tmp_path_factory.mktemp("heads"), {"A": "MKTAYIAK", "B": "GSHMKE"}, "CC(=O)OC")
    return {key: value.unsqueeze(1) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}


def masked(batch: dict, n_masked: int = 2) -> dict:
    """The batch with its last `n_masked` tokens (ligand atoms) and their atoms masked."""
    batch = dict(batch)
    token_mask = batch["token_mask"].clone()
    token_mask[..., -n_masked:] = 0
    atom_mask = batch["atom_mask"].clone()
    atom_mask[..., -n_masked:] = 0  # one atom per ligand token, the last atoms of the complex
    batch.update(token_mask=token_mask, atom_mask=atom_mask)
    return batch


@pytest.fixture(scope="module")
def config():
    return model_config(InferenceSettings())


@pytest.fixture(scope="module")
def heads(config):
    """OpenFold3's heads with random weights, and the MLX heads with the same weights."""
    reference = randomise(TorchAuxiliaryHeads(config.architecture.heads), seed=5)
    return reference, port(reference, AuxiliaryHeadsAllAtom(config.architecture.heads))


def trunk_outputs(config, batch: dict, seed: int = 0):
    """Random s_input, s, z of the trunk ([1, 1, ...]) and atom positions [1, SAMPLES, N_atom, 3]
    spread over 0-60 Å, for both frameworks."""
    arch = config.architecture
    n_token, n_atom = batch["token_mask"].shape[-1], batch["atom_mask"].shape[-1]
    c_s_input = arch.heads.pairformer_embedding.c_s_input
    s_input = inputs(1, 1, n_token, c_s_input, seed=seed)
    s = inputs(1, 1, n_token, arch.shared.c_s, seed=seed + 1)
    z = inputs(1, 1, n_token, n_token, arch.shared.c_z, seed=seed + 2)
    x_t, x_m = inputs(1, SAMPLES, n_atom, 3, seed=seed + 3)
    return s_input, s, z, (x_t * 12.0, x_m * 12.0)


def run_torch(reference, batch: dict, s_input, s, z, x) -> dict:
    with torch.no_grad():
        return reference(batch=batch, si_input=s_input,
                         output={"si_trunk": s, "zij_trunk": z, "atom_positions_predicted": x},
                         use_zij_trunk_embedding=True, chunk_size=None)


@pytest.mark.parametrize("n_masked", [0, 2])
def test_heads_match_openfold3(config, heads, complex_batch, n_masked):
    reference, ours = heads
    batch = masked(complex_batch, n_masked) if n_masked else complex_batch
    (s_input_t, s_input_m), (s_t, s_m), (z_t, z_m), (x_t, x_m) = trunk_outputs(config, batch)
    expected = run_torch(reference, batch, s_input_t, s_t, z_t, x_t)
    got = ours(to_mlx_batch(batch), s_input_m, s_m, z_m, x_m)
    assert sorted(got) == sorted(expected) == sorted(LOGITS)
    n_atom = batch["atom_mask"].shape[-1] - n_masked
    assert expected["plddt_logits"].shape == (1, SAMPLES, n_atom, 50)
    token = batch["token_mask"].numpy().reshape(-1)
    pairs = (token[:, None] * token[None, :])[None, None]  # [1, 1, N, N]: the samples' axis
    for key in LOGITS:
        assert got[key].shape == tuple(expected[key].shape), key
        keep = pairs if key in PAIR_LOGITS else None  # the atoms' are of unmasked atoms only
        assert relative_error(got[key], expected[key], keep) <= TOLERANCE, key


def test_samples_go_through_the_confidence_pass_one_at_a_time(config, heads, complex_batch):
    """OpenFold3 batches the samples below per_sample_token_cutoff tokens and not above; the port
    always takes them one at a time (a fifth of the memory at 5 samples): the same logits."""
    reference, ours = heads
    s_input, s, z, x = trunk_outputs(config, complex_batch, seed=10)
    got = ours(to_mlx_batch(complex_batch), s_input[1], s[1], z[1], x[1])
    together = run_torch(reference, complex_batch, s_input[0], s[0], z[0], x[0])
    reference = copy.deepcopy(reference)
    reference.per_sample_token_cutoff = 4
    one_by_one = run_torch(reference, complex_batch, s_input[0], s[0], z[0], x[0])
    for key in LOGITS:
        assert relative_error(got[key], together[key]) <= TOLERANCE, key
        assert relative_error(got[key], one_by_one[key]) <= TOLERANCE, key


def test_chunked_equals_unchunked(config, heads, complex_batch):
    _, ours = heads
    s_input, s, z, x = trunk_outputs(config, complex_batch, seed=20)
    batch = to_mlx_batch(masked(complex_batch))
    whole = ours(batch, s_input[1], s[1], z[1], x[1])
    parts = ours(batch, s_input[1], s[1], z[1], x[1], chunk_size=4)
    for key in LOGITS:
        assert drift(parts[key], whole[key]) <= 1e-6, key


def test_keys_and_shapes_equal_openfold3_for_the_released_config():
    from openfold3.projects.of3_all_atom.project_entry import OF3ProjectEntry

    heads = OF3ProjectEntry().get_model_config_with_presets(["predict"]).architecture.heads
    expected = {k: tuple(v.shape) for k, v in TorchAuxiliaryHeads(heads).state_dict().items()}
    ours = AuxiliaryHeadsAllAtom(heads)
    assert {k: tuple(v.shape) for k, v in tree_flatten(ours.parameters())} == expected
    assert "pae.linear.weight" in expected and "plddt.linear.weight" in expected


def random_token_features(seed: int = 0, n_batch: int = 3, n_token: int = 40) -> dict:
    """Token features of every restype and molecule type, some atomized, some masked."""
    rng = np.random.default_rng(seed)
    restype = np.eye(32, dtype=np.int32)[rng.integers(0, 32, (n_batch, n_token))]
    kind = rng.integers(0, 4, (n_batch, n_token))  # protein, DNA, RNA, ligand
    num_atoms = rng.integers(1, 24, (n_batch, n_token))
    token_mask = (rng.random((n_batch, n_token)) > 0.2).astype(np.float32)
    token_mask[:, -5:] = 0  # trailing padding
    token_mask[0, -12:] = 0  # rows of different lengths
    features = {"restype": restype, "is_protein": kind == 0, "is_dna": kind == 1,
                "is_rna": kind == 2, "is_atomized": (kind == 3) | (rng.random(kind.shape) < 0.1),
                "start_atom_index": np.cumsum(num_atoms, axis=-1) - num_atoms,
                "num_atoms_per_token": num_atoms, "token_mask": token_mask}
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float32 if k == "token_mask" else np.int32))
            for k, v in features.items()}


def test_representative_atoms_are_openfold3s():
    """Every restype and molecule type, atomized or not: the same atom index as OpenFold3."""
    features = random_token_features()
    n_atom = int(features["num_atoms_per_token"].sum(-1).max())
    positions = torch.arange(n_atom, dtype=torch.float32)[None, :, None].expand(3, n_atom, 3)
    expected, _ = get_token_representative_atoms(
        batch=features, x=positions, atom_mask=torch.ones(3, n_atom))
    index = representative_atom_index(to_mlx_batch(features))
    assert np.array_equal(np.asarray(index), expected[..., 0].long().numpy())
    assert len(np.unique(np.asarray(index))) > 20


def test_atom_slots_are_openfold3s():
    """pLDDT slots to atoms: the same selection and zero padding as OpenFold3's."""
    features = random_token_features(seed=1)
    n_slots = features["token_mask"].shape[-1] * 23
    logits_t, logits_m = inputs(3, n_slots, 5)
    slot_mask = broadcast_token_feat_to_atoms(
        token_mask=features["token_mask"], num_atoms_per_token=features["num_atoms_per_token"],
        token_feat=features["token_mask"], max_num_atoms_per_token=23)
    expected = max_atom_per_token_masked_select(logits_t, slot_mask)
    slots = AtomSlots(mx.array(features["token_mask"].numpy()),
                      mx.array(features["num_atoms_per_token"].numpy()), 23)
    got = slots.select(logits_m)
    assert got.shape == tuple(expected.shape)
    assert np.array_equal(np.asarray(got), expected.numpy())
    n_first = int(slot_mask[0].sum())
    assert n_first < got.shape[-2]  # the first row is zero-padded
    assert float(mx.abs(got[0, n_first:]).max()) == 0.0


def test_distance_one_hot_is_openfold3s():
    """OpenFold3's pair embedding with the identity as its distance projection gives the one-hot."""
    cfg = dict(c_s_input=4, c_z=39, min_bin=3.25, max_bin=50.75, no_bin=39, inf=1e8)
    pairformer = ConfigDict(dict(c_s=8, c_z=39, c_hidden_pair_bias=4, no_heads_pair_bias=2,
                                 c_hidden_mul=4, c_hidden_pair_att=4, no_heads_pair=2,
                                 no_blocks=1, transition_type="swiglu", transition_n=2,
                                 pair_dropout=0.25, fuse_projection_weights=False,
                                 blocks_per_ckpt=None, inf=1e9))
    embedding = TorchPairformerEmbedding(pairformer=pairformer, **cfg).eval()
    x_t, x_m = inputs(2, 30, 3, seed=4)
    x_t, x_m = x_t * 15.0, x_m * 15.0
    with torch.no_grad():
        embedding.linear_distance.weight.copy_(torch.eye(39))
        expected = embedding.embed_zij(torch.zeros(2, 30, 4), torch.zeros(2, 30, 30, 39), x_t)
    got = distance_one_hot(x_m[..., :, None, :], x_m[..., None, :, :], 3.25, 50.75, 39, 1e8)
    assert np.array_equal(np.asarray(got), expected.numpy())
    binned = np.asarray(got).sum(-1)
    assert binned.max() == 1.0 and int(binned.sum()) > 1000
    assert binned[:, np.arange(30), np.arange(30)].max() == 0.0  # below 3.25 Å: no bin


def aggregated_metrics(scores: dict) -> dict[str, np.ndarray]:
    """The numbers OpenFold3 writes to `*_confidences_aggregated.json`, per sample."""
    metrics = {"avg_plddt": scores["plddt"].mean(-1).numpy()}
    for key in ("gpde", "ptm", "iptm", "disorder", "has_clash", "sample_ranking_score"):
        metrics[key] = scores[key].float().numpy()
    for key in ("chain_ptm", "chain_pair_iptm", "bespoke_iptm"):
        for pair, value in scores[key].items():
            metrics[f"{key}{pair}"] = value.float().numpy()
    return metrics


def test_confidence_metrics_agree(config, heads, complex_batch):
    """OpenFold3's own scoring of the MLX logits and of its logits, for the same inputs."""
    reference, ours = heads
    s_input, s, z, x = trunk_outputs(config, complex_batch, seed=30)
    expected = run_torch(reference, complex_batch, s_input[0], s[0], z[0], x[0])
    got = ours(to_mlx_batch(complex_batch), s_input[1], s[1], z[1], x[1])
    got = {key: torch.from_numpy(np.array(value)) for key, value in got.items()}
    with torch.no_grad():
        scores = [aggregated_metrics(get_confidence_scores(
            batch=complex_batch, outputs={**logits, "atom_positions_predicted": x[0]},
            config=config)) for logits in (expected, got)]
    assert scores[0].keys() == scores[1].keys()
    assert any(key.startswith("chain_pair_iptm") for key in scores[0])
    for key, value in scores[0].items():
        assert value.shape == (1, SAMPLES), key
        assert np.allclose(scores[1][key], value, rtol=1e-4, atol=1e-4), key
