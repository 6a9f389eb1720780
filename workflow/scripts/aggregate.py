from pathlib import Path

from foldscreen import logs
from foldscreen.contracts import PARTS
from foldscreen.reports import aggregate


def paths(name: str) -> list[Path]:
    return [Path(p) for p in snakemake.input[name]]


logs.setup(snakemake.log[0])
aggregate(
    ingest_tables=paths("queries"),
    ingest_failures=paths("ingest_failures"),
    msa_tables=paths("msa"),
    inference_failures=paths("inference_failures"),
    parts={name: paths(f"part_{name}") for name in PARTS},
    out=Path(snakemake.output[0]).parent,
    config_digest=snakemake.params.config_sha256,
)
