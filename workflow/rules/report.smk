rule report:
    """The screen's HTML report, written from its final tables."""
    input:
        final_tables(),
    output:
        report(
            f"{OUT}/report.html",
            caption="../report/report.rst",
            category="Screen report",
        ),
    log:
        f"{OUT}/logs/report.log",
    conda:
        "../../envs/foldscreen.yaml"
    script:
        "../scripts/report.py"
