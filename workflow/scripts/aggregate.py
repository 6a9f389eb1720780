from pathlib import Path

from foldscreen import logs
from foldscreen.contracts import PARTS
from foldscreen.io import remove_leftovers
from foldscreen.reports import ArmTables, aggregate

ARMS = snakemake.params.arms


def paths(name: str) -> list[Path]:
    return [Path(p) for p in snakemake.input[name]]


def per_arm(name: str) -> list[list[Path]]:
    """The rule lists every arm's tables arm after arm, as many for each."""
    found = paths(name)
    size = len(found) // len(ARMS)
    return [found[index * size:(index + 1) * size] for index in range(len(ARMS))]


logs.setup(snakemake.log[0])
remove_leftovers(snakemake.output)  # of a killed run of this job
msa, failures = per_arm("msa"), per_arm("inference_failures")
parts = {name: per_arm(f"part_{name}") for name in PARTS}
aggregate(
    ingest_tables=paths("queries"),
    ingest_failures=paths("ingest_failures"),
    arms=[ArmTables(columns=arm["columns"], msa=msa[index], inference_failures=failures[index],
                    parts={name: parts[name][index] for name in PARTS}, ranked=Path(arm["ranked"]))
          for index, arm in enumerate(ARMS)],
    out=Path(snakemake.output[0]).parent,
    config_digest=snakemake.params.config_sha256,
)
