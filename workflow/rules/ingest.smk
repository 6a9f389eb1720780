rule ingest:
    """Validate every query: a record per good query, a failure row with a reason per bad one."""
    input:
        config["queries"],
    output:
        records=directory(f"{OUT}/queries"),
        table=f"{OUT}/ingest/queries.parquet",
        failures=f"{OUT}/ingest/failures.parquet",
    params:
        settings=config["ingest"],
    log:
        f"{OUT}/logs/ingest.log",
    script:
        "../scripts/ingest.py"
