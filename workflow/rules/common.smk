from pathlib import Path

from snakemake.utils import validate

from foldscreen.plan import plan_screen


validate(config, "../schemas/config.schema.yaml")

SCREEN = config["screen"]
OUT = f"{config['results']}/{SCREEN}"
QUERIES, CHUNKS = plan_screen(config)
CHUNK_BY_NAME = {chunk.name: chunk for chunk in CHUNKS}


wildcard_constraints:
    chunk=r"chunk_\d+",


def chunk_ids(wildcards):
    return list(CHUNK_BY_NAME[wildcards.chunk].query_ids)


def chunk_digest(wildcards):
    return CHUNK_BY_NAME[wildcards.chunk].digest


def chunk_mem_mb(wildcards, attempt):
    """Memory of an inference job: a base plus a share per token, more on each retry."""
    tokens = CHUNK_BY_NAME[wildcards.chunk].n_tokens
    return (4000 + 2 * tokens) * attempt


def msa_tables():
    return expand(f"{OUT}/msa/{{chunk}}.parquet", chunk=CHUNK_BY_NAME)


def inference_tables(suffix=""):
    return expand(f"{OUT}/inference/{{chunk}}{suffix}.parquet", chunk=CHUNK_BY_NAME)


def final_tables():
    return expand(f"{OUT}/{{table}}.parquet", table=["samples", "queries", "failures"])
