from pathlib import Path

from foldscreen import logs
from foldscreen.queries import Limits, ingest

logs.setup(snakemake.log[0])
accepted, rejected = ingest(
    [Path(p) for p in snakemake.input],
    Limits(**snakemake.params.settings),
    records_dir=Path(snakemake.output.records),
    queries_table=Path(snakemake.output.table),
    failures_table=Path(snakemake.output.failures),
)
print(f"ingest: {accepted} queries accepted, {rejected} rejected")
