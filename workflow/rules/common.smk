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
from foldscreen.resources import job_mem_mb, job_runtime_min
from foldscreen.sweep import DEFAULT_ARM, SweepError, msa_modes, sweep_arms

validate(config, "../schemas/config.schema.yaml")

OUT = f"{config['results']}/{config['screen']}"
try:
    CHUNKS = {chunk.name: chunk for chunk in plan_screen(config)}
    # the query files and the designs' files: the inputs of every ingest job
    INPUT_FILES = [str(path) for path in input_files(config)]
except PlanError as error:
    raise WorkflowError(str(error)) from None
try:
    ARMS = {arm.name: arm for arm in sweep_arms(config)}
except SweepError as error:
    raise WorkflowError(str(error)) from None
MSA_MODES = msa_modes(ARMS.values())


wildcard_constraints:
    chunk=r"chunk_\d+",
    arm=r"[^/]+",
    msa_mode=r"[a-z_]+",


# Without `sweep:` the screen is one arm (DEFAULT_ARM) in the folders of before: no wildcard.
# A sweep's arms each get <OUT>/arms/<arm>/ (inference, predictions, tables, logs, ranked), and
# when the MSA mode is swept each mode gets <OUT>/msa/<mode>/, shared by the arms of that mode.
ARMS_SWEPT = "sweep" in config
MODE_SWEPT = "msa_mode" in config.get("sweep", {})


def arm_dir(arm):
    return f"{OUT}/arms/{arm}" if ARMS_SWEPT else OUT


def msa_dir(mode, folder="msa"):
    return f"{OUT}/{folder}/{mode}" if MODE_SWEPT else f"{OUT}/{folder}"


ARM_DIR = arm_dir("{arm}")
MSA_DIR = msa_dir("{msa_mode}")
MSA_LOG_DIR = msa_dir("{msa_mode}", "logs/msa")


def arm_of(wildcards):
    return ARMS[wildcards.get("arm", DEFAULT_ARM)]


def msa_mode_of(wildcards):
    return wildcards.get("msa_mode", config["msa"]["mode"])


def chunk_plan(wildcards):
    chunk = CHUNKS[wildcards.chunk]
    return {"items": list(chunk.items), "digest": chunk.digest}


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


# Snakemake calls a function given as a param or input once per job (and inspects its signature
# each time): at 20,000 jobs that is seconds. What differs between jobs only by a swept setting
# is therefore a plain value (or a wildcard pattern) in a screen without that sweep.
def per_job(function, swept):
    """`function`, to be called per job, where `swept`; else its one value, computed once."""
    return function if swept else function({})


def msa_settings(wildcards):
    """The msa job's settings: the config's, in the mode of the job."""
    return {**config["msa"], "mode": msa_mode_of(wildcards)}


# The record of a chunk's failed alignments, written by its msa job after its table.
MSA_FAILURES_RECORD = f"{MSA_DIR}/{{chunk}}.failed.json"


def msa_failed_runs(wildcards):
    """How many runs of the chunk's msa job ended with failures, from its last record (0: none yet).

    A param of the job: it grows after a run with failures, so that the next run redoes the job;
    after a run without failures it stays, so that the run after that has nothing to do.
    """
    path = MSA_FAILURES_RECORD.format(
        chunk=wildcards.chunk, msa_mode=msa_mode_of(wildcards)
    )
    try:
        with open(path) as record:
            return json.load(record)["failed_runs"]
    except (OSError, ValueError, KeyError):
        return 0


def inference_gpu():
    """GPUs of an inference job, as Snakemake's `gpu` resource (sbatch --gpus on Slurm)."""
    return config["inference"]["gpus"]


def chunk_mem_mb(wildcards, attempt):
    """Host memory of an inference job from its largest query and the arm's samples, more on each
    retry (foldscreen.resources)."""
    chunk = CHUNKS[wildcards.chunk]
    chunked = config["inference"]["model_chunk_size"] is not None
    samples = arm_of(wildcards).samples
    return job_mem_mb(chunk.bucket, inference_gpu() > 0, chunked, attempt, samples)


def chunk_runtime(wildcards, attempt):
    """Minutes of an inference job from its tasks, their tokens squared and the arm's seeds,
    samples and diffusion steps, more on each retry."""
    chunk = CHUNKS[wildcards.chunk]
    arm = arm_of(wildcards)
    seeds = len(arm.seeds)
    tasks = seeds * len(chunk.items) if chunk.bucket else 0
    return job_runtime_min(
        tasks,
        seeds * chunk.tokens_squared,
        inference_gpu() > 0,
        attempt,
        arm.samples,
        arm.diffusion_steps,
    )


def chunk_tables(stage, suffix=""):
    return expand(f"{OUT}/{stage}/{{chunk}}{suffix}.parquet", chunk=CHUNKS)


def arm_tables(stage, suffix=""):
    """A stage's chunk tables of every arm, arm after arm (the aggregate script splits them so)."""
    return [
        f"{arm_dir(arm)}/{stage}/{c}{suffix}.parquet" for arm in ARMS for c in CHUNKS
    ]


def arm_msa_table(wildcards):
    """The chunk's msa table in the mode of the arm: arms of one mode share it."""
    return f"{msa_dir(arm_of(wildcards).msa_mode)}/{wildcards.chunk}.parquet"


# the inference job's msa table: a pattern unless the arms (of a swept mode) choose it
ARM_MSA_TABLE = arm_msa_table if MODE_SWEPT else f"{MSA_DIR}/{{chunk}}.parquet"


def arm_msa_tables():
    """Every arm's msa tables, arm after arm (arms of one mode name the same files)."""
    return [
        f"{msa_dir(arm.msa_mode)}/{c}.parquet" for arm in ARMS.values() for c in CHUNKS
    ]


def msa_tables():
    """The msa tables of the screen: one set per MSA mode of its arms."""
    return [f"{msa_dir(mode)}/{c}.parquet" for mode in MSA_MODES for c in CHUNKS]


def arms_of_aggregate():
    """Each arm's columns and ranked/ folder, in the order of arm_tables."""
    return [
        {"columns": arm.columns, "ranked": f"{arm_dir(name)}/ranked"}
        for name, arm in ARMS.items()
    ]


def final_tables():
    """The screen's tables (workflow/schemas/tables/)."""
    return expand(f"{OUT}/{{table}}.parquet", table=REPORT_TABLES)


# RUNTIME_SETTINGS (foldscreen.config) decide how a job runs, never what it writes: they stay out
# of `params` and of the config digest; the scripts read them from the config.
# Settings that cut the screen into chunks: each chunk's digest already covers what they change.
CHUNKING_SETTINGS = {"inference": ("chunk_size", "token_budget", "gpu_memory_gb")}


def job_settings(section):
    """The settings of a config section that its jobs' outputs depend on: the rule's params."""
    left_out = RUNTIME_SETTINGS.get(section, ()) + CHUNKING_SETTINGS.get(section, ())
    return {k: v for k, v in config[section].items() if k not in left_out}


def arm_inference_settings(wildcards):
    """The inference job's params: job_settings("inference") with the arm's settings over them."""
    return {**job_settings("inference"), **arm_of(wildcards).inference}


def arm_columns(wildcards):
    """The columns of the arm in its tables (foldscreen.contracts.ARM_COLUMNS)."""
    return arm_of(wildcards).columns


def config_digest():
    """Digest of the configuration but its runtime settings, kept in every table's metadata."""
    return config_sha256(config)
