"""A PairFormer block, the trunk or a diffusion step: MLX against OpenFold3's PyTorch.

    python benchmarks/bench_trunk.py block --n 256 --framework mlx --repeats 5
    python benchmarks/bench_trunk.py trunk --n 128 --framework torch --repeats 3
    python benchmarks/bench_trunk.py diffusion --n 256 --framework mlx --repeats 5
    python benchmarks/bench_trunk.py model --n 100 --framework torch --repeats 2 --warmups 0

Each call measures one (part, N, framework) in a fresh process and prints one JSON line: the
wall time of every run after one warm-up, their median, and the process's peak resident memory
(and MLX's own peak). Default OpenFold3 channel sizes, random weights, float32. The trunk runs
the full architecture (48 PairFormer blocks) on a featurised protein of N residues, single
sequence, with `--cycles` trunk cycles (OpenFold3's default is 4). The diffusion step is one call of the
full-size diffusion module on the same protein, 5 samples, random trunk outputs. The model is
the whole network at OpenFold3's defaults (3 recycles, 200 steps), one sample.
FOLDSCREEN_MLX_BLAS=reference
measures MLX with its own reference BLAS instead of OpenBLAS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import foldscreen.model  # noqa: F401  (first: routes MLX's CPU BLAS to OpenBLAS on Linux)
from foldscreen.model.blas import use_openblas

FEATURES: Path | None = None


def config() -> Any:
    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.settings import InferenceSettings

    # The released architecture (weights path given, never read); chunking off.
    return model_config(InferenceSettings(weights="released"))


def block_inputs(n: int, c_s: int, c_z: int):
    import numpy as np

    rng = np.random.default_rng(0)
    s = rng.standard_normal((1, n, c_s)).astype(np.float32)
    z = rng.standard_normal((1, n, n, c_z)).astype(np.float32)
    return s, z, np.ones((1, n), np.float32), np.ones((1, n, n), np.float32)


def torch_block(n: int, threads: int) -> Callable[[], None]:
    import torch
    from openfold3.core.model.latent.pairformer import PairFormerBlock

    torch.set_num_threads(threads)
    arch = config().architecture.pairformer
    keep = ("c_s", "c_z", "c_hidden_pair_bias", "no_heads_pair_bias", "c_hidden_mul",
            "c_hidden_pair_att", "no_heads_pair", "transition_n", "inf")
    block = PairFormerBlock(**{k: arch[k] for k in keep}, pair_dropout=0.0,
                            fuse_projection_weights=False, transition_type="swiglu",
                            linear_init_params=arch.linear_init_params).eval()
    s, z, sm, pm = (torch.from_numpy(a) for a in block_inputs(n, arch.c_s, arch.c_z))

    def run() -> None:
        with torch.no_grad():
            block(s, z, single_mask=sm, pair_mask=pm, chunk_size=None)
    return run


def mlx_block(n: int, chunk_size: int | None) -> Callable[[], None]:
    import mlx.core as mx

    from foldscreen.model.pairformer import PairFormerBlock

    arch = config().architecture.pairformer
    keep = ("c_s", "c_z", "c_hidden_pair_bias", "no_heads_pair_bias", "c_hidden_mul",
            "c_hidden_pair_att", "no_heads_pair", "transition_n", "inf")
    block = PairFormerBlock(**{k: arch[k] for k in keep})
    s, z, sm, pm = (mx.array(a) for a in block_inputs(n, arch.c_s, arch.c_z))

    def run() -> None:
        mx.eval(block(s, z, sm, pm, chunk_size))
    return run


def protein_batch(n: int) -> dict:
    """OpenFold3's features of a random protein; read from (or saved to) `--features` if given."""
    import numpy as np
    import torch

    if FEATURES and FEATURES.is_file():
        with np.load(FEATURES) as saved:
            return {key: torch.from_numpy(saved[key]) for key in saved.files}
    batch = featurise_protein(n)
    if FEATURES:
        tensors = {k: v.numpy() for k, v in batch.items() if isinstance(v, torch.Tensor)}
        np.savez_compressed(FEATURES, **tensors)
    return batch


def featurise_protein(n: int) -> dict:
    from foldscreen.contracts import Chain
    from foldscreen.inference.featurise import featurise, query_set

    sys.path.insert(0, str(Path(__file__).parent / "gpu"))
    from make_features import protein

    sequence = protein(n, n)
    folder = Path(tempfile.mkdtemp())
    (folder / "msa").mkdir()
    (folder / "msa" / "colabfold_main.a3m").write_text(f">query\n{sequence}\n")
    chain = Chain("protein", ("A",), sequence=sequence)
    return featurise(query_set("p", (chain,), {"A": str(folder / "msa" / "colabfold_main.a3m")}),
                     "p", 1, folder)


def torch_trunk(n: int, threads: int, cycles: int) -> Callable[[], None]:
    import torch
    from openfold3.projects.of3_all_atom.model import OpenFold3

    torch.set_num_threads(threads)
    model = OpenFold3(config()).eval()
    batch = protein_batch(n)

    def run() -> None:
        with torch.no_grad():
            model.run_trunk(batch, num_cycles=cycles)
    return run


def mlx_trunk(n: int, cycles: int, chunk_size: int | None) -> Callable[[], None]:
    from foldscreen.model.batch import to_mlx_batch
    from foldscreen.model.trunk import Trunk

    trunk = Trunk(config().architecture)
    batch = to_mlx_batch(protein_batch(n))

    def run() -> None:
        trunk.run_trunk(batch, num_cycles=cycles, chunk_size=chunk_size)  # evaluates every cycle
    return run


def trunk_outputs(n: int) -> tuple[Any, ...]:
    import numpy as np

    shared = config().architecture.shared
    rng = np.random.default_rng(0)
    shapes = ((1, 1, n, shared.c_s_input), (1, 1, n, shared.c_s), (1, 1, n, n, shared.c_z))
    return tuple(rng.standard_normal(s).astype(np.float32) for s in shapes)


def torch_diffusion(n: int, threads: int, samples: int = 5) -> Callable[[], None]:
    import torch
    from openfold3.core.model.structure.diffusion_module import DiffusionModule

    torch.set_num_threads(threads)
    module = DiffusionModule(config().architecture.diffusion_module).eval()
    batch = {k: v.unsqueeze(1) for k, v in protein_batch(n).items() if isinstance(v, torch.Tensor)}
    s_input, s, z = (torch.from_numpy(a) for a in trunk_outputs(n))
    x = 30 * torch.randn(1, samples, batch["atom_mask"].shape[-1], 3)

    def run() -> None:
        with torch.no_grad():
            module(batch, x, batch["token_mask"], batch["atom_mask"], torch.tensor(25.0),
                   s_input, s, z, use_conditioning=True)
    return run


def mlx_diffusion(n: int, chunk_size: int | None, samples: int = 5) -> Callable[[], None]:
    import mlx.core as mx

    from foldscreen.model.batch import to_mlx_batch
    from foldscreen.model.diffusion import DiffusionModule

    module = DiffusionModule.from_config(config().architecture.diffusion_module)
    batch = {k: mx.expand_dims(v, 1) for k, v in to_mlx_batch(protein_batch(n)).items()}
    s_input, s, z = (mx.array(a) for a in trunk_outputs(n))
    x = 30 * mx.random.normal((1, samples, batch["atom_mask"].shape[-1], 3))

    def run() -> None:
        mx.eval(module(batch, x, mx.array(25.0), s_input, s, z, chunk_size))
    return run


def model_settings(recycles: int | None, steps: int | None) -> Any:
    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.settings import InferenceSettings

    return model_config(InferenceSettings(weights="released", samples=1, recycles=recycles,
                                          diffusion_steps=steps))


def torch_model(n: int, threads: int, device: str, recycles: int | None,
                steps: int | None) -> Callable[[], None]:
    import torch
    from openfold3.projects.of3_all_atom.model import OpenFold3

    torch.set_num_threads(threads)
    model = OpenFold3(model_settings(recycles, steps)).eval().to(device)
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in protein_batch(n).items()}

    def run() -> None:
        with torch.no_grad():
            model(dict(batch))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return run


def mlx_model(n: int, chunk_size: int | None, recycles: int | None, steps: int | None) -> Callable[[], None]:
    from foldscreen.model.batch import to_mlx_batch
    from foldscreen.model.openfold3 import OpenFold3

    model = OpenFold3(model_settings(recycles, steps).architecture)
    batch = to_mlx_batch(protein_batch(n))

    def run() -> None:
        model(batch, seed=1, chunk_size=chunk_size)  # evaluates its outputs
    return run


def measure(run: Callable[[], None], repeats: int, warmups: int) -> list[float]:
    for _ in range(warmups):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["block", "trunk", "diffusion", "model"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--framework", choices=["mlx", "torch"], required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
    parser.add_argument("--cycles", type=int, default=1, help="trunk cycles")
    parser.add_argument("--chunk-size", type=int, default=None, help="MLX chunk size")
    parser.add_argument("--recycles", type=int, default=None, help="model: recycles (default 3)")
    parser.add_argument("--steps", type=int, default=None, help="model: diffusion steps (default 200)")
    parser.add_argument("--device", default="cpu", help="PyTorch device (MLX uses its default device)")
    parser.add_argument("--features", type=Path, default=None,
                        help="read the featurised protein from this .npz, or save it there")
    args = parser.parse_args()
    global FEATURES
    FEATURES = args.features
    runs = {
        ("torch", "block"): lambda: torch_block(args.n, args.threads),
        ("torch", "trunk"): lambda: torch_trunk(args.n, args.threads, args.cycles),
        ("torch", "diffusion"): lambda: torch_diffusion(args.n, args.threads),
        ("mlx", "block"): lambda: mlx_block(args.n, args.chunk_size),
        ("mlx", "trunk"): lambda: mlx_trunk(args.n, args.cycles, args.chunk_size),
        ("mlx", "diffusion"): lambda: mlx_diffusion(args.n, args.chunk_size),
        ("torch", "model"): lambda: torch_model(args.n, args.threads, args.device, args.recycles, args.steps),
        ("mlx", "model"): lambda: mlx_model(args.n, args.chunk_size, args.recycles, args.steps),
    }
    run = runs[args.framework, args.part]()
    times = measure(run, args.repeats, args.warmups)
    result: dict[str, Any] = {**vars(args), "features": str(args.features),
                              "times_s": [round(t, 3) for t in times],
                              "median_s": round(statistics.median(times), 3),
                              "peak_rss_gib": round(peak_rss_kib() / 2**20, 2)}
    if args.device.startswith("cuda") and args.framework == "torch":
        import torch

        result["torch_cuda_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result["torch_device"] = torch.cuda.get_device_name()
    if args.framework == "mlx":
        import mlx.core as mx

        result["mlx_peak_gib"] = round(mx.get_peak_memory() / 2**30, 2)
        result["mlx_device"] = str(mx.default_device())
        result["mlx_blas"] = "openblas" if use_openblas() else "reference"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
