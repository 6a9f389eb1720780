"""The backend interface: a model loaded once, mapping an OpenFold3 feature batch to its outputs.

A backend takes the batch made by OpenFold3's own inference featurisation and returns what
`OpenFold3.forward` returns in eval mode: the batch (with a sample dimension added) and the
outputs (`atom_positions_predicted`, `plddt_logits`, `pae_logits`, `pde_logits`,
`distogram_logits`, `experimentally_resolved_logits`, ...) as PyTorch tensors, so that
confidence scoring and file writing are the same for every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from .settings import InferenceSettings


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here; says what to do instead."""


class Backend(ABC):
    name: str

    def __init__(self, settings: InferenceSettings, config: Any) -> None:
        self.settings = settings
        self.config = config

    @property
    @abstractmethod
    def device(self) -> str:
        """Where the model runs, in words for the log and the tables."""

    @abstractmethod
    def forward(self, batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the model on one featurised task; the random state is already seeded."""

    def batch_size(self, batch: dict[str, Any]) -> int | None:
        """The padded tokens of a task that may share a forward pass with tasks of the same
        padded size; None (the default) runs every task alone."""
        return None

    def forward_many(self, batches: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """`forward` of several tasks of one group (by default, one after another)."""
        return [self.forward(batch) for batch in batches]
