rule tables_chunk:
    """One chunk's predictions read once into its partial tables (samples, chains, chain pairs, residues)."""
    input:
        samples=f"{ARM_DIR}/inference/{{chunk}}.parquet",
        queries=f"{OUT}/ingest/{{chunk}}.parquet",
    output:
        **{
            table: f"{ARM_DIR}/tables/{{chunk}}.{table}.parquet"
            for table in TABLE_PARTS
        },
    log:
        f"{ARM_DIR}/logs/tables/{{chunk}}.log",
    conda:
        "../../envs/foldscreen.yaml"
    params:
        arm=per_job(arm_columns, ARMS_SWEPT),
    script:
        "../scripts/tables_chunk.py"


rule aggregate:
    """Every chunk's partial tables combined into the screen's ranked tables, and ranked/ structures.

    Every arm's tables, arm after arm (as many per arm), in the order of params.arms.
    """
    input:
        **{f"part_{table}": arm_tables("tables", f".{table}") for table in TABLE_PARTS},
        queries=chunk_tables("ingest"),
        ingest_failures=chunk_tables("ingest", ".failures"),
        msa=arm_msa_tables(),
        inference_failures=arm_tables("inference", ".failures"),
    output:
        final_tables(),
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        "../../envs/foldscreen.yaml"
    params:
        config_sha256=config_digest(),
        arms=arms_of_aggregate(),
    script:
        "../scripts/aggregate.py"
