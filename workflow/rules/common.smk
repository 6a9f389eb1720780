import json
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Only light modules here (no RDKit, PyTorch, MLX or pandas): this runs at every Snakemake start.
from foldscreen.config import RUNTIME_SETTINGS, config_sha256
from foldscreen.contracts import PARTS as TABLE_PARTS, TABLES as REPORT_TABLES
from foldscreen.inference.preflight import WeightsRefused, check_weights
from foldscreen.inference.settings import InferenceSettings
from foldscreen.plan import PlanError, input_files, plan_screen

validate(config, "../schemas/config.schema.yaml")

OUT = f"{config['results']}/{config['screen']}"
try:
    CHUNKS = {chunk.name: chunk for chunk in plan_screen(config)}
    # the query files and the designs' files: the inputs of every ingest job
    INPUT_FILES = [str(path) for path in input_files(config)]
except PlanError as error:
    raise WorkflowError(str(error)) from None


wildcard_constraints:
    chunk=r"chunk_\d+",


def chunk_bounds(wildcards):
    chunk = CHUNKS[wildcards.chunk]
    return {"start": chunk.start, "end": chunk.end, "digest": chunk.digest}


def check_weights_once():
    """Stop the run, naming inference.weights, if it has inference to do and the weights are bad.

    Called on start (after the DAG is built, before any job; not in dry runs), so that a run
    that only aligns (`snakemake msa`, on a node without the weights) does not need them.
    """
    if any(job.rule.name == "inference_chunk" for job in workflow.dag.needrun_jobs()):
        try:
            check_weights(
                InferenceSettings.from_config(config["inference"]), Path(OUT) / "plan"
            )
        except WeightsRefused as error:
            raise WorkflowError(str(error)) from None


def msa_failures_record(wildcards):
    """The record of the chunk's failed alignments, written by its msa job after its table."""
    return f"{OUT}/msa/{wildcards.chunk}.failed.json"


def msa_failed_runs(wildcards):
    """How many runs of the chunk's msa job ended with failures, from its last record (0: none yet).

    A param of the job: it grows after a run with failures, so that the next run redoes the job;
    after a run without failures it stays, so that the run after that has nothing to do.
    """
    try:
        with open(msa_failures_record(wildcards)) as record:
            return json.load(record)["failed_runs"]
    except (OSError, ValueError, KeyError):
        return 0


def chunk_mem_mb(wildcards, attempt):
    """Memory of an inference job: a base plus a share per token, more on each retry."""
    return (4000 + 2 * CHUNKS[wildcards.chunk].n_tokens) * attempt


def chunk_tables(stage, suffix=""):
    return expand(f"{OUT}/{stage}/{{chunk}}{suffix}.parquet", chunk=CHUNKS)


def final_tables():
    """The screen's tables (workflow/schemas/tables/)."""
    return expand(f"{OUT}/{{table}}.parquet", table=REPORT_TABLES)


# RUNTIME_SETTINGS (foldscreen.config) decide how a job runs, never what it writes: they stay out
# of `params` and of the config digest; the scripts read them from the config.
# Settings that cut the screen into chunks: each chunk's digest already covers what they change.
CHUNKING_SETTINGS = {"inference": ("chunk_size", "token_budget")}


def job_settings(section):
    """The settings of a config section that its jobs' outputs depend on: the rule's params."""
    left_out = RUNTIME_SETTINGS.get(section, ()) + CHUNKING_SETTINGS.get(section, ())
    return {k: v for k, v in config[section].items() if k not in left_out}


def config_digest():
    """Digest of the configuration but its runtime settings, kept in every table's metadata."""
    return config_sha256(config)
