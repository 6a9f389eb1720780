from pathlib import Path

from foldscreen import logs
from foldscreen.inference import InferenceSettings, run_chunk

logs.setup(snakemake.log[0])
run_chunk(
    queries_table=Path(snakemake.input.queries),
    msa_table=Path(snakemake.input.msa),
    # params: what the outputs depend on; the config adds how the job runs (device, model chunks);
    # the threads are those Snakemake granted (fewer than configured when --cores is smaller)
    settings=InferenceSettings.from_config(
        {**snakemake.config["inference"], **snakemake.params.settings, "threads": snakemake.threads}),
    predictions=Path(snakemake.params.predictions),
    out_samples=Path(snakemake.output.samples),
    out_failures=Path(snakemake.output.failures),
)
