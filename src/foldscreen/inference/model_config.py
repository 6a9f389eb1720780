"""OpenFold3 model configurations: the released architecture and the tiny `demo` one."""

from __future__ import annotations

import importlib.util
from typing import Any

from .settings import InferenceSettings

# The demo architecture: OpenFold3's layout with few blocks and narrow channels, so that a
# screen of small queries runs in minutes on a laptop CPU. Its weights are random.
DEMO_CHANNELS = {"c_s": 64, "c_z": 32, "c_m": 16, "c_t": 16, "c_atom": 32, "c_atom_pair": 8,
                 "c_token_embedder": 64, "c_token_diffusion": 64}
DEMO_STEPS = 20
DEMO_RECYCLES = 1


def model_config(settings: InferenceSettings) -> Any:
    """OpenFold3's inference config for these settings.

    The torch backend on CUDA gets OpenFold3's own fastest GPU preset, `predict` (Triton
    triangle kernels where Triton is installed, chunk sizes tuned by trial); everything else
    `predict` and `mps` without Triton or chunk tuning (which costs minutes on a CPU).
    """
    from openfold3.projects.of3_all_atom.project_entry import OF3ProjectEntry

    cuda = settings.backend == "torch" and settings.device.startswith("cuda")
    config = OF3ProjectEntry().get_model_config_with_presets(["predict"] if cuda else ["predict", "mps"])
    memory = config.settings.memory.eval
    if not (cuda and importlib.util.find_spec("triton") is not None):
        memory.use_triton_triangle_kernels = False
    if not cuda:
        memory.chunk_size = None
        memory.tune_chunk_size = False
    if settings.demo:
        _shrink(config.architecture)
    shared = config.architecture.shared
    default_steps, default_recycles = (DEMO_STEPS, DEMO_RECYCLES) if settings.demo else (None, None)
    steps = settings.diffusion_steps or default_steps
    recycles = settings.recycles if settings.recycles is not None else default_recycles
    if steps is not None:
        shared.diffusion.no_full_rollout_steps = steps
    if recycles is not None:
        shared.num_recycles = recycles
    shared.diffusion.no_full_rollout_samples = settings.samples
    return config


def _shrink(arch: Any) -> None:
    """Reduce the architecture in place to the demo size (channel sizes are shared references)."""
    c = DEMO_CHANNELS
    arch.shared.c_s = c["c_s"]
    arch.shared.c_z = c["c_z"]
    arch.msa.msa_module.c_m = c["c_m"]
    arch.template.c_t = c["c_t"]
    encoder = arch.input_embedder.atom_attn_enc
    encoder.c_atom = c["c_atom"]
    encoder.c_atom_pair = c["c_atom_pair"]
    encoder.c_token = c["c_token_embedder"]
    encoder.no_blocks = 1
    diffusion = arch.diffusion_module
    diffusion.diffusion_module.c_token = c["c_token_diffusion"]
    diffusion.atom_attn_enc.no_blocks = 1
    diffusion.atom_attn_dec.no_blocks = 1
    diffusion.diffusion_transformer.no_blocks = 2
    diffusion.diffusion_transformer.no_heads = 4
    arch.pairformer.no_blocks = 2
    arch.pairformer.no_heads_pair_bias = 4
    arch.msa.msa_module.no_blocks = 1
    arch.msa.msa_module.no_heads_msa = 4
    arch.template.template_pair_stack.no_blocks = 1
    confidence = arch.heads.pairformer_embedding.pairformer
    confidence.no_blocks = 1
    confidence.no_heads_pair_bias = 4
