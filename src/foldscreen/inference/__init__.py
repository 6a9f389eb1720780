"""Inference: (query, seed) tasks run in chunks by a backend loaded once per chunk."""

from typing import Any

from .settings import InferenceSettings

__all__ = ["InferenceSettings", "run_chunk"]


def __getattr__(name: str) -> Any:
    """`run_chunk` pulls in OpenFold3's data code: imported on first use."""
    if name == "run_chunk":
        from .run import run_chunk

        return run_chunk
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
