rule msa_chunk:
    """Alignments for a chunk's chains, from the shared cache or fetched into it (mode in config)."""
    input:
        f"{OUT}/ingest/{{chunk}}.parquet",
    output:
        f"{OUT}/msa/{{chunk}}.parquet",
    params:
        settings=config["msa"],
    threads: config["msa"]["local"]["threads"] if config["msa"]["mode"] == "local" else 1
    conda:
        "../../envs/foldscreen.yaml"
    log:
        f"{OUT}/logs/msa/{{chunk}}.log",
    script:
        "../scripts/msa.py"
