from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/msa.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


# On a cluster, the final tables and the report are made by the main Snakemake process (each is
# one short job that reads the chunks' small tables), not queued for a node.
localrules:
    aggregate,
    report,


onstart:
    check_weights_once()


rule all:
    default_target: True
    input:
        final_tables(),
        f"{OUT}/report.html",


rule msa:
    """Fill the MSA cache for every query of the screen, and stop."""
    input:
        msa_tables(),
