"""Parity of the diffusion module and the sampler with OpenFold3's, and the sampler's randomness."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch
from mlx.utils import tree_flatten
from openfold3.core.model.layers.diffusion_conditioning import (
    DiffusionConditioning as TorchDiffusionConditioning,
)
from openfold3.core.model.layers.diffusion_transformer import (
    DiffusionTransformer as TorchDiffusionTransformer,
)
from openfold3.core.model.layers.sequence_local_atom_attention import (
    AtomAttentionDecoder as TorchAtomAttentionDecoder,
)
from openfold3.core.model.structure import augmentation
from openfold3.core.model.structure.diffusion_module import (
    DiffusionModule as TorchDiffusionModule,
)
from openfold3.core.model.structure.diffusion_module import (
    SampleDiffusion as TorchSampleDiffusion,
)
from openfold3.core.model.structure.diffusion_module import create_noise_schedule

from foldscreen.inference.model_config import model_config
from foldscreen.inference.settings import InferenceSettings
from foldscreen.model.atom_attention import DiffusionTransformer
from foldscreen.model.batch import to_mlx_batch
from foldscreen.model.diffusion import AtomAttentionDecoder, DiffusionConditioning, DiffusionModule
from foldscreen.model.sampler import (
    KeyedDraws,
    StepDraws,
    centre_random_augmentation,
    noise_schedule,
    sample_atom_positions,
)

from .parity import TOLERANCE, featurised_batch, inputs, port, randomise, relative_error

N_QUERY, N_KEY = 32, 128  # OpenFold3's real windows
CONDITIONING = dict(c_s_input=20, c_s=16, c_z=12, c_fourier_emb=24, max_relative_idx=32,
                    max_relative_chain=2, sigma_data=16)


def rms(mlx_out: mx.array, torch_out: torch.Tensor) -> float:
    """Root mean square distance (Angstrom) between two sets of positions [..., 3]."""
    difference = np.asarray(mlx_out, dtype=np.float64) - torch_out.double().numpy()
    return float(np.sqrt(np.mean(np.sum(difference**2, axis=-1))))


def token_features(n_token: int, n_masked: int) -> dict[str, torch.Tensor]:
    """Two complexes of three chains [2, 1, N] (a sample axis); the second ends in padding."""
    asym = torch.tensor([1] * 5 + [2] * 4 + [3] * (n_token - 9))
    features = {
        "residue_index": torch.cat([torch.arange(1, 6), torch.tensor([1, 2, 2, 4]),
                                    torch.arange(1, n_token - 8)]),
        "token_index": torch.arange(n_token),
        "asym_id": asym,
        "entity_id": torch.where(asym == 3, 2, 1),
        "sym_id": torch.where(asym == 2, 2, 1),
    }
    features = {key: value.expand(2, n_token)[:, None] for key, value in features.items()}
    mask = torch.ones(2, 1, n_token)
    mask[1, :, n_token - n_masked:] = 0
    return {**features, "token_mask": mask}


def test_diffusion_conditioning_with_padding_and_odd_n():
    reference = randomise(TorchDiffusionConditioning(**CONDITIONING), seed=1)
    ours = DiffusionConditioning(**CONDITIONING)
    assert not np.allclose(np.array(ours.fourier_emb.w), reference.fourier_emb.w.numpy())
    port(reference, ours)  # the Fourier buffers come with the weights
    for name in ("w", "b"):
        assert np.array_equal(np.array(ours.fourier_emb[name]),
                              getattr(reference.fourier_emb, name).numpy())
    batch_t = token_features(13, 3)
    batch = to_mlx_batch(batch_t)
    (s_input_t, s_input_m), (s_t, s_m) = inputs(2, 1, 13, 20), inputs(2, 1, 13, 16, seed=1)
    z_t, z_m = inputs(2, 1, 13, 13, 12, seed=2)
    for t in (np.float32(31.0), np.array([[0.5, 7.0, 160.0], [3.0, 0.01, 40.0]], np.float32)):
        with torch.no_grad():
            expected = reference(batch_t, torch.from_numpy(np.array(t)), s_input_t, s_t, z_t,
                                 use_conditioning=True)
        outputs = ours(batch, mx.array(t), s_input_m, s_m, z_m)
        for out_m, out_t in zip(outputs, expected, strict=True):
            assert out_m.shape == tuple(out_t.shape)
            assert relative_error(out_m, out_t) <= TOLERANCE
    for chunk_size in (4, 5):
        chunked = ours.pair(batch, z_m, chunk_size)
        assert relative_error(chunked, torch.from_numpy(np.array(outputs[1]))) <= 1e-6


def test_token_transformer_with_masked_tokens():
    config = dict(c_a=24, c_s=16, c_z=12, c_hidden=8, no_heads=3, no_blocks=2, n_transition=2,
                  n_query=None, n_key=None, inf=1e9)
    reference = randomise(TorchDiffusionTransformer(**config), seed=2)
    ours = port(reference, DiffusionTransformer(**config))
    mask = token_features(13, 3)["token_mask"]
    (a_t, a_m), (s_t, s_m) = inputs(2, 3, 13, 24), inputs(2, 1, 13, 16, seed=1)
    z_t, z_m = inputs(2, 1, 13, 13, 12, seed=2)
    with torch.no_grad():
        expected = reference(a_t, s_t, z_t, mask=mask)
    assert relative_error(ours(a_m, s_m, z_m, mx.array(mask.numpy())), expected) <= TOLERANCE


def atom_layout(seed: int = 0) -> dict[str, torch.Tensor]:
    """Atoms of 15 tokens, [2, 1, ...]; in the second complex the last 3 tokens are padding."""
    counts = torch.from_numpy(np.random.default_rng(seed).integers(1, 10, 15))
    token_mask = torch.ones(2, 15)
    token_mask[1, 12:] = 0
    index = torch.repeat_interleave(torch.arange(15), counts)
    atom_mask = torch.stack([torch.ones(len(index)), token_mask[1][index]])
    return {"token_mask": token_mask[:, None], "num_atoms_per_token": counts.expand(2, 15)[:, None],
            "atom_to_token_index": index.expand(2, len(index))[:, None], "atom_mask": atom_mask[:, None]}


def test_atom_attention_decoder_with_padding():
    config = dict(c_atom=16, c_atom_pair=8, c_token=24, c_hidden=8, no_heads=2, no_blocks=2,
                  n_transition=2, n_query=N_QUERY, n_key=N_KEY, inf=1e9)
    reference = randomise(TorchAtomAttentionDecoder(**config), seed=3)
    ours = port(reference, AtomAttentionDecoder(**config))
    batch_t = atom_layout()
    n_atom = batch_t["atom_mask"].shape[-1]
    assert n_atom > N_QUERY and n_atom % N_QUERY
    n_blocks = -(-n_atom // N_QUERY)
    (a_t, a_m), (q_t, q_m) = inputs(2, 2, 15, 24), inputs(2, 2, n_atom, 16, seed=1)
    (c_t, c_m), (p_t, p_m) = inputs(2, 1, n_atom, 16, seed=2), inputs(2, 1, n_blocks, N_QUERY,
                                                                       N_KEY, 8, seed=3)
    with torch.no_grad():
        expected = reference(batch_t, a_t, q_t, c_t, p_t)
    out = ours(to_mlx_batch(batch_t), a_m, q_m, c_m, p_m)
    assert out.shape == tuple(expected.shape)
    assert relative_error(out, expected) <= TOLERANCE


def no_init(monkeypatch):
    """OpenFold3's weight initialisers as no-ops: the released module builds in a moment."""
    import openfold3.core.model.primitives.linear as linear

    for name in ("lecun_normal_init_", "he_normal_init_", "glorot_uniform_init_", "gating_init_",
                 "kaiming_normal_init_", "final_init_"):
        monkeypatch.setattr(linear, name, lambda *args, **kwargs: None)


@pytest.mark.parametrize("weights", ["demo", "released.pt"])
def test_parameters_are_openfold3s(weights, monkeypatch):
    no_init(monkeypatch)
    config = model_config(InferenceSettings(weights=weights)).architecture.diffusion_module
    with torch.device("meta"):
        reference = TorchDiffusionModule(config)
    expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    ours = {key: value.shape for key, value in tree_flatten(DiffusionModule.from_config(config).parameters())}
    assert ours == expected
    assert "diffusion_conditioning.fourier_emb.w" in ours


@pytest.fixture(scope="module")
def real_batch(tmp_path_factory) -> dict:
    """OpenFold3's features of two protein chains and an acetic acid ligand."""
    return featurised_batch(tmp_path_factory.mktemp("featurise"), {"A": "MKTAYIAKQRQ", "B": "GSHMKEL"},
                      "CC(=O)O")


@pytest.fixture(scope="module")
def demo(real_batch):
    """The demo architecture's diffusion module (random weights) in both frameworks, trunk outputs."""
    architecture = model_config(InferenceSettings(diffusion_steps=4, samples=3)).architecture
    reference = randomise(TorchDiffusionModule(architecture.diffusion_module), seed=5)
    ours = port(reference, DiffusionModule.from_config(architecture.diffusion_module))
    n_token = real_batch["token_mask"].shape[-1]
    shared = architecture.shared
    trunk = (inputs(1, n_token, shared.c_s_input, seed=10), inputs(1, n_token, shared.c_s, seed=11),
             inputs(1, n_token, n_token, shared.c_z, seed=12))
    return architecture, reference, ours, trunk


def with_sample_axis(batch: dict) -> dict[str, torch.Tensor]:
    return {key: value.unsqueeze(1) for key, value in batch.items() if isinstance(value, torch.Tensor)}


@pytest.mark.parametrize("t", [np.float32(25.0), np.array([[0.3, 25.0, 900.0]], np.float32)])
def test_diffusion_module_denoises_as_openfold3(real_batch, demo, t):
    _, reference, ours, trunk = demo
    batch_t = with_sample_axis(real_batch)
    x_t, x_m = inputs(1, 3, batch_t["atom_mask"].shape[-1], 3, seed=13)
    x_t, x_m = 30 * x_t, 30 * x_m
    (s_input_t, s_input_m), (s_t, s_m), (z_t, z_m) = ((t_[:, None], m[:, None]) for t_, m in trunk)
    with torch.no_grad():
        expected = reference(batch_t, x_t, batch_t["token_mask"], batch_t["atom_mask"],
                             torch.from_numpy(np.array(t)), s_input_t, s_t, z_t,
                             use_conditioning=True)
    batch = to_mlx_batch(batch_t)
    out = ours(batch, x_m, mx.array(t), s_input_m, s_m, z_m)
    assert out.shape == tuple(expected.shape)
    assert relative_error(out, expected) <= 1e-4
    chunked = ours(batch, x_m, mx.array(t), s_input_m, s_m, z_m, chunk_size=5)
    assert relative_error(chunked, torch.from_numpy(np.array(out))) <= 1e-6


def test_noise_schedule_is_openfold3s(demo):
    config = demo[0].noise_schedule
    expected = create_noise_schedule(200, **config, dtype=torch.float32, device="cpu")
    ours = noise_schedule(200, **config)
    assert relative_error(ours, expected) <= 1e-6
    assert float(ours[0]) == pytest.approx(16 * 160, rel=1e-6)
    assert float(ours[-1]) == pytest.approx(16 * 4e-4, rel=1e-5)


class Recorded:
    """Pre-drawn standard normals, served to OpenFold3 (through torch.randn) and to MLX alike."""

    def __init__(self, shape: tuple[int, ...], steps: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        samples = shape[:-2]
        self.initial_draw = rng.standard_normal(shape).astype(np.float32)
        self.steps = [tuple(rng.standard_normal(s).astype(np.float32)
                            for s in (samples + (4,), samples + (3,), shape))
                      for _ in range(steps)]

    def torch_queue(self) -> list[np.ndarray]:
        """In OpenFold3's order: initial, then per step rotation, translation, noise."""
        return [self.initial_draw] + [draw for step in self.steps for draw in step]

    def initial(self, shape: tuple[int, ...]) -> mx.array:
        assert tuple(shape) == self.initial_draw.shape
        return mx.array(self.initial_draw)

    def step(self, step: int, shape: tuple[int, ...]) -> StepDraws:
        assert tuple(shape) == self.steps[step][2].shape
        return StepDraws(*(mx.array(draw) for draw in self.steps[step]))


def serve_to_torch(monkeypatch, queue: list[np.ndarray]) -> list[np.ndarray]:
    """torch.randn and torch.randn_like hand out the queue's arrays, checking each shape.

    Returns the queue, which is empty once every draw has been served.
    """
    queue = list(queue)

    def next_draw(shape: tuple[int, ...]) -> torch.Tensor:
        draw = queue.pop(0)
        assert tuple(shape) == draw.shape
        return torch.from_numpy(draw.copy())

    def randn(*size, **kwargs) -> torch.Tensor:
        return next_draw(tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size)

    monkeypatch.setattr(torch, "randn", randn)
    monkeypatch.setattr(torch, "randn_like", lambda x, **kwargs: next_draw(tuple(x.shape)))
    return queue


def test_augmentation_is_openfold3s(monkeypatch):
    x_t, x_m = inputs(2, 3, 40, 3)
    x_t, x_m = x_t + 5, x_m + 5
    mask = np.ones((2, 1, 40), np.float32)
    mask[1, :, 30:] = 0
    quaternion, translation = inputs(2, 3, 4, seed=1), inputs(2, 3, 3, seed=2)
    queue = serve_to_torch(monkeypatch, [quaternion[0].numpy(), translation[0].numpy()])
    expected = augmentation.centre_random_augmentation(x_t, torch.from_numpy(mask))
    assert not queue
    out = centre_random_augmentation(x_m, mx.array(mask), quaternion[1], translation[1])
    assert relative_error(out, expected) <= TOLERANCE
    kept = out[1, :, :30] - translation[1][1, :, None, :]  # centred, rotated: zero mean, same norms
    assert float(mx.abs(mx.mean(kept, axis=-2)).max()) <= 1e-5


def test_sampler_matches_openfold3_with_the_same_draws(real_batch, demo, monkeypatch):
    architecture, reference, ours, trunk = demo
    steps, samples = 4, 3
    assert architecture.shared.diffusion.no_full_rollout_steps == steps
    n_atom = real_batch["atom_mask"].shape[-1]
    draws = Recorded((1, samples, n_atom, 3), steps)
    schedule = create_noise_schedule(steps, **architecture.noise_schedule, dtype=torch.float32,
                                     device="cpu")
    sampler = TorchSampleDiffusion(**architecture.sample_diffusion, diffusion_module=reference)
    with monkeypatch.context() as patch, torch.no_grad():
        queue = serve_to_torch(patch, draws.torch_queue())
        expected = sampler(with_sample_axis(real_batch), *(t_[:, None] for t_, _ in trunk),
                           noise_schedule=schedule, no_rollout_samples=samples,
                           use_high_precision_attention=True)
    assert not queue
    out = sample_atom_positions(ours, architecture, to_mlx_batch(real_batch),
                                *(m for _, m in trunk), seed=0, draws=draws)
    assert out.shape == (1, samples, n_atom, 3)
    assert float(expected.abs().max()) > 1  # a structure, not collapsed onto the origin
    assert rms(out, expected) <= 1e-3


def test_a_seed_gives_the_same_structures_every_run(real_batch, demo):
    architecture, _, ours, trunk = demo
    batch = to_mlx_batch(real_batch)
    arrays = [m for _, m in trunk]
    first, again, other = (np.array(sample_atom_positions(ours, architecture, batch, *arrays, seed))
                           for seed in (7, 7, 8))
    assert first.shape == (1, 3, batch["atom_mask"].shape[-1], 3)
    assert np.array_equal(first, again)
    assert np.abs(first - other).max() > 1


def test_sample_chunks_give_the_whole_batch(real_batch, demo):
    architecture, _, ours, trunk = demo
    batch = to_mlx_batch(real_batch)
    arrays = [m for _, m in trunk]
    whole = sample_atom_positions(ours, architecture, batch, *arrays, seed=3)
    for sample_chunk_size, chunk_size in ((1, None), (2, 5)):
        chunks = sample_atom_positions(ours, architecture, batch, *arrays, seed=3,
                                       chunk_size=chunk_size, sample_chunk_size=sample_chunk_size)
        assert relative_error(chunks, torch.from_numpy(np.array(whole))) <= 1e-6


def test_keyed_draws_are_standard_normal_and_independent_per_step():
    draws = KeyedDraws(seed=11, steps=3)
    shape = (1, 4, 500, 3)
    steps = [draws.step(step, shape) for step in range(3)]
    noise = np.stack([np.array(step.noise) for step in steps])
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05
    assert steps[0].quaternion.shape == (1, 4, 4) and steps[0].translation.shape == (1, 4, 3)
    assert not np.allclose(noise[0], noise[1])
    assert np.array_equal(np.array(draws.initial(shape)), np.array(KeyedDraws(11, 3).initial(shape)))
