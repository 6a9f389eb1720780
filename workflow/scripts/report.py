from pathlib import Path

from foldscreen import logs
from foldscreen.io import remove_leftovers
from foldscreen.reports.html import write_report

logs.setup(snakemake.log[0])
remove_leftovers(snakemake.output)  # of a killed run of this job
write_report(Path(snakemake.input[0]).parent, Path(snakemake.output[0]))
