"""MSA retrieval into a content-addressed cache shared across screens."""

from .build import build_msa_table, build_msas, retry_record
from .sources import MODES, MsaSettings

__all__ = ["MODES", "MsaSettings", "build_msa_table", "build_msas", "retry_record"]
