"""OpenFold3 weights into the MLX modules: exact key matching, one copy of aliased keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten


class WeightsMismatch(ValueError):
    """The checkpoint's keys are not the model's: lists what is missing and what is extra."""


def to_mlx(value: Any) -> mx.array:
    """A PyTorch tensor or NumPy array as an MLX array (float32 kept, no copy through lists)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return mx.array(np.asarray(value))


def load_state(module: nn.Module, state: Mapping[str, Any]) -> None:
    """Load `state` (OpenFold3 key -> tensor) into `module`; every key must match exactly."""
    expected = {key for key, _ in tree_flatten(module.parameters())}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise WeightsMismatch(
            f"weights do not match the model: {len(missing)} missing {missing[:20]}, "
            f"{len(unexpected)} unexpected {unexpected[:20]}")
    module.load_weights([(key, to_mlx(value)) for key, value in state.items()], strict=True)
