"""Confidence scoring and the per-sample files, written by OpenFold3's own functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import read_json

AGGREGATED_SUFFIX = "_confidences_aggregated.json"


def load_writer() -> None:
    """Import OpenFold3's scoring and writing modules (what `write_outputs` first pays)."""
    import openfold3.core.metrics.aggregate_confidence_ranking  # noqa: F401
    import openfold3.core.runners.writer  # noqa: F401


def write_outputs(batch: dict[str, Any], outputs: dict[str, Any], config: Any, root: Path) -> None:
    """Score every sample and write `<root>/<query>/seed_<s>/<query>_seed_<s>_sample_<k>_*`."""
    import torch
    from openfold3.core.metrics.aggregate_confidence_ranking import get_confidence_scores
    from openfold3.core.runners.writer import OF3OutputWriter

    memory = config.settings.memory.eval
    n_atoms = outputs["atom_positions_predicted"].shape[-2]
    per_sample = memory.per_sample_atom_cutoff is not None and n_atoms > memory.per_sample_atom_cutoff
    with torch.no_grad():
        scores = get_confidence_scores(batch=batch, outputs=outputs, config=config,
                                       compute_per_sample=per_sample)
    outputs["confidence_scores"] = scores
    writer = OF3OutputWriter(output_dir=root, structure_format="cif",
                             full_confidence_output_format="json", write_full_confidence_scores=True)
    writer.write_all_outputs(batch=batch, outputs=outputs, confidence_scores=scores)


def sample_summaries(folder: Path, query_id: str, seed: int) -> list[dict[str, Any]]:
    """Per sample: its number, file names and aggregated confidences, read back from the files."""
    summaries = []
    for path in sorted(folder.glob(f"{query_id}_seed_{seed}_sample_*{AGGREGATED_SUFFIX}")):
        stem = path.name.removesuffix(AGGREGATED_SUFFIX)
        summaries.append({
            "sample": int(stem.rsplit("_", 1)[1]),
            "model": f"{stem}_model.cif",
            "confidences": f"{stem}_confidences.json",
            "aggregated": path.name,
            "scores": read_json(path),
        })
    return sorted(summaries, key=lambda s: s["sample"])
