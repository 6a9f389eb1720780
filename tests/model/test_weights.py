"""Reading OpenFold3 checkpoints safely in every form, and converting them once to safetensors."""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from openfold3.core.utils.exponential_moving_average import ExponentialMovingAverage
from openfold3.projects.of3_all_atom.model import OpenFold3
from openfold3.projects.of3_all_atom.runner import OpenFold3AllAtom
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.types import LRSchedulerConfig

import foldscreen.model.weights as weights_module
from foldscreen.cli import main
from foldscreen.inference.model_config import model_config
from foldscreen.inference.settings import InferenceSettings
from foldscreen.io import file_sha256
from foldscreen.model.primitives import Attention
from foldscreen.model.weights import (
    TRAINING_GLOBALS,
    CheckpointError,
    WeightsMismatch,
    cache_path,
    convert,
    load_state,
    load_weights,
    read_checkpoint,
    safetensors_metadata,
)

from .parity import randomise

# The first pair-stack triangle attention's gated MHA: OpenFold3's Attention(32, 32, 32, 32, 4).
ATTENTION = "pairformer_stack.blocks.0.pair_stack.tri_att_start.mha."
FULL_SIZE_PARAMETERS = 368_293_788
# Buffers, not parameters, but weights all the same: the diffusion time embedding's projection.
FOURIER = ["diffusion_module.diffusion_conditioning.fourier_emb.b",
           "diffusion_module.diffusion_conditioning.fourier_emb.w"]
FORMS = {"bare": "bare", "ema": "ema", "lightning": "lightning+ema", "lightning_step0": "lightning",
         "deepspeed": "deepspeed+ema", "deepspeed_step0": "deepspeed"}


def demo_model(seed: int) -> OpenFold3:
    return randomise(OpenFold3(model_config(InferenceSettings())), seed)


def inference_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What reading must give: the state without the sample_diffusion aliases and version_tensor."""
    return {key: value for key, value in model.state_dict().items()
            if not key.startswith("sample_diffusion.") and key != "version_tensor"}


def lightning_checkpoints(model: OpenFold3, folder: Path) -> tuple[Path, Path]:
    """Checkpoints written by OpenFold3's Lightning runner, before its first step (no EMA weights)
    and after one (the EMA weights are `model`'s, the network's have moved away from them)."""
    runner = OpenFold3AllAtom(model.config)
    runner.model.load_state_dict(model.state_dict())
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[ModelCheckpoint(dirpath=folder)])
    trainer.strategy.connect(runner)
    trainer.save_checkpoint(folder / "step0.ckpt")
    runner.ema.init_params(runner.model)
    optimizers = runner.configure_optimizers()
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    for param in runner.model.parameters():
        param.grad = torch.ones_like(param)
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        for param in runner.model.parameters():
            param.add_(1.0)
    trainer.strategy.optimizers = [optimizer]
    trainer.strategy.lr_scheduler_configs = [LRSchedulerConfig(scheduler, interval="step")]
    trainer.save_checkpoint(folder / "step1.ckpt")
    return folder / "step1.ckpt", folder / "step0.ckpt"


def deepspeed_folder(lightning: Path, folder: Path, prefix: str = "") -> Path:
    """A Lightning DeepSpeed checkpoint folder as DeepSpeed lays it out (DeepSpeed is not installed
    here): the Lightning module in `module`, DeepSpeed's and Lightning's own state beside it."""
    checkpoint = torch.load(lightning, weights_only=False)  # our own file
    module = OrderedDict((prefix + key, value) for key, value in checkpoint.pop("state_dict").items())
    del checkpoint["optimizer_states"]
    states = {
        "module": module, "buffer_names": [], "optimizer": None,
        "param_shapes": [OrderedDict((key, value.shape) for key, value in module.items())],
        "frozen_param_shapes": None, "shared_params": {}, "frozen_param_fragments": None,
        "lr_scheduler": None, "data_sampler": None, "random_ltd": None,
        "sparse_tensor_module_names": set(), "skipped_steps": 0, "global_steps": 1,
        "global_samples": 1, "dp_world_size": 1, "mp_world_size": 1,
        "ds_config": {"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": 1},
        "ds_version": "0.16.4", **checkpoint,
    }
    (folder / "checkpoint").mkdir(parents=True)
    torch.save(states, folder / "checkpoint" / "mp_rank_00_model_states.pt")
    (folder / "latest").write_text("checkpoint\n")
    return folder


@pytest.fixture(scope="module")
def model() -> OpenFold3:
    return demo_model(seed=0)


@pytest.fixture(scope="module")
def checkpoints(model, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {"bare": folder / "bare.pt", "ema": folder / "ema.pt"}
    torch.save(model.state_dict(), paths["bare"])
    ema = ExponentialMovingAverage(model, decay=0.999)
    ema.init_params(model)
    torch.save({"ema": ema.state_dict()}, paths["ema"])
    paths["lightning"], paths["lightning_step0"] = lightning_checkpoints(model, folder / "lightning")
    paths["deepspeed"] = deepspeed_folder(paths["lightning"], folder / "deepspeed.ckpt")
    paths["deepspeed_step0"] = deepspeed_folder(  # as Lightning < 2.1 wrote them
        paths["lightning_step0"], folder / "deepspeed_step0.ckpt", prefix="_forward_module.")
    return paths


@pytest.mark.parametrize("name", FORMS)
def test_every_form_reads_to_the_same_state(model, checkpoints, name):
    state = read_checkpoint(checkpoints[name])
    expected = inference_state(model)
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[key], value) for key, value in expected.items())
    cache = convert(checkpoints[name])
    assert cache == cache_path(checkpoints[name]) and cache.parent == checkpoints[name].parent
    assert safetensors_metadata(cache)["source_form"] == FORMS[name]


def test_ema_weights_are_preferred_to_the_network_weights(model, checkpoints):
    network = torch.load(checkpoints["lightning"], weights_only=False)["state_dict"]
    assert not torch.equal(network["model.linear_z.weight"], model.linear_z.weight)
    assert torch.equal(read_checkpoint(checkpoints["lightning"])["linear_z.weight"], model.linear_z.weight)


def test_sample_diffusion_aliases_are_dropped(model, checkpoints):
    aliases = [key for key in model.state_dict() if key.startswith("sample_diffusion.")]
    assert aliases and all(key.startswith("sample_diffusion.diffusion_module.") for key in aliases)
    state = read_checkpoint(checkpoints["bare"])
    assert not any(key.startswith("sample_diffusion.") for key in state)
    assert all(key.removeprefix("sample_diffusion.") in state for key in aliases)


def test_an_alias_that_differs_from_its_original_is_refused(model, tmp_path):
    state = {key: value.clone() for key, value in model.state_dict().items()}
    alias = next(key for key in state if key.startswith("sample_diffusion."))
    state[alias] += 1.0
    torch.save(state, tmp_path / "split.pt")
    with pytest.raises(WeightsMismatch, match=re.escape(alias)):
        read_checkpoint(tmp_path / "split.pt")


@pytest.mark.parametrize("change", [None, "removed", "renamed"])
def test_a_missing_or_renamed_key_is_named(model, tmp_path, change):
    state = model.state_dict()
    key, renamed = ATTENTION + "linear_k.weight", ATTENTION + "linear_key.weight"
    if change is not None:
        value = state.pop(key)
        if change == "renamed":
            state[renamed] = value
    torch.save(state, tmp_path / "changed.pt")
    read = read_checkpoint(tmp_path / "changed.pt")
    difference = {"removed": {key}, "renamed": {key, renamed}}.get(change, set())
    assert set(read) ^ set(inference_state(model)) == difference
    part = {name.removeprefix(ATTENTION): value for name, value in read.items() if name.startswith(ATTENTION)}
    attention = Attention(32, 32, 32, 32, 4)
    if change is None:
        load_state(attention, part)
        assert np.array_equal(np.array(attention.linear_k.weight), state[key].numpy())
    else:
        with pytest.raises(WeightsMismatch, match=r"missing \['linear_k\.weight'\]"):
            load_state(attention, part)


def test_the_model_version_is_checked_then_dropped(model, checkpoints, tmp_path):
    assert "version_tensor" in model.state_dict()
    assert "version_tensor" not in read_checkpoint(checkpoints["bare"])
    state = model.state_dict()
    state["version_tensor"] = torch.tensor([1.0, 0.0, 0.0])
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"version 1\.0\.0; foldscreen implements version 2\.0\.0"):
        read_checkpoint(tmp_path / "old.pt")


def test_a_checkpoint_without_a_version_is_read_with_a_warning(model, tmp_path, caplog):
    torch.save(inference_state(model), tmp_path / "unversioned.pt")
    assert read_checkpoint(tmp_path / "unversioned.pt").keys() == inference_state(model).keys()
    assert "records no version_tensor" in caplog.text


def test_only_the_globals_of_openfold3s_lightning_checkpoints_are_allowed(checkpoints):
    def needed() -> set[str]:
        return set(torch.serialization.get_unsafe_globals_in_checkpoint(checkpoints["lightning"]))

    assert needed() == set(TRAINING_GLOBALS)
    read_checkpoint(checkpoints["lightning"])
    assert needed() == set(TRAINING_GLOBALS)  # allowed while reading, not afterwards


def _plant(marker: str) -> None:
    Path(marker).write_text("ran")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return _plant, (self.marker,)


@pytest.mark.parametrize("zipped", [True, False])  # torch.save's format, and the legacy one
def test_a_file_needing_other_globals_is_refused_without_running_it(model, tmp_path, zipped):
    marker, path = tmp_path / "ran", tmp_path / "payload.ckpt"
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": {"x": _Payload(marker)}}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointError, match=re.escape(f"{_plant.__module__}._plant")):
        read_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: unpickled in full, it runs
    assert marker.exists()


def _no_unpickling(*args, **kwargs):
    raise AssertionError("torch.load called although the safetensors cache is current")


def test_the_cache_is_written_once_and_round_trips_exactly(model, tmp_path, monkeypatch):
    path = tmp_path / "of3.pt"
    torch.save(model.state_dict(), path)
    weights = load_weights(path)
    cache = tmp_path / "of3.mlx.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["of3.mlx.safetensors", "of3.pt"]
    metadata = safetensors_metadata(cache)
    assert metadata["source_sha256"] == file_sha256(path)
    assert (metadata["source_form"], metadata["model_version"]) == ("bare", "2.0.0")
    expected = inference_state(model)
    assert weights.keys() == expected.keys()
    for key, value in expected.items():
        assert weights[key].dtype == mx.float32 and np.array_equal(np.array(weights[key]), value.numpy())

    written = cache.stat().st_mtime_ns
    monkeypatch.setattr(torch, "load", _no_unpickling)
    for again in (load_weights(path), load_weights(cache)):
        assert again.keys() == expected.keys()
        assert all(np.array_equal(np.array(again[key]), value.numpy()) for key, value in expected.items())
    assert cache.stat().st_mtime_ns == written


def test_a_changed_checkpoint_is_converted_again(model, tmp_path):
    path = tmp_path / "of3.pt"
    torch.save(model.state_dict(), path)
    first = safetensors_metadata(convert(path))["source_sha256"]
    other = demo_model(seed=1)
    torch.save(other.state_dict(), path)
    weights = load_weights(path)
    assert safetensors_metadata(cache_path(path))["source_sha256"] == file_sha256(path) != first
    key = ATTENTION + "linear_q.weight"
    assert np.array_equal(np.array(weights[key]), other.state_dict()[key].numpy())
    assert not np.array_equal(np.array(weights[key]), model.state_dict()[key].numpy())


def test_an_unchanged_checkpoint_is_not_hashed_again(model, tmp_path, monkeypatch):
    path = tmp_path / "of3.pt"
    torch.save(model.state_dict(), path)
    cache = convert(path)
    written = cache.stat().st_mtime_ns

    def _no_hashing(_):
        raise AssertionError("hashed an unchanged checkpoint")
    monkeypatch.setattr(weights_module, "file_sha256", _no_hashing)
    assert convert(path) == cache
    monkeypatch.undo()
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # touched, same bytes
    assert convert(path) == cache
    assert cache.stat().st_mtime_ns == written


def test_convert_weights_command(model, tmp_path, capsys):
    path = tmp_path / "of3.pt"
    torch.save(model.state_dict(), path)
    main(["convert-weights", str(path)])
    expected = inference_state(model)
    count = sum(value.numel() for value in expected.values())
    assert capsys.readouterr().out.splitlines() == [
        str(cache_path(path)), f"sha256 {file_sha256(cache_path(path))}",
        f"{count:,} parameters in {len(expected)} arrays"]


@pytest.mark.slow
def test_full_size_checkpoints_hold_every_parameter_once(tmp_path, monkeypatch):
    """The released architecture: bare and EMA checkpoints read to its 368,293,788 parameters
    (plus the 512 numbers of the Fourier embedding's buffers), each alias counted once."""
    import openfold3.core.model.primitives.initialization as initialization
    from openfold3.projects.of3_all_atom.project_entry import OF3ProjectEntry

    # OpenFold3 draws its truncated-normal weights with scipy (90 s for this model on 2 cores);
    # the values do not matter here, only the names and shapes of what is saved and read.
    monkeypatch.setattr(initialization, "trunc_normal_init_",
                        lambda weights, scale=1.0, fan="fan_in": torch.nn.init.normal_(weights, std=0.02))
    config = OF3ProjectEntry().get_model_config_with_presets(["predict", "mps"])
    config.settings.memory.eval.use_triton_triangle_kernels = False
    full = OpenFold3(config)
    assert sum(param.numel() for param in full.parameters()) == FULL_SIZE_PARAMETERS
    expected = inference_state(full)
    assert sorted(set(expected) - {name for name, _ in full.named_parameters()}) == FOURIER
    path = tmp_path / "full.pt"
    for checkpoint in (full.state_dict(), {"ema": {"params": full.state_dict(), "decay": 0.999}}):
        torch.save(checkpoint, path)
        state = read_checkpoint(path)
        assert state.keys() == expected.keys()
        assert sum(state.pop(key).numel() for key in FOURIER) == 512
        assert sum(value.numel() for value in state.values()) == FULL_SIZE_PARAMETERS
        del state
        path.unlink()
