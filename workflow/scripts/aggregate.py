from pathlib import Path

from foldscreen import logs
from foldscreen.reports import aggregate

logs.setup(snakemake.log[0])
aggregate(
    ingest_table=Path(snakemake.input.queries),
    ingest_failures=Path(snakemake.input.ingest_failures),
    msa_tables=[Path(p) for p in snakemake.input.msa],
    sample_tables=[Path(p) for p in snakemake.input.samples],
    failure_tables=[Path(p) for p in snakemake.input.inference_failures],
    out_samples=Path(snakemake.output.samples),
    out_queries=Path(snakemake.output.queries),
    out_failures=Path(snakemake.output.failures),
)
