"""Logging for workflow jobs and the command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup(log_file: str | Path | None = None) -> None:
    """Log to `log_file` (and send warnings and stray output there too), else to stderr."""
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_file, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stdout = sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
    logging.getLogger("openfold3").setLevel(logging.WARNING)  # it logs every file and hydrogen
