rule tables_chunk:
    """One chunk's predictions read once into its partial tables (samples, chains, chain pairs, residues)."""
    input:
        samples=f"{OUT}/inference/{{chunk}}.parquet",
    output:
        **{table: f"{OUT}/tables/{{chunk}}.{table}.parquet" for table in TABLE_PARTS},
    conda:
        "../../envs/foldscreen.yaml"
    log:
        f"{OUT}/logs/tables/{{chunk}}.log",
    script:
        "../scripts/tables_chunk.py"


rule aggregate:
    """Every chunk's partial tables combined into the screen's ranked tables, and ranked/ structures."""
    input:
        queries=chunk_tables("ingest"),
        ingest_failures=chunk_tables("ingest", ".failures"),
        msa=chunk_tables("msa"),
        inference_failures=chunk_tables("inference", ".failures"),
        **{f"part_{table}": chunk_tables("tables", f".{table}") for table in TABLE_PARTS},
    output:
        final_tables(),
    params:
        config_sha256=config_digest(),
    conda:
        "../../envs/foldscreen.yaml"
    log:
        f"{OUT}/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
