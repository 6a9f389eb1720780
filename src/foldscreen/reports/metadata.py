"""The run's metadata, kept in the Parquet key-value metadata of every table."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__
from ..io import file_sha256

DEMO = "demo"  # the weights value of the demo model
CREATED = "created"  # the only key that differs between two aggregations of the same predictions


def config_sha256(config: Any) -> str:
    """Digest of a configuration (canonical JSON)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def weights_sha256(weights: str) -> str:
    return DEMO if weights == DEMO else file_sha256(Path(weights))


def run_metadata(samples: pd.DataFrame, config_digest: str,
                 created: datetime | None = None) -> dict[str, str]:
    """Versions, weights, config digest, backend and device of the samples; the creation time."""
    try:
        openfold3 = version("openfold3")
    except PackageNotFoundError:
        openfold3 = "not installed"

    def values(column: str) -> list[str]:
        return sorted({str(v) for v in samples[column].unique()})

    return {
        "foldscreen_version": __version__,
        "openfold3_version": openfold3,
        "weights": ",".join(values("weights")),
        "weights_sha256": ",".join(weights_sha256(w) for w in values("weights")),
        "config_sha256": config_digest,
        "backend": ",".join(values("backend")),
        "device": ",".join(values("device")),
        CREATED: (created or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
