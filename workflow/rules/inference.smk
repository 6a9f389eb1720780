rule inference_chunk:
    """Load the model once, then predict every (query, seed) task of the chunk not yet done."""
    input:
        queries=ancient(f"{OUT}/ingest/queries.parquet"),
        msa=f"{OUT}/msa/{{chunk}}.parquet",
    output:
        samples=f"{OUT}/inference/{{chunk}}.parquet",
        failures=f"{OUT}/inference/{{chunk}}.failures.parquet",
    params:
        query_ids=chunk_ids,
        digest=chunk_digest,
        settings=config["inference"],
        predictions=f"{OUT}/predictions",
    threads: config["inference"]["threads"]
    resources:
        mem_mb=chunk_mem_mb,
    log:
        f"{OUT}/logs/inference/{{chunk}}.log",
    script:
        "../scripts/inference.py"
