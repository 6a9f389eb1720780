"""What OpenFold3's writer costs a task: its confidence scores and its files, apart.

    python benchmarks/bench_writer.py [--residues 100 384] [--threads 1 2] [--repeats 2]

A random protein of each size is featurised by OpenFold3 (single-sequence alignment); the
model's outputs are random tensors of the shapes the model returns (5 samples). Timed per
setting: `get_confidence_scores` (torch work, on `--threads` threads) and `OF3OutputWriter`
(mmCIF and JSON, Python), as `inference.outputs.write_outputs` runs them behind the model. One
JSON line per setting to benchmarks/results/writer.jsonl (every run, their median).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residues", type=int, nargs="+", default=[100, 384])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/writer.jsonl"))
    args = parser.parse_args()

    import torch
    from openfold3.core.metrics.aggregate_confidence_ranking import get_confidence_scores
    from openfold3.core.runners.writer import OF3OutputWriter
    from openfold3.core.utils.tensor_utils import tensor_tree_map

    from foldscreen.contracts import Chain
    from foldscreen.inference import InferenceSettings
    from foldscreen.inference.featurise import featurise, query_set, silence_known_warnings
    from foldscreen.inference.model_config import model_config

    sys.path.insert(0, str(Path(__file__).parent / "gpu"))
    from make_features import protein, single_sequence_msas

    silence_known_warnings()
    config = model_config(InferenceSettings(samples=SAMPLES))
    folder = Path(tempfile.mkdtemp())
    for residues in args.residues:
        chains = (Chain("protein", ("A",), sequence=protein(residues, 7)),)
        scratch = folder / str(residues)
        batch = featurise(query_set("p", chains, single_sequence_msas(chains, scratch)), "p", 1, scratch)
        batch = tensor_tree_map(lambda t: t.unsqueeze(1), batch)  # the sample axis, as a backend adds
        tokens, atoms = batch["token_mask"].shape[-1], batch["atom_mask"].shape[-1]
        outputs = {"atom_positions_predicted": 10 * torch.randn(1, SAMPLES, atoms, 3),
                   "plddt_logits": torch.randn(1, SAMPLES, atoms, 50),
                   "experimentally_resolved_logits": torch.randn(1, SAMPLES, atoms, 2),
                   "pae_logits": torch.randn(1, SAMPLES, tokens, tokens, 64),
                   "pde_logits": torch.randn(1, SAMPLES, tokens, tokens, 64),
                   "distogram_logits": torch.randn(1, tokens, tokens, 64)}
        for threads in args.threads:
            torch.set_num_threads(threads)
            scores_s, files_s = [], []
            for run in range(args.repeats):
                started = time.perf_counter()
                with torch.no_grad():
                    scores = get_confidence_scores(batch=batch, outputs=dict(outputs), config=config,
                                                   compute_per_sample=False)
                scored = time.perf_counter()
                writer = OF3OutputWriter(output_dir=folder / f"{residues}_{threads}_{run}",
                                         structure_format="cif", full_confidence_output_format="json",
                                         write_full_confidence_scores=True)
                writer.write_all_outputs(batch=batch, outputs={**outputs, "confidence_scores": scores},
                                         confidence_scores=scores)
                scores_s.append(round(scored - started, 3))
                files_s.append(round(time.perf_counter() - scored, 3))
            row = {"n_tokens": int(tokens), "n_atoms": int(atoms), "samples": SAMPLES, "threads": threads,
                   "scores_s": scores_s, "scores_median_s": round(statistics.median(scores_s), 3),
                   "files_s": files_s, "files_median_s": round(statistics.median(files_s), 3),
                   "device": f"cpu ({os.cpu_count()} cores)", "machine": platform.machine()}
            print(json.dumps(row), flush=True)
            with args.out.open("a") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
