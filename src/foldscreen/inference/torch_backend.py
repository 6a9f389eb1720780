"""OpenFold3's own PyTorch model: the reference backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
            from ..model.weights import read_checkpoint

            state = read_checkpoint(Path(settings.weights))  # a bad file fails before the build
            with no_random_init():
                model = OpenFold3(config)
            model.load_state_dict(module_state(state, model), strict=True)
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


@contextmanager
def no_random_init() -> Iterator[None]:
    """OpenFold3's modules built without drawing their truncated-normal initial weights.

    OpenFold3 draws them with scipy (about 90 s for the full model on 2 CPU cores) and skips that
    itself when it loads a checkpoint; every weight is then loaded (`strict=True`). Its own
    `skip_random_init` cannot be used: its module, the experiment runner, imports wandb.
    """
    import openfold3.core.model.primitives.initialization as initialization

    drawn = initialization.trunc_normal_init_
    initialization.trunc_normal_init_ = lambda *args, **kwargs: None
    try:
        yield
    finally:
        initialization.trunc_normal_init_ = drawn


def module_state(state: dict[str, Any], model: Any) -> dict[str, Any]:
    """A checkpoint read by foldscreen's reader, as OpenFold3's module expects its keys.

    The reader checks the version and drops the `sample_diffusion` aliases; PyTorch's module
    holds both, so they are put back (as the same tensors) with the version tensor.
    """
    expected = model.state_dict()
    state = {**state, "version_tensor": expected["version_tensor"]}
    for key in expected:
        original = key.removeprefix("sample_diffusion.")
        if key != original and original in state:
            state[key] = state[original]
    return state
