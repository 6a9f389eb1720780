rule aggregate:
    """Every sample's confidences into ranked tables."""
    input:
        queries=f"{OUT}/ingest/queries.parquet",
        ingest_failures=f"{OUT}/ingest/failures.parquet",
        msa=msa_tables(),
        samples=inference_tables(),
        inference_failures=inference_tables(".failures"),
    output:
        samples=f"{OUT}/samples.parquet",
        queries=f"{OUT}/queries.parquet",
        failures=f"{OUT}/failures.parquet",
    log:
        f"{OUT}/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
