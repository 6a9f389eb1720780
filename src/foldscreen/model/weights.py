"""OpenFold3 weights into the MLX modules: safe checkpoint reading, a safetensors cache, exact keys.

A checkpoint is unpickled once, with `torch.load(weights_only=True)`, and converted to
`<name>.mlx.safetensors` next to it; later loads read that file and never unpickle. The cache
records the checkpoint's sha256 (and size and mtime, so that an unchanged checkpoint is not
hashed again at every load) and is rebuilt when the checkpoint's content changes.

The state read from a checkpoint has the MLX model's key set: the EMA weights when the checkpoint
has them; without the `sample_diffusion.diffusion_module.*` aliases of `diffusion_module.*`; and
without `version_tensor`, which is checked and then kept only as metadata.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import torch
from mlx.utils import tree_flatten

from ..io import file_sha256

log = logging.getLogger(__name__)

MODEL_VERSION = (2, 0, 0)  # OpenFold3's MODEL_VERSION, the architecture this port implements
VERSION_KEY = "version_tensor"
ALIAS_PREFIX = "sample_diffusion."  # sample_diffusion.diffusion_module.* is diffusion_module.*
RUNNER_PREFIX = "model."  # the network inside OpenFold3's Lightning module
WRAPPER_PREFIX = "_forward_module."  # Lightning < 2.1 wrapped the module for DeepSpeed
DEEPSPEED_STATES = ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")
CACHE_SUFFIX = ".mlx.safetensors"
CONVERTER = "1"  # bump when the conversion changes, so that older caches are rebuilt

# Globals that OpenFold3's Lightning and DeepSpeed checkpoints need beyond tensors, all in their
# `hyper_parameters` (the model class and its ml_collections config), which is never used.
TRAINING_GLOBALS = (
    "openfold3.projects.of3_all_atom.model.OpenFold3",
    "ml_collections.config_dict.config_dict.ConfigDict",
    "ml_collections.config_dict.config_dict.FieldReference",
    "ml_collections.config_dict.config_dict._Op",
    "_operator.add",
    "builtins.bool",
    "builtins.int",
    "builtins.float",
)


class WeightsMismatch(ValueError):
    """The checkpoint's keys are not the model's: lists what is missing and what is extra."""


class CheckpointError(ValueError):
    """A file that is not an OpenFold3 checkpoint foldscreen can read safely."""


class _TrainingOnly:
    """Inert stand-in for an allowed training global: records its arguments, runs nothing."""

    def __new__(cls, *args: Any) -> _TrainingOnly:
        return super().__new__(cls)

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def to_mlx(value: Any) -> mx.array:
    """A PyTorch tensor or NumPy array as an MLX array (float32 kept, no copy through lists)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return mx.array(np.asarray(value))


def load_state(module: nn.Module, state: Mapping[str, Any]) -> None:
    """Load `state` (OpenFold3 key -> tensor) into `module`; every key must match exactly."""
    _check_keys(module, state)
    module.load_weights([(key, to_mlx(value)) for key, value in state.items()], strict=True)


def check_checkpoint(path: str | Path, module: nn.Module) -> dict[str, str]:
    """Read a checkpoint once, as inference would, and check its weights fit `module` exactly.

    Raises FileNotFoundError (nothing there), CheckpointError (not a checkpoint, refused pickled
    globals, a model version this port does not implement) or WeightsMismatch (other keys).
    Returns the checkpoint's form and model version.
    """
    path = Path(path)
    state, form, version = _read(path)
    _check_keys(module, state)
    return {"form": form, "model_version": version, "tensors": str(len(state))}


def _check_keys(module: nn.Module, state: Mapping[str, Any]) -> None:
    expected = {key for key, _ in tree_flatten(module.parameters())}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise WeightsMismatch(
            f"weights do not match the model: {len(missing)} missing {missing[:20]}, "
            f"{len(unexpected)} unexpected {unexpected[:20]}")


def load_weights(path: str | Path) -> dict[str, mx.array]:
    """The model's weights from a .safetensors file, or from a checkpoint through its cache."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = convert(path)
    return mx.load(str(path))


def convert(checkpoint_path: str | Path) -> Path:
    """The checkpoint's safetensors cache, written unless it is there for this checkpoint."""
    checkpoint_path = Path(checkpoint_path)
    target = cache_path(checkpoint_path)
    source = checkpoint_file(checkpoint_path)
    recorded = safetensors_metadata(target)
    if recorded.get("converter") == CONVERTER and recorded.get("source_stat") == _stat(source):
        return target  # unchanged since conversion: no need to hash gigabytes at every model load
    digest = file_sha256(source)
    if recorded.get("converter") == CONVERTER and recorded.get("source_sha256") == digest:
        return target
    log.info("converting %s to %s", checkpoint_path, target)
    state, form, version = _read(checkpoint_path)
    metadata = {"converter": CONVERTER, "source": checkpoint_path.name, "source_sha256": digest,
                "source_stat": _stat(source), "source_form": form, "model_version": version}
    _save_atomically(target, {key: _float32(value) for key, value in state.items()}, metadata)
    return target


def _stat(path: Path) -> str:
    """Size and modification time of a file: what changes when a checkpoint is replaced."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def cache_path(checkpoint_path: Path) -> Path:
    return checkpoint_path.with_suffix(CACHE_SUFFIX)


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The inference weights of an OpenFold3 checkpoint file or DeepSpeed folder, keyed as the model."""
    return _read(Path(path))[0]


def checkpoint_file(path: Path) -> Path:
    """The file to unpickle: the checkpoint, or a DeepSpeed folder's model states of its `latest` tag."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint at {path}")
    latest = path / "latest"
    if not latest.is_file():
        raise CheckpointError(f"{path} is a folder without a `latest` file: not a DeepSpeed checkpoint")
    tag = path / latest.read_text().strip()
    for name in DEEPSPEED_STATES:
        if (tag / name).is_file():
            return tag / name
    raise CheckpointError(f"{tag} holds none of the DeepSpeed model states {DEEPSPEED_STATES}")


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The metadata in a safetensors file's header; empty when the file is absent or unreadable."""
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    except (OSError, ValueError):
        return {}
    return header.get("__metadata__", {}) if isinstance(header, dict) else {}


def module_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A PyTorch OpenFold3 module's `state_dict()` keyed as the MLX model (aliases, version dropped)."""
    state = _without_aliases(state)
    state.pop(VERSION_KEY, None)
    return state


def _read(path: Path) -> tuple[dict[str, torch.Tensor], str, str]:
    """The model's state, the checkpoint's form and the model version it records."""
    state, form = _inference_state(_unpickle(checkpoint_file(path)))
    _check_tensors(state, path)
    state = _without_aliases(state)
    return state, form, _checked_version(state.pop(VERSION_KEY, None), path)


def _unpickle(file: Path) -> Any:
    """torch.load with weights_only; the training globals become inert stand-ins."""
    allowed = [(_TrainingOnly, name) for name in TRAINING_GLOBALS]
    zipped = zipfile.is_zipfile(file)  # torch.save's format since PyTorch 1.6
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(file, map_location="cpu", weights_only=True, mmap=zipped)
        except Exception as err:  # torch.load fails on foreign bytes in many ways, none typed
            found = _refused_globals(file, err, zipped)
            if found:
                raise CheckpointError(
                    f"{file} holds Python objects that foldscreen will not unpickle: "
                    f"{', '.join(found)}. Only tensors and plain training state are read "
                    "(torch.load, weights_only=True).") from None
            raise CheckpointError(
                f"{file} is not a PyTorch checkpoint (or is damaged): torch.load says "
                f"{type(err).__name__}: {_gist(err)}") from None


def _refused_globals(file: Path, err: Exception, zipped: bool) -> list[str]:
    """The globals weights_only refused, found by scanning the pickle without running it; a
    legacy file cannot be scanned, but the unpickler names the first one it refused."""
    if not isinstance(err, pickle.UnpicklingError):
        return []
    named = re.findall(r"GLOBAL (\S+)", str(err))
    if zipped and named:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(file))
    return sorted(set(named))


def _gist(err: Exception) -> str:
    """The line of a torch.load error that says what was wrong (its messages run to paragraphs)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith(("Unsupported", "WeightsUnpickler"))]
    return (detail[-1] if detail else lines[0] if lines else "no message").removesuffix(".")[:200]


def _inference_state(checkpoint: Any) -> tuple[Mapping[str, Any], str]:
    """The weights to run (the EMA ones when the checkpoint has them) and the checkpoint's form.

    Forms: bare state dict, `ema` ({"ema": {"params": ...}}), `lightning` (`state_dict`) and
    `deepspeed` (`module`); `+ema` when a Lightning or DeepSpeed checkpoint's EMA weights are used.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"a checkpoint is a dict, this file holds a {type(checkpoint).__name__}")
    container = "deepspeed" if "module" in checkpoint else "lightning" if "state_dict" in checkpoint else None
    ema = checkpoint.get("ema")
    params = ema.get("params") if isinstance(ema, Mapping) else None
    if isinstance(params, Mapping) and set(params) - {VERSION_KEY}:  # EMA is empty before step 1
        return params, f"{container}+ema" if container else "ema"
    if container is None:
        return checkpoint, "bare"
    return _network_state(checkpoint["module" if container == "deepspeed" else "state_dict"]), container


def _network_state(runner_state: Mapping[str, Any]) -> dict[str, Any]:
    """The `model.*` entries of a Lightning module's state, without that prefix."""
    if runner_state and all(key.startswith(WRAPPER_PREFIX) for key in runner_state):
        runner_state = {key.removeprefix(WRAPPER_PREFIX): value for key, value in runner_state.items()}
    state = {key.removeprefix(RUNNER_PREFIX): value for key, value in runner_state.items()
             if key.startswith(RUNNER_PREFIX)}
    if not state:
        raise CheckpointError(f"the checkpoint's Lightning state has no {RUNNER_PREFIX}* weights")
    return state


def _check_tensors(state: Mapping[str, Any], path: Path) -> None:
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {key} is a {type(value).__name__}, not a tensor")
        if value.numel() == 0:
            raise CheckpointError(
                f"{path}: {key} is empty (a partitioned ZeRO-3 checkpoint?); consolidate it first "
                "with DeepSpeed's zero_to_fp32")


def _without_aliases(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state without `sample_diffusion.diffusion_module.*`, once each alias is found identical."""
    kept = {}
    for key, value in state.items():
        original = key.removeprefix(ALIAS_PREFIX)
        if not key.startswith(ALIAS_PREFIX + "diffusion_module."):
            kept[key] = value
        elif original not in state or not torch.equal(value, state[original]):
            raise WeightsMismatch(f"{key} should alias {original}, but that is missing or differs")
    return kept


def _checked_version(version: torch.Tensor | None, path: Path) -> str:
    """The model version as text, once it is found to be the one this port implements."""
    if version is None:
        log.warning("%s records no version_tensor; assuming OpenFold3 model version %s", path,
                    _text(MODEL_VERSION))
        return "unrecorded"
    found = version.flatten().tolist()
    if found != list(MODEL_VERSION):
        raise CheckpointError(
            f"{path} is OpenFold3 model version {_text(found)}; foldscreen implements "
            f"version {_text(MODEL_VERSION)}")
    return _text(MODEL_VERSION)


def _text(version: Sequence[float]) -> str:
    return ".".join(f"{v:g}" for v in version)


def _float32(tensor: torch.Tensor) -> mx.array:
    """Floating-point weights as float32 (what the MLX model computes in; exact for bf16/fp16)."""
    return to_mlx(tensor.float() if tensor.is_floating_point() else tensor)


def _save_atomically(target: Path, arrays: dict[str, mx.array], metadata: dict[str, str]) -> None:
    """Write under a temporary name in the same folder, then rename: no half-written cache."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp.safetensors")
    try:
        mx.save_safetensors(str(temporary), arrays, metadata=metadata)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
