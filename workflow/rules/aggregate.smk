rule aggregate:
    """Every chunk's tables into the screen's ranked tables."""
    input:
        queries=chunk_tables("ingest"),
        ingest_failures=chunk_tables("ingest", ".failures"),
        msa=chunk_tables("msa"),
        samples=chunk_tables("inference"),
        inference_failures=chunk_tables("inference", ".failures"),
    output:
        samples=f"{OUT}/samples.parquet",
        queries=f"{OUT}/queries.parquet",
        failures=f"{OUT}/failures.parquet",
    conda:
        "../../envs/foldscreen.yaml"
    log:
        f"{OUT}/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
