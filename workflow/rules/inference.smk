rule inference_chunk:
    """Load the model once, then predict every (query, seed) task of the chunk not yet done."""
    input:
        queries=f"{OUT}/ingest/{{chunk}}.parquet",
        msa=f"{OUT}/msa/{{chunk}}.parquet",
    output:
        samples=f"{OUT}/inference/{{chunk}}.parquet",
        failures=f"{OUT}/inference/{{chunk}}.failures.parquet",
    log:
        f"{OUT}/logs/inference/{{chunk}}.log",
    conda:
        "../../envs/foldscreen.yaml"
    threads: config["inference"]["threads"]
    resources:
        mem_mb=chunk_mem_mb,
        runtime=chunk_runtime,
        gpu=inference_gpu(),
    params:
        settings=job_settings("inference"),
        predictions=f"{OUT}/predictions",
    script:
        "../scripts/inference.py"
