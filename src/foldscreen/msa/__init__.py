"""MSA retrieval into a content-addressed cache shared across screens."""

from .build import MSA_COLUMNS, build_msa_table, build_msas, retry_record
from .sources import MODES, MsaSettings

__all__ = ["MODES", "MSA_COLUMNS", "MsaSettings", "build_msa_table", "build_msas", "retry_record"]
