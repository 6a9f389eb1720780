"""MLX's peak memory in each part of the port (trunk, diffusion, heads), on any device.

    python benchmarks/bench_memory.py --features .devdata/protein_384.npz --samples 5 --compiled
    python benchmarks/bench_memory.py --features .devdata/protein_384.npz --chunk-size 128
    python benchmarks/bench_memory.py --features .devdata/protein_384.npz --compiled --precision bfloat16
    python benchmarks/bench_memory.py --features .devdata/protein_384.npz --compiled --precision bfloat16 \
        --memory-limit-gib 5 --full    # on a GPU, where the host's queue shows

The released widths (`.devdata/architecture.json`, from `bench_gpu.py`) with one block per
stack: the transient peak of a part does not grow with its number of blocks (each block's
activations are freed before the next), so the figures say where memory goes at full size in
minutes of CPU, not hours. 0 recycles and 2 denoising steps for the same reason. `--full` keeps
the released depth, recycles and steps: on a GPU without CUDA graphs the host queues work ahead
of the device, and what that holds grows with the work queued. Prints one
JSON line: the weights, and per part its peak and what stays allocated after it (GiB).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import foldscreen.model  # noqa: F401  (first: routes MLX's CPU BLAS where there is no GPU)

GIB = 2**30


def one_block_each(arch) -> None:
    """Cut every stack of an architecture (a dict or ConfigDict) to one block, in place."""
    arch["pairformer"]["no_blocks"] = 1
    arch["msa"]["msa_module"]["no_blocks"] = 1
    arch["template"]["template_pair_stack"]["no_blocks"] = 1
    arch["diffusion_module"]["diffusion_transformer"]["no_blocks"] = 1
    arch["heads"]["pairformer_embedding"]["pairformer"]["no_blocks"] = 1


def architecture(path: Path, samples: int, full: bool = False) -> dict:
    """The released architecture with `samples` samples; unless `full`, one block per stack,
    0 recycles and 2 steps."""
    arch = json.loads(path.read_text())
    arch["shared"]["diffusion"]["no_full_rollout_samples"] = samples
    if not full:
        one_block_each(arch)
        arch["shared"]["num_recycles"] = 0
        arch["shared"]["diffusion"]["no_full_rollout_steps"] = 2
    return arch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--architecture", type=Path, default=Path(".devdata/architecture.json"))
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--compiled", action="store_true", help="as on a GPU (padded to the bucket)")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                        help="inference.precision: the MSA module, PairFormer and token transformer")
    parser.add_argument("--memory-limit-gib", type=float, default=None, help="inference.memory_limit_gib")
    parser.add_argument("--full", action="store_true",
                        help="every block, 3 recycles and 200 steps, as a GPU runs them (a minute there)")
    args = parser.parse_args()

    import ml_collections
    import mlx.core as mx
    import torch
    from mlx.utils import tree_flatten

    from foldscreen.model.batch import to_mlx_batch
    from foldscreen.model.buckets import atom_bucket, stack_batches, token_bucket
    from foldscreen.model.openfold3 import OpenFold3, msa_keys
    from foldscreen.model.sampler import KeyedDraws, StackedDraws, sample_atom_positions

    arch = ml_collections.ConfigDict(architecture(args.architecture, args.samples, args.full))
    mx.random.seed(0)
    if args.memory_limit_gib is not None:
        mx.set_memory_limit(int(args.memory_limit_gib * GIB))
    model = OpenFold3(arch, compiled=args.compiled)
    if args.precision != "float32":
        model.set_precision(getattr(mx, args.precision))
    mx.eval(model.parameters())
    with np.load(args.features) as saved:
        batch = to_mlx_batch({key: torch.from_numpy(saved[key]) for key in saved.files
                              if not key.startswith("atoms.")})
    n_token, n_atom = batch["token_mask"].shape[-1], batch["atom_mask"].shape[-1]
    padded = (token_bucket(n_token), atom_bucket(n_atom)) if args.compiled else (n_token, n_atom)
    batch = stack_batches([batch], padded)
    row = {"features": args.features.name, "tokens": padded[0], "atoms": padded[1],
           "samples": args.samples, "precision": args.precision, "chunk_size": args.chunk_size,
           "compiled": args.compiled, "full": args.full,
           "memory_limit_gib": args.memory_limit_gib,
           "device": str(mx.default_device()),
           "weights_gib": round(sum(v.nbytes for _, v in tree_flatten(model.parameters())) / GIB, 3)}

    def part(name: str, *outputs: object) -> None:
        mx.eval(*outputs)
        row[name] = {"peak_gib": round(mx.get_peak_memory() / GIB, 2),
                     "after_gib": round(mx.get_active_memory() / GIB, 2)}
        mx.reset_peak_memory()

    part("inputs")
    cycles, steps = arch.shared.num_recycles + 1, arch.shared.diffusion.no_full_rollout_steps
    s_input, s, z = model.run_trunk(batch, cycles, args.chunk_size, [msa_keys(1, cycles)])
    part("trunk", s_input, s, z)
    positions = sample_atom_positions(model.diffusion_module, model._architecture, batch, s_input, s, z,
                                      1, args.chunk_size,
                                      draws=StackedDraws([KeyedDraws(1, steps, n_atom, args.compiled)]),
                                      compiled=args.compiled)
    part("diffusion", positions)
    sampled = {k: mx.expand_dims(v, 1) for k, v in batch.items() if v.ndim > 0}
    s_input, s, z = (mx.expand_dims(x, 1) for x in (s_input, s, z))
    part("heads", model.aux_heads(sampled, s_input, s, z, positions, args.chunk_size))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
