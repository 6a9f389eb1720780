rule inference_chunk:
    """Load the model once, then predict every (query, seed) task of the chunk not yet done."""
    input:
        queries=f"{OUT}/ingest/{{chunk}}.parquet",
        msa=f"{OUT}/msa/{{chunk}}.parquet",
    output:
        samples=f"{OUT}/inference/{{chunk}}.parquet",
        failures=f"{OUT}/inference/{{chunk}}.failures.parquet",
    params:
        settings=job_settings("inference"),
        predictions=f"{OUT}/predictions",
    threads: config["inference"]["threads"]
    resources:
        mem_mb=chunk_mem_mb,
    conda:
        "../../envs/foldscreen.yaml"
    log:
        f"{OUT}/logs/inference/{{chunk}}.log",
    script:
        "../scripts/inference.py"
