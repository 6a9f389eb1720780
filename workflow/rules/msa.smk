rule msa_chunk:
    """Alignments for a chunk's chains, from the shared cache or fetched into it (mode in config)."""
    input:
        f"{OUT}/ingest/{{chunk}}.parquet",
    output:
        f"{MSA_DIR}/{{chunk}}.parquet",
    log:
        f"{MSA_LOG_DIR}/{{chunk}}.log",
    conda:
        "../../envs/foldscreen.yaml"
    threads: config["msa"]["local"]["threads"] if "local" in MSA_MODES else 1
    params:
        settings=per_job(msa_settings, MODE_SWEPT),
        # grows after each run with failed alignments: the next run redoes the job (a params
        # change), asking for exactly the failed ones again (nothing failed is cached)
        failed_runs=msa_failed_runs,
        # not an output: Snakemake would delete it before the job reads the count
        failed=MSA_FAILURES_RECORD,
    script:
        "../scripts/msa.py"
