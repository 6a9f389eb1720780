rule ingest_chunk:
    """Validate a chunk's queries: a record per good query, a failure with a reason per bad one."""
    input:
        # ancient: an edit elsewhere in the query or design files must not redo this chunk;
        # the digest of the chunk's own queries (a param) does.
        ancient(INPUT_FILES),
    output:
        queries=f"{OUT}/ingest/{{chunk}}.parquet",
        failures=f"{OUT}/ingest/{{chunk}}.failures.parquet",
    log:
        f"{OUT}/logs/ingest/{{chunk}}.log",
    conda:
        "../../envs/foldscreen.yaml"
    params:
        chunk=chunk_plan,
        settings=config["ingest"],
        records=f"{OUT}/queries",
    script:
        "../scripts/ingest.py"
