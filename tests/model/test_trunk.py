"""The MLX trunk against OpenFold3's `run_trunk` on a real featurised complex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from foldscreen.contracts import Chain
from foldscreen.inference.featurise import featurise, query_set
from foldscreen.model.batch import to_mlx_batch
from foldscreen.model.trunk import Trunk
from foldscreen.model.weights import load_state

from .parity import randomise, relative_error

TRUNK_PREFIXES = ("input_embedder.", "layer_norm_z.", "linear_z.", "template_embedder.",
                  "msa_module_embedder.", "msa_module.", "layer_norm_s.", "linear_s.",
                  "pairformer_stack.")


def reduced_config():
    """OpenFold3's inference config with the default channel sizes and few blocks."""
    from openfold3.projects.of3_all_atom.project_entry import OF3ProjectEntry

    config = OF3ProjectEntry().get_model_config_with_presets(["predict", "mps"])
    config.settings.memory.eval.update(use_triton_triangle_kernels=False, chunk_size=None,
                                       tune_chunk_size=False)
    arch = config.architecture
    arch.pairformer.no_blocks = 2
    arch.msa.msa_module.no_blocks = 2
    arch.template.template_pair_stack.no_blocks = 1
    arch.input_embedder.atom_attn_enc.no_blocks = 1
    arch.diffusion_module.diffusion_transformer.no_blocks = 1
    arch.diffusion_module.atom_attn_enc.no_blocks = 1
    arch.diffusion_module.atom_attn_dec.no_blocks = 1
    arch.heads.pairformer_embedding.pairformer.no_blocks = 1
    return config


def complex_batch(folder: Path) -> dict:
    """OpenFold3's features of a protein-protein-ligand complex, a few MSA rows per protein."""
    chains = (Chain("protein", ("A",), sequence="MKTAYIAKQRQISFVKSHFSRQ"),
              Chain("protein", ("B",), sequence="GSHMKELEEKLRKLLEEGY"),
              Chain("ligand", ("C",), smiles="CC(=O)OC1=CC=CC=C1C(=O)O"))
    paths = {}
    for chain, homologue in zip(chains[:2], ("MKTAYIAKQRQISFVKSHFSRE", "GSHMKELEDKLRKLLEEGF")):
        entry = folder / chain.chain_ids[0]
        entry.mkdir(parents=True)
        (entry / "colabfold_main.a3m").write_text(
            f">query\n{chain.sequence}\n>hit\n{homologue}\n>hit2\n{homologue[:-3]}---\n")
        paths[chain.chain_ids[0]] = str(entry / "colabfold_main.a3m")
    return featurise(query_set("cplx", chains, paths), "cplx", 7, folder / "scratch")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from openfold3.projects.of3_all_atom.model import OpenFold3

    torch.manual_seed(0)
    config = reduced_config()
    model = randomise(OpenFold3(config), seed=3)
    batch = complex_batch(tmp_path_factory.mktemp("trunk"))
    with torch.no_grad():
        s_input, s, z = model.run_trunk(batch, num_cycles=2)
    return config, model, batch, (s_input, s, z)


def test_trunk_matches_openfold3_after_recycling(reference):
    config, model, batch, (s_input_t, s_t, z_t) = reference
    trunk = Trunk(config.architecture)
    state = {k: v for k, v in model.state_dict().items() if k.startswith(TRUNK_PREFIXES)}
    load_state(trunk, state)
    s_input, s, z = trunk.run_trunk(to_mlx_batch(batch), num_cycles=2)
    assert relative_error(s_input, s_input_t) <= 1e-5
    assert relative_error(s, s_t) <= 1e-4
    assert relative_error(z, z_t) <= 1e-4


def test_trunk_chunked_equals_unchunked(reference):
    config, model, batch, _ = reference
    trunk = Trunk(config.architecture)
    load_state(trunk, {k: v for k, v in model.state_dict().items() if k.startswith(TRUNK_PREFIXES)})
    features = to_mlx_batch(batch)
    whole = trunk.run_trunk(features, num_cycles=1)
    parts = trunk.run_trunk(features, num_cycles=1, chunk_size=7)
    for a, b in zip(whole, parts):
        assert float(np.abs(np.asarray(a) - np.asarray(b)).max()) <= 1e-5 * float(np.abs(np.asarray(a)).max())
