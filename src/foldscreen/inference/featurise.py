"""OpenFold3's own inference featurisation of one (query, seed) task."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..contracts import Chain

# Harmless on a CPU: OpenFold3 asks for Triton and CUDA autocast, which are absent here.
QUIET = ("Triton is not available", "In CPU autocast", "CUDA is not available",
         "Expected MSA file for chain", ".*include_bonds.*")


def silence_known_warnings() -> None:
    for message in QUIET:
        warnings.filterwarnings("ignore", message=message)


def query_set(query_id: str, chains: tuple[Chain, ...], msa_paths: dict[str, str],
              paired_paths: dict[str, str] | None = None) -> dict[str, Any]:
    """The task's OpenFold3 query set, each aligned chain pointing at its cached MSAs.

    `msa_paths` and `paired_paths` map a chain's ids (joined by commas) to its main and paired
    alignment files.
    """
    entries = []
    for chain in chains:
        entry = chain.to_of3()
        ids = ",".join(chain.chain_ids)
        for field, paths in (("main_msa_file_paths", msa_paths),
                             ("paired_msa_file_paths", paired_paths or {})):
            path = paths.get(ids)
            if path:
                if not Path(path).is_file():
                    raise FileNotFoundError(f"the alignment of chain {ids} is missing from the MSA cache "
                                            f"({path}); run the msa stage again")
                entry[field] = [path]
        entries.append(entry)
    return {"queries": {query_id: {"chains": entries}}}


def featurise(query: dict[str, Any], query_id: str, seed: int, scratch: Path) -> dict[str, Any]:
    """The batch (batch size 1) that `OpenFold3.forward` takes, made by OpenFold3's dataset code.

    Unlike OpenFold3's `InferenceDataset.__getitem__`, errors propagate with their message.
    """
    import torch
    from openfold3.core.data.framework.data_module import openfold_batch_collator
    from openfold3.core.data.framework.single_datasets.inference import InferenceDataset
    from openfold3.core.data.pipelines.preprocessing.template import TemplatePreprocessorSettings
    from openfold3.projects.of3_all_atom.config.dataset_config_components import (
        MSASettings,
        TemplateSettings,
    )
    from openfold3.projects.of3_all_atom.config.dataset_configs import InferenceJobConfig
    from openfold3.projects.of3_all_atom.config.inference_query_format import InferenceQuerySet

    job = InferenceJobConfig(
        query_set=InferenceQuerySet.model_validate({**query, "seeds": [seed]}),
        seeds=[seed],
        ccd_file_path=None,  # the chemical component dictionary bundled with biotite
        msa=MSASettings(subsample_main=False),
        template=TemplateSettings(take_top_k=True),
        template_preprocessor_settings=TemplatePreprocessorSettings(
            mode="predict", output_directory=scratch / "templates"),
    )
    dataset = InferenceDataset(job, world_size=1)
    features = dataset.create_all_features(dataset.query_cache[query_id])
    features.update(query_id=query_id, seed=torch.tensor([seed]),
                    repeated_sample=torch.tensor([False]), valid_sample=torch.tensor([True]))
    batch = openfold_batch_collator([features])
    batch["seed"] = batch["seed"].tolist()
    return batch
