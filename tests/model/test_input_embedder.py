"""Parity of the atom attention encoder and the input embedder with OpenFold3's."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch
from ml_collections import ConfigDict
from openfold3.core.model.feature_embedders.input_embedders import (
    InputEmbedderAllAtom as TorchInputEmbedder,
)
from openfold3.core.model.layers.diffusion_transformer import (
    DiffusionTransformer as TorchDiffusionTransformer,
)
from openfold3.core.model.layers.sequence_local_atom_attention import (
    AtomAttentionEncoder as TorchAtomAttentionEncoder,
)
from openfold3.core.utils.atom_attention_block_utils import convert_single_rep_to_blocks
from openfold3.core.utils.atomize_utils import aggregate_atom_feat_to_tokens
from openfold3.core.utils.relpos import relpos_complex

from foldscreen.model.atom_attention import (
    AtomAttentionEncoder,
    AtomWindows,
    DiffusionTransformer,
    aggregate_to_tokens,
)
from foldscreen.model.batch import to_mlx_batch
from foldscreen.model.input_embedder import InputEmbedderAllAtom, token_positions

from .parity import TOLERANCE, featurised_batch, inputs, port, randomise, relative_error

N_QUERY, N_KEY = 32, 128  # OpenFold3's real windows
ENCODER = dict(c_atom_ref={"element": 119, "name_chars": 256}, c_atom=16, c_atom_pair=8,
               c_token=24, c_hidden=8, no_heads=2, no_blocks=2, n_transition=2,
               n_query=N_QUERY, n_key=N_KEY, c_s=20, c_z=12, inf=1e9)
TORCH_ENCODER = {**ENCODER, "c_atom_ref": ConfigDict(ENCODER["c_atom_ref"])}
EMBEDDER = dict(c_s_input=24 + 65, c_s=20, c_z=12, max_relative_idx=32, max_relative_chain=2)


def atom_mask(n_batch: int, n_atom: int, n_padding: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Trailing padding per sample, as OpenFold3 pads a batch, plus a few masked atoms inside."""
    rng = np.random.default_rng(seed)
    mask = (rng.random((n_batch, n_atom)) > 0.1).astype(np.float32)
    for sample, padding in enumerate(n_padding):
        mask[sample, n_atom - padding:] = 0
    return mask


@pytest.fixture(scope="module")
def real_batch(tmp_path_factory) -> dict:
    """OpenFold3's featurisation of two protein chains and an ethanol ligand (149 atoms)."""
    batch = featurised_batch(tmp_path_factory.mktemp("featurise"),
                       {"A": "MKTAYIAKQRQ", "B": "GSHMKEL"}, "CCO", seed=7)
    assert batch["atom_mask"].shape[-1] % N_QUERY != 0  # windows with padding
    return batch


@pytest.mark.parametrize("n_atom, n_padding", [(75, (0, 9)), (300, (0, 40)), (40, (5, 0))])
def test_windows_are_openfold3s(n_atom, n_padding):
    mask = atom_mask(2, n_atom, n_padding)
    x_t, x_m = inputs(2, n_atom, 3)
    q_t, k_t, pair_t = convert_single_rep_to_blocks(
        x_t, N_QUERY, N_KEY, torch.from_numpy(mask))
    windows = AtomWindows(mx.array(mask), N_QUERY, N_KEY)
    assert np.array_equal(np.array(windows.queries(x_m)), q_t.numpy())
    assert np.array_equal(np.array(windows.keys(x_m)), k_t.numpy())
    assert np.array_equal(np.array(windows.pair_mask), pair_t.numpy())
    assert np.array_equal(np.array(windows.unblock(windows.queries(x_m))), x_t.numpy())


def test_atom_transformer_on_75_atoms_with_masked_atoms():
    config = {k: ENCODER[k] for k in ("c_hidden", "no_heads", "no_blocks", "n_transition",
                                      "n_query", "n_key", "inf")}
    reference = randomise(TorchDiffusionTransformer(c_a=16, c_s=16, c_z=8, **config))
    ours = port(reference, DiffusionTransformer(c_a=16, c_s=16, c_z=8, **config))
    mask = atom_mask(2, 75, (0, 9))
    n_blocks = -(-75 // N_QUERY)
    (a_t, a_m), (s_t, s_m) = inputs(2, 75, 16), inputs(2, 75, 16, seed=1)
    z_t, z_m = inputs(2, n_blocks, N_QUERY, N_KEY, 8, seed=2)
    with torch.no_grad():
        out_t = reference(a_t, s_t, z_t, mask=torch.from_numpy(mask))
    out_m = ours(a_m, s_m, z_m, mx.array(mask))
    assert relative_error(out_m, out_t) <= TOLERANCE
    kept = mask > 0  # masked rows are a uniform average in both, compare kept rows on their own
    assert relative_error(mx.array(np.array(out_m)[kept]), out_t[torch.from_numpy(kept)]) \
        <= TOLERANCE


def test_mean_over_each_tokens_atoms():
    index = np.repeat(np.arange(7), [3, 1, 4, 2, 5, 1, 2]).astype(np.int32)[None]
    mask = np.ones_like(index, dtype=np.float32)
    mask[0, [2, 5]] = 0
    x_t, x_m = inputs(1, index.shape[-1], 5)
    reference = aggregate_atom_feat_to_tokens(
        torch.ones(1, 7), torch.from_numpy(index), torch.from_numpy(mask), x_t, -2, "mean")
    ours = aggregate_to_tokens(x_m, mx.array(index), mx.array(mask), 7)
    assert relative_error(ours, reference) <= TOLERANCE


KERNELS_PER_SIZE = """
import os
from pathlib import Path
import mlx.core as mx
from foldscreen.model.atom_attention import aggregate_to_tokens
built = []
for n_token in (64, 80):  # two token buckets of one compiled function
    n_atom = 8 * n_token
    index = mx.minimum(mx.arange(n_atom) // 8, n_token - 1)[None].astype(mx.int32)
    mean = mx.compile(lambda x, index, mask: aggregate_to_tokens(x, index, mask, n_token))
    mx.eval(mean(mx.ones((2, 1, n_atom, 4)), index, mx.ones((1, n_atom))))
    built.append(len(list(Path(os.environ["TMPDIR"]).rglob("*.so"))))
print(built)
"""


def test_mean_over_each_tokens_atoms_builds_no_kernel_per_token_bucket(tmp_path):
    """A compiled graph's fused kernels are named by their constants: had the mean a constant
    that depends on the size, every token bucket would build kernels of its own, on a GPU at
    its first pass. MLX's CPU backend builds each kernel as a library under TMPDIR, so count them."""
    import json
    import os
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", KERNELS_PER_SIZE], capture_output=True, text=True,
                         env={**os.environ, "TMPDIR": str(tmp_path)}, check=True)
    first, second = json.loads(run.stdout)
    assert first > 0  # the probe sees MLX's kernels
    assert second == first


@pytest.mark.parametrize("cyclic", [(), (2,), (1, 3, 4)])  # cyclic chains of 6, 5, 3, 2 tokens
def test_relative_position_encoding(cyclic):
    asym = torch.tensor([[1] * 6 + [2] * 5 + [3] * 3 + [4] * 2])
    batch = {
        "residue_index": torch.tensor([[1, 2, 3, 3, 3, 4, 1, 2, 3, 4, 5, 7, 8, 9, 1, 1]]),
        "token_index": torch.arange(16)[None],
        "asym_id": asym,
        "entity_id": torch.tensor([[1] * 6 + [2] * 5 + [2] * 3 + [3] * 2]),
        "sym_id": torch.tensor([[1] * 6 + [1] * 5 + [2] * 3 + [1] * 2]),
        "cyclic_mask": torch.isin(asym, torch.tensor(cyclic, dtype=torch.long)),
    }
    embedder = InputEmbedderAllAtom(**EMBEDDER, atom_attn_enc=ENCODER)
    linear = torch.nn.Linear(embedder.linear_relpos.weight.shape[1], 12, bias=False)
    randomise(linear)
    embedder.linear_relpos.weight = mx.array(linear.weight.detach().numpy())
    with torch.no_grad():
        reference = linear(relpos_complex(batch, 32, 2))
    positions = token_positions(to_mlx_batch(batch))
    ours = embedder.relative_position_encoding(positions[..., :, None, :],
                                               positions[..., None, :, :])
    assert relative_error(ours, reference) <= TOLERANCE


@pytest.fixture(scope="module")
def embedders():
    reference = randomise(TorchInputEmbedder(**EMBEDDER, atom_attn_enc=TORCH_ENCODER), seed=3)
    return reference, port(reference, InputEmbedderAllAtom(**EMBEDDER, atom_attn_enc=ENCODER))


def test_input_embedder_on_a_featurised_batch(real_batch, embedders):
    reference, ours = embedders
    with torch.no_grad():
        expected = reference(real_batch)
    batch = to_mlx_batch(real_batch)
    for out_m, out_t in zip(ours(batch), expected, strict=True):
        assert out_m.shape == tuple(out_t.shape)
        assert relative_error(out_m, out_t) <= TOLERANCE


def test_chunked_pair_is_unchunked(real_batch, embedders):
    ours = embedders[1]
    batch = to_mlx_batch(real_batch)
    whole = ours(batch)[2]
    for size in (4, 7):
        assert relative_error(ours(batch, chunk_size=size)[2], torch.from_numpy(np.array(whole))) \
            <= 1e-6


def test_encoder_with_noisy_positions_and_trunk_conditioning(real_batch):
    reference = randomise(TorchAtomAttentionEncoder(**TORCH_ENCODER, add_noisy_pos=True), seed=4)
    ours = port(reference, AtomAttentionEncoder(**ENCODER, add_noisy_pos=True))
    batch_t = {k: v.unsqueeze(1) for k, v in real_batch.items() if isinstance(v, torch.Tensor)}
    n_token, n_atom = batch_t["token_mask"].shape[-1], batch_t["atom_mask"].shape[-1]
    r_t, r_m = inputs(1, 2, n_atom, 3)  # two diffusion samples
    s_t, s_m = inputs(1, 1, n_token, 20, seed=1)
    z_t, z_m = inputs(1, 1, n_token, n_token, 12, seed=2)
    with torch.no_grad():
        expected = reference(batch_t, rl=r_t, si_trunk=s_t, zij_trunk=z_t)
    batch = to_mlx_batch(batch_t)
    for chunk_size in (None, 5):
        for out_m, out_t in zip(ours(batch, r_m, s_m, z_m, chunk_size), expected, strict=True):
            assert out_m.shape == tuple(out_t.shape)
            assert relative_error(out_m, out_t) <= TOLERANCE
