"""OpenFold3's feature batch (PyTorch tensors) as MLX arrays, converted once per task."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np


def to_mlx_batch(batch: dict[str, Any]) -> dict[str, mx.array]:
    """Every tensor of the batch as an MLX array: floats as float32, integers as int32.

    Non-tensor entries (the atom array, query ids, seeds) are left out.
    """
    converted = {}
    for key, value in batch.items():
        if not hasattr(value, "detach"):
            continue
        array = value.detach().cpu().numpy()
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        elif np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.int32)
        converted[key] = mx.array(array)
    return converted
