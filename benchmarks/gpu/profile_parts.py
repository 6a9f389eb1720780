"""Where a compiled MLX forward pass spends its time on a GPU: each part timed on its own.

    python benchmarks/gpu/profile_parts.py --architecture .devdata/architecture.json \
        --features .devdata/protein_384.npz

Random full-size weights. Each part runs as its own compiled graph, 2 untimed calls then
`--repeats` timed (each evaluated and synchronised): the PairFormer block's seven parts and the
whole block at the task's size, and the denoising step with one token-transformer block, one
atom-transformer block and the step without them. Prints one JSON line (milliseconds per call).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench_gpu import padded_features


def timed(fn, repeats: int) -> float:
    import mlx.core as mx

    for _ in range(2):
        mx.eval(fn())
    mx.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        mx.eval(fn())
    mx.synchronize()
    return round((time.perf_counter() - started) / repeats * 1e3, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", type=Path, required=True)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    import ml_collections
    import mlx.core as mx

    from foldscreen.model.openfold3 import OpenFold3

    arch = ml_collections.ConfigDict(json.loads(args.architecture.read_text()))
    arch.shared.diffusion.no_full_rollout_samples = 5
    model = OpenFold3(arch, compiled=True)
    mx.eval(model.parameters())
    batch = padded_features(args.features)
    n, n_atom = batch["token_mask"].shape[-1], batch["atom_mask"].shape[-1]
    row: dict = {"features": args.features.name, "tokens": n, "atoms": n_atom}

    # the fixed cost of one operation: chains of 200 small ones (not compiled), per operation
    w, e = mx.random.normal((64, 64)) * 0.1, mx.random.normal((64, 64))
    mx.eval(w, e)

    def chain(op):
        def run(x):
            for _ in range(200):
                x = op(x)
            return x
        return run
    ops = {"matmul": lambda x: x @ w, "addmm": lambda x: mx.addmm(e, x, w),
           "layer_norm": lambda x: mx.fast.layer_norm(x, None, None, 1e-5),
           "softmax": lambda x: mx.softmax(x, axis=-1, precise=True), "sigmoid": mx.sigmoid}
    row["per_op_us"] = {name: round(timed(lambda op=op: chain(op)(e), args.repeats) * 5, 2)
                        for name, op in ops.items()}

    block = model.pairformer_stack.blocks[0]
    pair = block.pair_stack
    s = mx.random.normal((1, n, 384))
    z = mx.random.normal((1, n, n, 128))
    single_mask, pair_mask = mx.ones((1, n)), mx.ones((1, n, n))
    mx.eval(s, z)
    parts = {
        "tri_mul_out": lambda: pair.tri_mul_out(z, pair_mask),
        "tri_mul_in": lambda: pair.tri_mul_in(z, pair_mask),
        "tri_att_start": lambda: pair.tri_att_start(z, pair_mask),
        "tri_att_end": lambda: pair.tri_att_end(z, pair_mask),
        "pair_transition": lambda: pair.pair_transition(z, pair_mask),
        "attn_pair_bias": lambda: block.attn_pair_bias(s, z, single_mask),
        "single_transition": lambda: block.single_transition(s, single_mask),
    }
    row["pairformer_ms"] = {name: timed(mx.compile(fn), args.repeats) for name, fn in parts.items()}
    run = model.pairformer_stack.compiled_block()
    row["pairformer_ms"]["block"] = timed(
        lambda: run(block.parameters(), s, z, single_mask, pair_mask, None), args.repeats)

    module = model.diffusion_module
    sampled = {k: mx.expand_dims(v, 1) for k, v in batch.items() if v.ndim > 0}
    cond = module.conditioning(sampled, mx.zeros((1, 1, n, 449)), mx.expand_dims(s, 1),
                               mx.expand_dims(z, 1))
    mx.eval(cond)
    x, t = mx.random.normal((1, 5, n_atom, 3)), mx.array(10.0)
    step = module.compiled_denoise()
    row["denoise_ms"] = {"step": timed(lambda: step(cond, x, t), args.repeats)}
    transformer = module.diffusion_transformer
    a = mx.random.normal((1, 5, n, 768))
    weights = cond["token_weights"]
    conditioning = transformer.conditioning(mx.expand_dims(s, 1), weights["conditioning"])
    mx.eval(a, conditioning)
    first = transformer.blocks[0]
    one_block = mx.compile(lambda: first(a, conditioning[0], cond["tokens"][0], cond["token_mask"],
                                         weights["blocks"][0], None))
    row["denoise_ms"]["token_block"] = timed(one_block, args.repeats)
    row["denoise_ms"]["token_conditioning"] = timed(
        mx.compile(lambda: transformer.conditioning(mx.expand_dims(s, 1), weights["conditioning"])),
        args.repeats)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
