"""The configured backend, built by name (each backend module imports only the interface)."""

from __future__ import annotations

from typing import Any

from .backend import Backend, BackendUnavailable
from .settings import InferenceSettings


def load_backend(settings: InferenceSettings, config: Any) -> Backend:
    """Build the configured backend and load its weights (once per chunk job)."""
    if settings.backend == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(settings, config)
    if settings.backend == "mlx":
        from .mlx_backend import MlxBackend

        return MlxBackend(settings, config)
    raise BackendUnavailable(f"unknown backend {settings.backend!r} (use torch or mlx)")
