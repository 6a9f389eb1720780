"""The MLX port of OpenFold3: Metal on Apple Silicon, CUDA with mlx[cuda], else the CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend, BackendUnavailable
from .settings import InferenceSettings

GPU_BATCH_TOKENS = 1536
"""Padded tokens per forward pass by default on a GPU, where small tasks are launch-bound."""

UNGRAPHED_OPS_PER_COMMIT = 20
"""Kernels per commit without CUDA graphs (MLX_MAX_OPS_PER_BUFFER; MLX's own is 100 on an H200):
the host queues up to 10 commits ahead of the GPU, each holding its kernels' inputs, so smaller
commits hold less. At 384 tokens under a 5 GiB memory limit: 5.27 GiB in 3.74 s (L13), and
in 3.87 s on a random protein rather than a homopolymer (L14)."""


def cuda_settings(settings: InferenceSettings) -> None:
    """The environment of MLX's CUDA backend (other backends do not read it); what the user's
    environment sets wins.

    `kernel_cache`: the folder of the kernels MLX builds on first use (MLX_PTX_CACHE_DIR).
    `cuda_graphs: false` launches kernels one by one (MLX_USE_CUDA_GRAPHS=0): on an H200 a task
    ran 25-35% faster (50% at 100 tokens), but its peak memory was 2-5x (benchmarks/RESULTS.md);
    it then also closes a commit every `UNGRAPHED_OPS_PER_COMMIT` kernels.
    """
    if settings.kernel_cache:  # MLX makes the folder when it first writes there
        os.environ.setdefault("MLX_PTX_CACHE_DIR", str(Path(settings.kernel_cache).resolve()))
    if not settings.cuda_graphs:
        os.environ.setdefault("MLX_USE_CUDA_GRAPHS", "0")
        os.environ.setdefault("MLX_MAX_OPS_PER_BUFFER", str(UNGRAPHED_OPS_PER_COMMIT))


class MlxBackend(Backend):
    name = "mlx"

    def __init__(self, settings: InferenceSettings, config: Any) -> None:
        super().__init__(settings, config)
        cuda_settings(settings)  # before MLX's first use of the GPU, which reads them
        import mlx.core as mx

        from ..model import blas
        from ..model.openfold3 import OpenFold3
        from ..model.weights import load_state, load_weights, module_state

        self._openblas = blas.use_openblas()
        if settings.memory_limit_gib is not None:
            # MLX's host stops queueing work while more memory than this is in use: the bound
            # on what queued work holds (above all without CUDA graphs)
            mx.set_memory_limit(int(settings.memory_limit_gib * 2**30))
        if settings.demo:
            from .demo import demo_model

            state = module_state(demo_model(config).state_dict())
        elif Path(settings.weights).exists():
            state = load_weights(settings.weights)
        else:
            raise BackendUnavailable(
                f"weights file {settings.weights} does not exist (inference.weights in the config)")

        # A compiled denoising step pays on a GPU; on the CPU its compilation costs more than
        # it saves (benchmarks/RESULTS.md).
        self.model = OpenFold3(config.architecture, compiled=mx.default_device() == mx.gpu)
        load_state(self.model, state)
        if settings.precision != "float32":
            self.model.set_precision(getattr(mx, settings.precision))

    @property
    def device(self) -> str:
        import mlx.core as mx

        device = mx.default_device()
        if device == mx.gpu:
            kind = "Metal" if mx.metal.is_available() else "CUDA"
            return f"mlx gpu ({kind}, {mx.device_info().get('device_name', 'unknown')})"
        return f"mlx cpu ({'OpenBLAS' if self._openblas else 'its own BLAS'})"

    @property
    def batch_tokens(self) -> int:
        """The padded tokens one forward pass may hold (batching pays on a GPU, not on the CPU)."""
        if self.settings.batch_tokens is not None:
            return self.settings.batch_tokens
        return GPU_BATCH_TOKENS if self.model.compiled else 0

    def batch_size(self, batch: dict[str, Any]) -> int | None:
        """Tasks of one token bucket share forward passes, up to `batch_tokens` padded tokens."""
        from ..model.buckets import token_bucket

        size = token_bucket(int(batch["token_mask"].shape[-1]))
        return size if 2 * size <= self.batch_tokens else None

    def forward(self, batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """OpenFold3.forward's (batch, outputs) at inference, computed in MLX."""
        return self.forward_many([batch])[0]

    def forward_many(self, batches: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The tasks as one forward pass along the batch axis, each with its own seed."""
        import torch
        from openfold3.core.utils.tensor_utils import tensor_tree_map

        from ..model.batch import to_mlx_batch

        seeds = [int(np.asarray(batch["seed"]).flatten()[0]) for batch in batches]
        outputs = self.model.predict([to_mlx_batch(batch) for batch in batches], seeds,
                                     self.settings.model_chunk_size)
        results = []
        for batch, task in zip(batches, outputs, strict=True):
            task = {key: torch.from_numpy(np.array(value)) for key, value in task.items()}
            task["recycles"] = self.config.architecture.shared.num_recycles
            results.append((tensor_tree_map(lambda t: t.unsqueeze(1), batch), task))
        return results
