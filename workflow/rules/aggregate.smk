rule tables_chunk:
    """One chunk's predictions read once into its partial tables (samples, chains, chain pairs, residues)."""
    input:
        samples=f"{OUT}/inference/{{chunk}}.parquet",
        queries=f"{OUT}/ingest/{{chunk}}.parquet",
    output:
        **{table: f"{OUT}/tables/{{chunk}}.{table}.parquet" for table in TABLE_PARTS},
    log:
        f"{OUT}/logs/tables/{{chunk}}.log",
    conda:
        "../../envs/foldscreen.yaml"
    script:
        "../scripts/tables_chunk.py"


rule aggregate:
    """Every chunk's partial tables combined into the screen's ranked tables, and ranked/ structures."""
    input:
        **{
            f"part_{table}": chunk_tables("tables", f".{table}")
            for table in TABLE_PARTS
        },
        queries=chunk_tables("ingest"),
        ingest_failures=chunk_tables("ingest", ".failures"),
        msa=chunk_tables("msa"),
        inference_failures=chunk_tables("inference", ".failures"),
    output:
        final_tables(),
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        "../../envs/foldscreen.yaml"
    params:
        config_sha256=config_digest(),
    script:
        "../scripts/aggregate.py"
