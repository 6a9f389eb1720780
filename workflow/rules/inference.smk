rule inference_chunk:
    """Load the model once, then predict every (query, seed) task of the chunk not yet done."""
    input:
        queries=f"{OUT}/ingest/{{chunk}}.parquet",
        msa=ARM_MSA_TABLE,
    output:
        samples=f"{ARM_DIR}/inference/{{chunk}}.parquet",
        failures=f"{ARM_DIR}/inference/{{chunk}}.failures.parquet",
    log:
        f"{ARM_DIR}/logs/inference/{{chunk}}.log",
    conda:
        "../../envs/foldscreen.yaml"
    threads: config["inference"]["threads"]
    resources:
        mem_mb=chunk_mem_mb,
        runtime=chunk_runtime,
        gpu=inference_gpu(),
    params:
        settings=per_job(arm_inference_settings, ARMS_SWEPT),
        predictions=f"{ARM_DIR}/predictions",
    script:
        "../scripts/inference.py"
