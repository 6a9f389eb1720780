from pathlib import Path

from foldscreen import logs
from foldscreen.msa import build_msa_table

logs.setup(snakemake.log[0])
build_msa_table(Path(snakemake.input[0]), snakemake.params.settings, Path(snakemake.output[0]))
