rule msa_chunk:
    """One cached alignment per unique chain of a chunk's queries."""
    input:
        f"{OUT}/ingest/{{chunk}}.parquet",
    output:
        f"{OUT}/msa/{{chunk}}.parquet",
    params:
        settings=config["msa"],
    conda:
        "../../envs/foldscreen.yaml"
    log:
        f"{OUT}/logs/msa/{{chunk}}.log",
    script:
        "../scripts/msa.py"
