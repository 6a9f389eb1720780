from pathlib import Path

from foldscreen import logs
from foldscreen.io import atomic_write_json, remove_leftovers
from foldscreen.msa import build_msa_table, retry_record

logs.setup(snakemake.log[0])
remove_leftovers([*snakemake.output, snakemake.params.failed])  # of a killed run of this job
table = build_msa_table(Path(snakemake.input[0]), snakemake.params.settings, Path(snakemake.output[0]))
atomic_write_json(Path(snakemake.params.failed), retry_record(table, snakemake.params.failed_runs))
