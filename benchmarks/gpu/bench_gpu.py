"""OpenFold3's `predict` preset and foldscreen's MLX backend on one GPU: same features, same settings.

    python benchmarks/gpu/bench_gpu.py speed openfold3 --features .devdata/protein_384.npz --lease L
    python benchmarks/gpu/bench_gpu.py speed mlx --precision bfloat16 --features ... --lease L
    python benchmarks/gpu/bench_gpu.py accuracy mlx --features .devdata/acc_*.npz --lease L

`speed`: the model is built once per process (random full-size weights: OpenFold3's own
initialisation, MLX's for the port), then each features file runs `--warmups` times untimed
(the first of them is reported as `first_s`: compilation included) and `--repeats` times timed.
`accuracy`: the MLX model with one set of random weights in float32 and in `--precision`, on the
same features and seed: coordinate RMSD after superposition, pLDDT, PAE and ranking-score
differences (confidences scored by OpenFold3's own code). One JSON line per features file and
setting is appended to `--out` (benchmarks/results/gpu.jsonl).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import foldscreen.model  # noqa: F401  (first: routes MLX's CPU BLAS where there is no GPU)


def load_features(path: Path) -> dict[str, Any]:
    import torch

    with np.load(path) as saved:
        return {key: torch.from_numpy(saved[key]) for key in saved.files}


def config(args: argparse.Namespace, backend: str) -> Any:
    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.settings import InferenceSettings

    return model_config(InferenceSettings(backend=backend, device="cuda", weights="released",
                                          samples=args.samples, recycles=args.recycles,
                                          diffusion_steps=args.steps))


def openfold3_runner(args: argparse.Namespace) -> tuple[Callable[[dict], Callable[[], None]], str]:
    import torch
    from openfold3.projects.of3_all_atom.model import OpenFold3

    model = OpenFold3(config(args, "torch")).eval().to("cuda")

    def prepare(batch: dict) -> Callable[[], None]:
        on_gpu = {k: v.to("cuda") for k, v in batch.items()}

        def run() -> None:
            with torch.no_grad():
                model(dict(on_gpu))
            torch.cuda.synchronize()
        return run
    return prepare, torch.cuda.get_device_name()


def mlx_model(args: argparse.Namespace, precision: str) -> Any:
    import mlx.core as mx

    from foldscreen.model.openfold3 import OpenFold3

    mx.random.seed(0)  # the same random weights in every process
    model = OpenFold3(config(args, "mlx").architecture, compiled=not args.eager)
    mx.eval(model.parameters())
    if precision != "float32":
        model.set_precision(getattr(mx, precision))
    return model


def mlx_runner(args: argparse.Namespace) -> tuple[Callable[[dict], Callable[[], None]], str]:
    import mlx.core as mx

    from foldscreen.model.batch import to_mlx_batch

    model = mlx_model(args, args.precision)

    def prepare(batch: dict) -> Callable[[], None]:
        arrays = to_mlx_batch(batch)
        return lambda: model(arrays, seed=1, chunk_size=args.chunk_size)  # evaluates its outputs
    return prepare, f"mlx {mx.default_device()} {mx.device_info().get('device_name', '')}"


def peak_reset(framework: str) -> None:
    if framework == "openfold3":
        import torch

        torch.cuda.reset_peak_memory_stats()
    else:
        import mlx.core as mx

        mx.reset_peak_memory()


def peak_gib(framework: str) -> float:
    if framework == "openfold3":
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    import mlx.core as mx

    return round(mx.get_peak_memory() / 2**30, 2)


def speed(args: argparse.Namespace) -> None:
    prepare, device = (openfold3_runner if args.framework == "openfold3" else mlx_runner)(args)
    for path in args.features:
        batch = load_features(path)
        run = prepare(batch)
        peak_reset(args.framework)
        first = None
        for _ in range(args.warmups):
            started = time.perf_counter()
            run()
            first = first if first is not None else time.perf_counter() - started
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            run()
            times.append(round(time.perf_counter() - started, 3))
        emit(args, {"kind": "speed", "features": path.name,
                    "n_tokens": int(batch["token_mask"].shape[-1]),
                    "n_atoms": int(batch["atom_mask"].shape[-1]), "times_s": times,
                    "median_s": round(statistics.median(times), 3),
                    "first_s": None if first is None else round(first, 3),
                    "peak_gib": peak_gib(args.framework), "device": device})


def kabsch_rmsd(x: np.ndarray, y: np.ndarray) -> float:
    """RMSD of x onto y [N, 3] after the optimal superposition."""
    x, y = x - x.mean(0), y - y.mean(0)
    u, _, vt = np.linalg.svd(x.T @ y)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, 1, d]) @ vt
    return float(np.sqrt((((x @ rotation) - y) ** 2).sum(-1).mean()))


def scored(model: Any, batch: dict, cfg: Any, seed: int) -> dict[str, np.ndarray]:
    import torch
    from openfold3.core.metrics.aggregate_confidence_ranking import get_confidence_scores

    from foldscreen.model.batch import to_mlx_batch

    outputs = model(to_mlx_batch(batch), seed=seed)
    outputs = {key: torch.from_numpy(np.array(value)) for key, value in outputs.items()}
    outputs["recycles"] = cfg.architecture.shared.num_recycles
    batch_t = {key: value.unsqueeze(1) for key, value in batch.items()}
    scores = get_confidence_scores(batch=batch_t, outputs=outputs, config=cfg, compute_per_sample=False)
    return {"positions": outputs["atom_positions_predicted"][0].numpy(),
            "plddt": scores["plddt"][0].numpy(), "pae": scores["pae"][0].numpy(),
            "ranking": scores["sample_ranking_score"][0].numpy()}


def accuracy(args: argparse.Namespace) -> None:
    cfg = config(args, "mlx")
    exact, low = mlx_model(args, "float32"), mlx_model(args, args.precision)
    for path in args.features:
        batch = load_features(path)
        mask = batch["atom_mask"][0].numpy() > 0
        a, b = scored(exact, batch, cfg, seed=1), scored(low, batch, cfg, seed=1)
        rmsd = [kabsch_rmsd(b["positions"][k][mask], a["positions"][k][mask])
                for k in range(args.samples)]
        emit(args, {"kind": "accuracy", "features": path.name,
                    "n_tokens": int(batch["token_mask"].shape[-1]), "n_atoms": int(mask.sum()),
                    "rmsd_a": [round(r, 3) for r in rmsd],
                    "plddt_mean_abs_diff": round(float(np.abs(a["plddt"] - b["plddt"]).mean()), 4),
                    "pae_mean_abs_diff": round(float(np.abs(a["pae"] - b["pae"]).mean()), 4),
                    "ranking_abs_diff": [round(float(d), 4) for d in np.abs(a["ranking"] - b["ranking"])],
                    "device": "mlx gpu"})


def emit(args: argparse.Namespace, row: dict[str, Any]) -> None:
    preset = "predict" if args.framework == "openfold3" else ("eager" if args.eager else "compiled")
    row = {"framework": args.framework, "preset": preset,
           "recycles": args.recycles if args.recycles is not None else 3,
           "steps": args.steps or 200, "samples": args.samples,
           "precision": "float32" if args.framework == "openfold3" else args.precision,
           "chunk_size": args.chunk_size, "lease": args.lease, **row}
    line = json.dumps(row)
    print(line, flush=True)
    with args.out.open("a") as out:
        out.write(line + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["speed", "accuracy"])
    parser.add_argument("framework", choices=["openfold3", "mlx"])
    parser.add_argument("--features", type=Path, nargs="+", required=True)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="default: 200")
    parser.add_argument("--recycles", type=int, default=None, help="default: 3")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--eager", action="store_true", help="MLX: no compiled denoising step")
    parser.add_argument("--chunk-size", type=int, default=None, help="MLX model_chunk_size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--lease", required=True, help="one identifier per lease")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.jsonl"))
    args = parser.parse_args()
    speed(args) if args.mode == "speed" else accuracy(args)


if __name__ == "__main__":
    main()
