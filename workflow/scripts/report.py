from pathlib import Path

from foldscreen import logs
from foldscreen.reports.html import write_report

logs.setup(snakemake.log[0])
write_report(Path(snakemake.input[0]).parent, Path(snakemake.output[0]))
