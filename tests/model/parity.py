"""Parity harness: the same random weights and inputs through OpenFold3 and the MLX port."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import torch

from foldscreen.model.weights import load_state

TOLERANCE = 1e-5  # ||mlx - torch|| / ||torch|| in float32


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values (OpenFold3 zero-initialises many), in eval mode.

    Matrices get N(0, 1/fan_in); vectors (norm scales, biases) get 1 + N(0, 0.2) or N(0, 0.2).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.dim() >= 2:
                param.copy_(noise / param.shape[-1] ** 0.5)
            elif name.endswith("weight"):
                param.copy_(1 + 0.2 * noise)
            else:
                param.copy_(0.2 * noise)
    return module.eval()


def port(torch_module: torch.nn.Module, mlx_module, prefix: str = ""):
    """Load the PyTorch module's weights into the MLX module through the real loader."""
    state = {k.removeprefix(prefix): v for k, v in torch_module.state_dict().items()
             if k.startswith(prefix)}
    load_state(mlx_module, state)
    return mlx_module


def inputs(*shape: int, seed: int = 0) -> tuple[torch.Tensor, mx.array]:
    """The same random float32 array for both frameworks."""
    array = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return torch.from_numpy(array.copy()), mx.array(array)


def mask(*shape: int, seed: int = 0, p_masked: float = 0.2) -> tuple[torch.Tensor, mx.array]:
    """A random 0/1 mask with about `p_masked` zeros (the first position always kept)."""
    array = (np.random.default_rng(seed).random(shape) > p_masked).astype(np.float32)
    array[..., 0] = 1.0
    return torch.from_numpy(array.copy()), mx.array(array)


def relative_error(mlx_out: mx.array, torch_out: torch.Tensor, keep=None) -> float:
    """||ours - OpenFold3's|| / ||OpenFold3's||, over the entries `keep` marks (its axes lead
    the outputs'): a masked token's outputs are meaningless in both, and need not agree."""
    reference = torch_out.detach().double().numpy()
    ours = np.asarray(mlx_out, dtype=np.float64)
    if keep is not None:
        keep = np.asarray(keep, dtype=np.float64) > 0
        keep = np.broadcast_to(keep.reshape(keep.shape + (1,) * (reference.ndim - keep.ndim)),
                               reference.shape)
        reference, ours = reference[keep], ours[keep]
    return float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))


def featurised_batch(folder: Path, sequences: dict[str, str], ligand_smiles: str | None = None,
               seed: int = 1) -> dict:
    """OpenFold3's feature batch (PyTorch, batch size 1) of protein chains named by their ids,
    with an optional SMILES ligand as the last chain, and query-only MSAs."""
    from foldscreen.contracts import Chain
    from foldscreen.inference.featurise import featurise, query_set, silence_known_warnings

    silence_known_warnings()
    chains, msa_paths = [], {}
    for chain_id, sequence in sequences.items():
        (folder / chain_id).mkdir()
        path = folder / chain_id / "colabfold_main.a3m"
        path.write_text(f">query\n{sequence}\n")
        msa_paths[chain_id] = str(path)
        chains.append(Chain("protein", (chain_id,), sequence=sequence))
    if ligand_smiles:
        chains.append(Chain("ligand", ("C",), smiles=ligand_smiles))
    return featurise(query_set("q", tuple(chains), msa_paths), "q", seed, folder)
