import logging
from contextlib import nullcontext
from pathlib import Path

from foldscreen import logs
from foldscreen.inference import InferenceSettings
from foldscreen.inference.gpus import hold_gpu
from foldscreen.io import remove_leftovers


def main() -> None:
    logs.setup(snakemake.log[0])
    remove_leftovers(snakemake.output)  # of a killed run of this job
    # A job that asked for a GPU holds one of the machine's for its whole run; it is chosen before
    # MLX or PyTorch is imported (run_chunk imports them).
    with hold_gpu() if snakemake.resources.get("gpu", 0) else nullcontext() as gpu:
        if gpu is not None:
            logging.getLogger("foldscreen.inference").info("running on GPU %s of this machine", gpu)
        from foldscreen.inference import run_chunk

        run_chunk(
            queries_table=Path(snakemake.input.queries),
            msa_table=Path(snakemake.input.msa),
            # params: what the outputs depend on; the config adds how the job runs (device, model
            # chunks); the threads are those Snakemake granted (fewer than --cores may allow)
            settings=InferenceSettings.from_config(
                {**snakemake.config["inference"], **snakemake.params.settings, "threads": snakemake.threads}),
            predictions=Path(snakemake.params.predictions),
            out_samples=Path(snakemake.output.samples),
            out_failures=Path(snakemake.output.failures),
        )


# Worker processes (featurising ahead, writing behind) start by `spawn`, which runs this file
# again as `__mp_main__`, without the `snakemake` object: only the job itself runs main().
if __name__ == "__main__":
    main()
