"""MSA retrieval into a content-addressed cache shared across screens."""

from .build import MODES, build_msa_table, build_msas

__all__ = ["MODES", "build_msa_table", "build_msas"]
