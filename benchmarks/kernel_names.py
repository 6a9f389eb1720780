"""Which fused kernels each new forward-pass shape of a compiled model adds, listed on the CPU.

    python benchmarks/kernel_names.py 60 60,60 100 100,100 300 [--demo] [--precision bfloat16]

Each argument is one forward pass: the lengths of its random single-chain proteins, one task
each, padded together to their size bucket as a screen's pass is. MLX names a compiled graph's
fused kernels by their operations, dtypes and constants, not by their shape, and its CPU
backend builds each name once per rank as `$TMPDIR/mlx/<version>/cpu/lib<name>_<rank>.so`; on
CUDA one NVRTC module holds every rank of a name. So the names a pass adds, without their rank,
are the modules a GPU would build for it. The
model is the released architecture (or `--demo`'s) with one block per stack, 0 recycles and
2 steps: every kind of block still runs. Prints one JSON line per pass: its size, the number
of new kernels and of new GPU modules (a name in all its ranks), the names (shortened) and
seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path


def kernels(root: Path) -> set[str]:
    """The names of the kernels MLX's CPU backend has built under `root`."""
    return {path.stem.removeprefix("lib") for path in root.rglob("*.so")}


def modules(names: set[str]) -> set[str]:
    """The names without their `_contiguous` or `_strided_<rank>` ending: on CUDA one module
    holds every variant of a name, so these are what a GPU would build."""
    return {re.sub(r"_(contiguous|strided_\d+)$", "", name) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("passes", nargs="+", help="comma-separated protein lengths, one pass each")
    parser.add_argument("--demo", action="store_true", help="the demo widths (faster to build)")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlx_kernels_"))
    os.environ["TMPDIR"] = str(root)  # before MLX is imported: where its CPU kernels go
    tempfile.tempdir = None

    import mlx.core as mx

    from foldscreen.contracts import DEMO_WEIGHTS, Chain
    from foldscreen.inference.featurise import featurise, query_set, silence_known_warnings
    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.settings import InferenceSettings
    from foldscreen.model.batch import to_mlx_batch
    from foldscreen.model.openfold3 import OpenFold3

    sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent / "gpu")]
    from bench_memory import one_block_each
    from make_features import protein, single_sequence_msas

    silence_known_warnings()
    weights = DEMO_WEIGHTS if args.demo else "released"  # only its widths are read: never opened
    settings = InferenceSettings(weights=weights, samples=args.samples, diffusion_steps=2, recycles=0)
    arch = model_config(settings).architecture
    one_block_each(arch)
    model = OpenFold3(arch, compiled=True)
    if args.precision != "float32":
        model.set_precision(getattr(mx, args.precision))

    def task(length: int, index: int) -> dict:
        """One random protein's features, with a single-sequence alignment."""
        chains = (Chain("protein", ("A",), sequence=protein(length, index)),)
        folder = Path(tempfile.mkdtemp(prefix="features_"))
        msas = single_sequence_msas(chains, folder)
        return to_mlx_batch(featurise(query_set(f"q{index}", chains, msas), f"q{index}", 1, folder))

    built = kernels(root)
    for number, spec in enumerate(args.passes):
        lengths = [int(n) for n in spec.split(",")]
        batches = [task(n, 100 * number + i) for i, n in enumerate(lengths)]
        start = time.perf_counter()
        outputs = model.predict(batches, list(range(len(batches))))
        mx.eval([list(out.values()) for out in outputs])
        seconds = time.perf_counter() - start
        now = kernels(root)
        new = sorted(now - built)
        print(json.dumps({"pass": spec, "tokens": [b["token_mask"].shape[-1] for b in batches],
                          "new_kernels": len(new), "new_gpu_modules": len(modules(now) - modules(built)),
                          "seconds": round(seconds, 1),
                          "names": [name[:80] for name in new]}), flush=True)
        built = now


if __name__ == "__main__":
    main()
