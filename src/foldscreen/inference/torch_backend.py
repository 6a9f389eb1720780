"""OpenFold3's own PyTorch model: the reference backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backend import Backend, BackendUnavailable
from .seeding import seed_everything
from .settings import InferenceSettings

DEMO_WEIGHT_SEED = 0
# OpenFold3 initialises its output layers to zero; the demo model perturbs them so that its
# confidences vary between samples (they still mean nothing).
DEMO_ZERO_JITTER = 0.02


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, settings: InferenceSettings, config: Any) -> None:
        super().__init__(settings, config)
        import torch
        from openfold3.projects.of3_all_atom.model import OpenFold3

        torch.set_num_threads(settings.threads)
        state = None if settings.demo else read_checkpoint(Path(settings.weights))
        seed_everything(DEMO_WEIGHT_SEED)
        model = OpenFold3(config)
        if state is None:
            _perturb_zero_weights(model)
        else:
            model.load_state_dict(matching_state(state, model, settings.weights))
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


def _perturb_zero_weights(model: Any) -> None:
    import torch

    generator = torch.Generator().manual_seed(DEMO_WEIGHT_SEED + 1)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2 and not param.any():
                param.add_(torch.randn(param.shape, generator=generator) * DEMO_ZERO_JITTER)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The inference weights of an OpenFold3 checkpoint.

    Accepts a bare state dict, an EMA-wrapped one (`ema.params`, preferred), a Lightning
    `state_dict` or a DeepSpeed `module`. Only plain tensors are unpickled.
    """
    import torch

    if not path.is_file():
        raise BackendUnavailable(f"weights file {path} does not exist (inference.weights in the config)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise BackendUnavailable(f"{path} is not a checkpoint foldscreen can read safely: {err}") from err
    if isinstance(checkpoint.get("ema"), dict) and "params" in checkpoint["ema"]:
        state = checkpoint["ema"]["params"]
    else:
        state = checkpoint.get("state_dict") or checkpoint.get("module") or checkpoint
    return {key.removeprefix("model."): value for key, value in state.items()}


def matching_state(state: dict[str, Any], model: Any, path: str) -> dict[str, Any]:
    """The state, once its keys and version are checked against the model's."""
    import torch
    from openfold3.projects.of3_all_atom.model import MODEL_VERSION

    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise BackendUnavailable(
            f"{path} does not match OpenFold3's model: missing keys {missing[:10]}, "
            f"unexpected keys {unexpected[:10]}")
    if not torch.equal(state["version_tensor"], MODEL_VERSION):
        raise BackendUnavailable(
            f"{path} is model version {state['version_tensor'].tolist()}, "
            f"this OpenFold3 expects {MODEL_VERSION.tolist()}")
    return state
