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


def config_sha256(config: Any) -> str:
    """Digest of a configuration (canonical JSON), kept in every table's metadata."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
