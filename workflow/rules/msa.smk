rule msa_chunk:
    """One cached alignment per unique chain of a chunk's queries."""
    input:
        # ancient: re-ingesting unchanged queries must not redo alignments; the digest does.
        queries=ancient(f"{OUT}/ingest/queries.parquet"),
    output:
        f"{OUT}/msa/{{chunk}}.parquet",
    params:
        query_ids=chunk_ids,
        digest=chunk_digest,
        settings=config["msa"],
    log:
        f"{OUT}/logs/msa/{{chunk}}.log",
    script:
        "../scripts/msa.py"
