"""How many kernels a compiled denoising step and a compiled PairFormer block launch.

    python benchmarks/gpu/count_kernels.py --features .devdata/protein_100.npz [--samples 5]

On a GPU the port is bound by per-kernel overhead, not arithmetic, so the number of kernels of
the two graphs that run most often (200 denoising steps and 4 x 48 PairFormer blocks per task)
is the figure to bring down. The graphs are traced here, on any device, without evaluating
them: the released architecture with random weights, the task padded to its size bucket as a
compiled model pads it. Each node of the traced graph is one primitive; views (reshapes,
broadcasts, slices) launch nothing and are counted apart. MLX's CPU backend spells
`mx.fast.layer_norm` out in five primitives where a GPU runs one kernel: here each layer norm
is traced as one stand-in primitive (a cumulative sum, counted as `LayerNorm`), so the count is
the GPU's. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import tempfile
from pathlib import Path

from bench_gpu import padded_features

VIEWS = {"Broadcast", "Reshape", "Transpose", "Slice", "ExpandDims", "Squeeze", "StopGradient",
         "Depends", "AsStrided", "Split", "Flatten", "Unflatten"}


def primitives(*outputs: object) -> collections.Counter:
    """The primitives of the graph that makes `outputs` (not evaluated), by name."""
    import mlx.core as mx

    with tempfile.NamedTemporaryFile(suffix=".dot") as dot:
        mx.export_to_dot(dot.name, *outputs)
        labels = re.findall(r'label ="([^"]+)", shape=rectangle', Path(dot.name).read_text())
    return collections.Counter("LayerNorm" if label == "CumSum" else label for label in labels)


def summary(counts: collections.Counter) -> dict:
    kernels = {name: n for name, n in counts.items() if name not in VIEWS}
    return {"kernels": sum(kernels.values()), "views": sum(counts.values()) - sum(kernels.values()),
            "by_primitive": dict(sorted(kernels.items(), key=lambda item: -item[1])[:12])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()

    import mlx.core as mx

    mx.fast.layer_norm = lambda x, weight, bias, eps: mx.cumsum(x, axis=-1)  # one GPU kernel

    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.settings import InferenceSettings
    from foldscreen.model.openfold3 import OpenFold3

    settings = InferenceSettings(backend="mlx", device="cpu", weights="released", samples=args.samples)
    model = OpenFold3(model_config(settings).architecture, compiled=True)
    mx.eval(model.parameters())
    batch = padded_features(args.features)
    n_token, n_atom = batch["token_mask"].shape[-1], batch["atom_mask"].shape[-1]
    c_s, c_z = model.layer_norm_s.weight.shape[0], model.layer_norm_z.weight.shape[0]
    c_s_input = model.input_embedder.linear_s.weight.shape[1] if hasattr(
        model.input_embedder, "linear_s") else 449
    s_input, s = mx.zeros((1, n_token, c_s_input)), mx.zeros((1, n_token, c_s))
    z = mx.zeros((1, n_token, n_token, c_z))

    sampled = {key: mx.expand_dims(value, 1) for key, value in batch.items() if value.ndim > 0}
    module = model.diffusion_module
    cond = module.conditioning(sampled, *(mx.expand_dims(x, 1) for x in (s_input, s, z)))
    mx.eval(cond)
    x = mx.zeros((1, args.samples, n_atom, 3))
    step = module.compiled_denoise()(cond, x, mx.array(10.0))

    token_mask = batch["token_mask"].astype(mx.float32)
    pair_mask = token_mask[..., :, None] * token_mask[..., None, :]
    mx.eval(token_mask, pair_mask)
    stack = model.pairformer_stack
    block = stack.compiled_block()(stack.blocks[0].parameters(), s, z, token_mask, pair_mask, None)
    print(json.dumps({"features": args.features.name, "tokens": n_token, "atoms": n_atom,
                      "samples": args.samples, "denoising_step": summary(primitives(step)),
                      "pairformer_block": summary(primitives(*block))}))


if __name__ == "__main__":
    main()
