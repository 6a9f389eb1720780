from pathlib import Path

from foldscreen import logs
from foldscreen.reports import aggregate


def paths(name: str) -> list[Path]:
    return [Path(p) for p in snakemake.input[name]]


logs.setup(snakemake.log[0])
aggregate(
    ingest_tables=paths("queries"),
    ingest_failures=paths("ingest_failures"),
    msa_tables=paths("msa"),
    sample_tables=paths("samples"),
    failure_tables=paths("inference_failures"),
    out_samples=Path(snakemake.output.samples),
    out_queries=Path(snakemake.output.queries),
    out_failures=Path(snakemake.output.failures),
)
