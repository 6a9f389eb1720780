"""Inference: (query, seed) tasks run in chunks by a backend loaded once per chunk."""

from .run import run_chunk
from .settings import InferenceSettings

__all__ = ["InferenceSettings", "run_chunk"]
