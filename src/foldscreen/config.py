"""The screen configuration: validated against the workflow's schema, and its digest.

`workflow/schemas/config.schema.yaml` is the one description of every key and its default;
Snakemake validates the workflow's config against it (workflow/rules/common.smk) and the
`foldscreen` command line validates its own against the same file, with the same function.
Importing this module loads nothing beyond the standard library.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from typing import Any

CONFIG_SCHEMA = files("foldscreen.contracts") / "schemas" / "config.schema.yaml"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` checked against the schema, its defaults filled in (in place); raises naming the key."""
    from snakemake.utils import validate

    validate(config, str(CONFIG_SCHEMA))
    return config


# Settings that decide how a job runs, never what it writes: they stay out of the rules' params
# (Snakemake reruns a job whose params changed) and out of the config digest, so moving a screen
# from a CPU node to a GPU node reruns nothing.
RUNTIME_SETTINGS = {"inference": ("threads", "device", "model_chunk_size", "featurise_workers",
                                  "write_in_process", "batch_tokens", "gpus", "kernel_cache", "cuda_graphs",
                                  "memory_limit_gib")}


def config_sha256(config: Any) -> str:
    """Digest of a configuration (canonical JSON) but its runtime settings: every table keeps it."""
    kept = {section: {k: v for k, v in config[section].items() if k not in keys}
            for section, keys in RUNTIME_SETTINGS.items() if section in config}
    return hashlib.sha256(json.dumps({**config, **kept}, sort_keys=True, default=str).encode()).hexdigest()
