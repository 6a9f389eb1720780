"""The run's metadata, kept in the Parquet key-value metadata of every table."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from .. import __version__
from ..contracts import DEMO_WEIGHTS
from ..io import file_sha256

CREATED = "created"  # the only key that differs between two aggregations of the same predictions


def weights_sha256(weights: str) -> str:
    return DEMO_WEIGHTS if weights == DEMO_WEIGHTS else file_sha256(Path(weights))


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
