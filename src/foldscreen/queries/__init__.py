"""Ingestion: read, normalise and validate queries from every supported source.

Reading (`readers.read_queries`) needs no chemistry: the workflow's plan uses it at every
Snakemake start. Validation and ingestion (`validate`, `ingest`) bring RDKit, so this package
imports neither: import them from their modules.
"""
