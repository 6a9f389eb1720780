"""OpenFold3's own PyTorch model: the reference backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backend import Backend, BackendUnavailable
from .demo import demo_model
from .settings import InferenceSettings


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, settings: InferenceSettings, config: Any) -> None:
        super().__init__(settings, config)
        import torch
        from openfold3.projects.of3_all_atom.model import OpenFold3

        torch.set_num_threads(settings.threads)
        if not settings.demo and not Path(settings.weights).exists():
            raise BackendUnavailable(
                f"weights file {settings.weights} does not exist (inference.weights in the config)")
        if settings.demo:
            model = demo_model(config)
        else:
            model = OpenFold3(config)
            model.load_state_dict(checkpoint_state(Path(settings.weights), model), strict=True)
        self.model = model.to(settings.device).eval()

    @property
    def device(self) -> str:
        import torch

        if self.settings.device.startswith("cuda"):
            return f"torch {self.settings.device} ({torch.cuda.get_device_name(self.settings.device)})"
        return f"torch {self.settings.device} ({torch.get_num_threads()} threads)"

    def forward(self, batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        import torch
        from openfold3.core.utils.tensor_utils import tensor_tree_map

        batch = tensor_tree_map(lambda t: t.to(self.settings.device), batch)
        with torch.no_grad():
            batch, outputs = self.model(batch)
        to_cpu = lambda t: t.cpu()  # noqa: E731
        return (tensor_tree_map(to_cpu, batch),
                tensor_tree_map(to_cpu, outputs))


def checkpoint_state(path: Path, model: Any) -> dict[str, Any]:
    """The checkpoint read by foldscreen's reader, as OpenFold3's module expects its keys.

    The reader checks the version and drops the `sample_diffusion` aliases; PyTorch's module
    holds both, so they are put back (as the same tensors) with the version tensor.
    """
    from ..model.weights import read_checkpoint

    state = read_checkpoint(path)
    expected = model.state_dict()
    state["version_tensor"] = expected["version_tensor"]
    for key in expected:
        original = key.removeprefix("sample_diffusion.")
        if key != original and original in state:
            state[key] = state[original]
    return state
