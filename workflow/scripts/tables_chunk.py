from pathlib import Path

from foldscreen import logs
from foldscreen.contracts import PARTS
from foldscreen.io import remove_leftovers
from foldscreen.reports import tables_chunk

logs.setup(snakemake.log[0])
remove_leftovers(snakemake.output)  # of a killed run of this job
tables_chunk(
    Path(snakemake.input.samples),
    Path(snakemake.input.queries),
    {name: Path(snakemake.output[name]) for name in PARTS},
    snakemake.params.arm,
)
