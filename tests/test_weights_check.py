"""Bad weights stop a screen once, before any job, with a message that names inference.weights."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import make_screen, run_snakemake

from foldscreen.inference.preflight import WeightsRefused, check_weights
from foldscreen.inference.settings import InferenceSettings


class Payload:
    """A pickled object that is not training state: weights_only refuses it."""


@pytest.fixture(scope="module")
def full_state() -> dict[str, torch.Tensor]:
    """Every weight of the released architecture as a zero-stride view of one zero (a small file)."""
    from mlx.utils import tree_flatten

    from foldscreen.inference.model_config import model_config
    from foldscreen.model.openfold3 import OpenFold3

    module = OpenFold3(model_config(InferenceSettings(weights="full.pt")).architecture)
    state = {key: torch.zeros(()).expand(tuple(value.shape))
             for key, value in tree_flatten(module.parameters())}
    return {**state, "version_tensor": torch.tensor([2.0, 0.0, 0.0])}


def bad_checkpoint(kind: str, folder: Path, full_state: dict[str, torch.Tensor]) -> Path:
    path = folder / f"{kind}.pt"
    if kind == "corrupt":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        torch.save({"version_tensor": torch.tensor([2.0, 0.0, 0.0]), "w": torch.ones(1000)}, path)
        path.write_bytes(path.read_bytes()[:3000])
    elif kind == "refused_globals":
        torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload()}}, path)
    elif kind == "wrong_keys":
        state = dict(full_state)
        del state["aux_heads.distogram.linear.weight"]
        torch.save({**state, "extra.weight": torch.ones(2)}, path)
    elif kind == "wrong_version":
        torch.save({**full_state, "version_tensor": torch.tensor([1.0, 0.0, 0.0])}, path)
    return path


MESSAGES = {
    "missing": "there is no file or folder",
    "corrupt": "is not a PyTorch checkpoint (or is damaged)",
    "truncated": "is not a PyTorch checkpoint (or is damaged)",
    "refused_globals": f"holds Python objects that foldscreen will not unpickle: {__name__}.Payload",
    "wrong_keys": "weights do not match the model: 1 missing ['aux_heads.distogram.linear.weight'], "
                  "1 unexpected ['extra.weight']",
    "wrong_version": "is OpenFold3 model version 1.0.0; foldscreen implements version 2.0.0",
}


@pytest.mark.parametrize("kind", MESSAGES)
def test_each_kind_of_bad_weights_has_its_own_message(kind, tmp_path, full_state):
    path = bad_checkpoint(kind, tmp_path, full_state)
    with pytest.raises(WeightsRefused) as refused:
        check_weights(InferenceSettings(weights=str(path)), tmp_path / "records")
    message = str(refused.value)
    assert message.startswith("inference.weights: ") and MESSAGES[kind] in message, message
    assert not (tmp_path / "records").exists()  # a refusal is never recorded as passed


def test_good_weights_are_read_once_then_known_by_their_size_and_time(tmp_path, full_state, monkeypatch):
    path = tmp_path / "of3.pt"
    torch.save(full_state, path)
    settings = InferenceSettings(weights=str(path))
    check_weights(settings, tmp_path / "records")
    assert len(list((tmp_path / "records").glob("weights-*.json"))) == 1

    def no_load(*args, **kwargs):
        raise AssertionError("the checkpoint was read again")

    monkeypatch.setattr(torch, "load", no_load)
    check_weights(settings, tmp_path / "records")  # unchanged: not read again
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    with pytest.raises(WeightsRefused, match="the checkpoint was read again"):  # touched: read
        check_weights(settings, tmp_path / "records")


def test_demo_weights_need_no_check(tmp_path):
    check_weights(InferenceSettings(), tmp_path / "records")
    assert not (tmp_path / "records").exists()


def weights_screen(folder: Path, weights: str) -> Path:
    make_screen(folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["inference"]["weights"] = weights
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "corrupt", "refused_globals"])
def test_the_workflow_stops_before_any_job_naming_the_weights(kind, tmp_path, full_state):
    path = bad_checkpoint(kind, tmp_path, full_state)
    folder = weights_screen(tmp_path / "screen", str(path))
    result = run_snakemake(folder, "--cores", "2", check=False)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("inference.weights: ")]
    assert MESSAGES[kind] in lines[at]
    assert lines[at - 1].startswith("WorkflowError") and len(lines) - at < 8  # no long traceback
    assert not (folder / "results" / "test" / "ingest").exists()  # no job ran


@pytest.mark.slow
def test_alignment_alone_needs_no_weights(tmp_path):
    """`snakemake msa` on a networked node without the weights (README: Alignments)."""
    folder = weights_screen(tmp_path / "screen", str(tmp_path / "on_the_gpu_node.pt"))
    run_snakemake(folder, "msa", "--cores", "2")
    tables = sorted((folder / "results" / "test" / "msa").glob("chunk_*.parquet"))
    assert len(tables) == 3 and sum(len(pd.read_parquet(t)) for t in tables) == 4  # 4 protein chains
