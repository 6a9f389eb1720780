"""The weights, checked once before any job runs, so that bad weights stop a screen at its start.

The check reads the checkpoint as inference will (`torch.load(weights_only=True)`, the EMA
weights, the version) and matches its keys against the model; it costs a model build and one
read of the checkpoint. A passed check is recorded under the checkpoint's path, sizes and
modification times, so that later runs over the same file only look at its metadata.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import __version__
from ..io import atomic_write_json
from .settings import InferenceSettings

KEY = "inference.weights"


class WeightsRefused(ValueError):
    """The configured weights cannot be used: the message names the config key and what is wrong."""


def check_weights(settings: InferenceSettings, records: Path) -> None:
    """Refuse weights that are missing, not a checkpoint, unsafe, of other keys or another version.

    `records` is the folder of the passed checks (one small JSON file per checkpoint state).
    """
    if settings.demo:
        return
    path = Path(settings.weights)
    if not path.exists():
        raise WeightsRefused(f"{KEY}: there is no file or folder {path} (set it to an OpenFold3 "
                             "checkpoint, such as of3-ob-2025-06-30-174k.pt, or to demo)")
    record = records / f"weights-{fingerprint(path)[:32]}.json"
    if record.is_file():
        return
    summary = _read_and_match(settings)
    atomic_write_json(record, {"weights": str(path), **summary})
    for stale in records.glob("weights-*.json"):
        if stale != record:
            stale.unlink(missing_ok=True)


def fingerprint(path: Path) -> str:
    """Digest of the checkpoint's path and of the size and modification time of its file(s)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    return hashlib.sha256(json.dumps([stats, __version__]).encode()).hexdigest()


def _read_and_match(settings: InferenceSettings) -> dict[str, str]:
    """The checkpoint read once and matched against the model the settings build."""
    from ..model.openfold3 import OpenFold3
    from ..model.weights import CheckpointError, WeightsMismatch, check_checkpoint
    from .model_config import model_config

    module = OpenFold3(model_config(settings).architecture)
    try:
        return check_checkpoint(settings.weights, module)
    except (OSError, CheckpointError, WeightsMismatch) as err:
        raise WeightsRefused(f"{KEY}: {_reason(err)}") from None


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"cannot read {err.filename or 'the checkpoint'}: {err.strerror}"
    return str(err)

