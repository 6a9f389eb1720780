from snakemake.utils import validate

# Only light modules here (no RDKit, PyTorch, MLX or pandas): this runs at every Snakemake start.
from foldscreen.config import config_sha256
from foldscreen.contracts import PARTS as TABLE_PARTS, TABLES as REPORT_TABLES
from foldscreen.plan import plan_screen

validate(config, "../schemas/config.schema.yaml")

OUT = f"{config['results']}/{config['screen']}"
CHUNKS = {chunk.name: chunk for chunk in plan_screen(config)}


wildcard_constraints:
    chunk=r"chunk_\d+",


def chunk_bounds(wildcards):
    chunk = CHUNKS[wildcards.chunk]
    return {"start": chunk.start, "end": chunk.end, "digest": chunk.digest}


def chunk_mem_mb(wildcards, attempt):
    """Memory of an inference job: a base plus a share per token, more on each retry."""
    return (4000 + 2 * CHUNKS[wildcards.chunk].n_tokens) * attempt


def chunk_tables(stage, suffix=""):
    return expand(f"{OUT}/{stage}/{{chunk}}{suffix}.parquet", chunk=CHUNKS)


def final_tables():
    """The screen's tables (workflow/schemas/tables/)."""
    return expand(f"{OUT}/{{table}}.parquet", table=REPORT_TABLES)


def config_digest():
    """Digest of the whole configuration, kept in every table's metadata."""
    return config_sha256(config)
