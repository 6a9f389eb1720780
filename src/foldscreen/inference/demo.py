"""The demo model's weights: OpenFold3's PyTorch module with seeded random weights.

Both backends start from it (the MLX one converts its state), so a demo screen gives the same
meaningless structures on either.
"""

from __future__ import annotations

from typing import Any

from .seeding import seed_everything

DEMO_WEIGHT_SEED = 0
# OpenFold3 initialises its output layers to zero; the demo model perturbs them so that its
# confidences vary between samples (they still mean nothing).
DEMO_ZERO_JITTER = 0.02


def demo_model(config: Any) -> Any:
    """The demo model: OpenFold3's module with seeded random weights (the same on every run)."""
    import torch
    from openfold3.projects.of3_all_atom.model import OpenFold3

    seed_everything(DEMO_WEIGHT_SEED)
    model = OpenFold3(config)
    generator = torch.Generator().manual_seed(DEMO_WEIGHT_SEED + 1)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2 and not param.any():
                param.add_(torch.randn(param.shape, generator=generator) * DEMO_ZERO_JITTER)
    return model.eval()
