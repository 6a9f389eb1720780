from pathlib import Path

from foldscreen import logs
from foldscreen.io import remove_leftovers
from foldscreen.plan import chunk_items
from foldscreen.queries.ingest import ingest
from foldscreen.queries.validate import Limits

logs.setup(snakemake.log[0])
remove_leftovers(snakemake.output)  # of a killed run of this job
chunk = snakemake.params.chunk
accepted, rejected = ingest(
    chunk_items(snakemake.config, chunk["items"], chunk["digest"]),
    Limits(**snakemake.params.settings),
    records_dir=Path(snakemake.params.records),
    queries_table=Path(snakemake.output.queries),
    failures_table=Path(snakemake.output.failures),
)
print(f"ingest: {accepted} queries accepted, {rejected} rejected")
