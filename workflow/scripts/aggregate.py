from pathlib import Path

from foldscreen import logs
from foldscreen.reports import aggregate

logs.setup(snakemake.log[0])
paths = {name: [Path(p) for p in snakemake.input[name]] for name in snakemake.input.keys()}
aggregate(
    ingest_tables=paths["queries"],
    ingest_failures=paths["ingest_failures"],
    msa_tables=paths["msa"],
    sample_tables=paths["samples"],
    failure_tables=paths["inference_failures"],
    out_samples=Path(snakemake.output.samples),
    out_queries=Path(snakemake.output.queries),
    out_failures=Path(snakemake.output.failures),
)
