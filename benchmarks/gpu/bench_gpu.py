"""OpenFold3's `predict` preset and foldscreen's MLX backend on one GPU: same features, same settings.

    python benchmarks/gpu/bench_gpu.py speed openfold3 --features .devdata/protein_384.npz --lease L
    python benchmarks/gpu/bench_gpu.py speed mlx --precision bfloat16 --features ... --lease L
    python benchmarks/gpu/bench_gpu.py accuracy mlx --features .devdata/acc_*.npz --lease L

`speed`: the model is built once per process (random full-size weights: OpenFold3's own
initialisation, MLX's for the port), then each features file runs `--warmups` times untimed
(the first of them is reported as `first_s`: compilation included) and `--repeats` times timed.
`screen`: the MLX model through the inference stage's task loop (`predict_tasks`: tasks of one
size bucket batched, files written behind the model, in a process unless `--write-in-thread`)
on the features of `benchmarks/gpu/make_screen.py`; queries per hour, with the featurisation
time those queries took on the CPU machine beside it; with `--featurise-workers`, the queries
are featurised on this machine from their sequences, in worker processes, as a chunk job
featurises them.
`featurise`: OpenFold3's featuriser on this machine, one query after another. `accuracy`: the
MLX model with one set of random weights in float32 and in `--precision`, on the same features
and seed: coordinate RMSD after superposition, pLDDT, PAE and ranking-score differences. One
JSON line per features file and setting is appended to `--out` (benchmarks/results/gpu.jsonl).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import foldscreen.model  # noqa: F401  (first: routes MLX's CPU BLAS where there is no GPU)

DEFAULT_STEPS, DEFAULT_RECYCLES = 200, 3  # OpenFold3's inference defaults


def load_features(path: Path) -> dict[str, Any]:
    """The feature tensors of a features file (not the screen's atom arrays, `atoms.*`)."""
    import torch

    with np.load(path) as saved:
        return {key: torch.from_numpy(saved[key]) for key in saved.files if not key.startswith("atoms.")}


def padded_features(path: Path) -> dict[str, Any]:
    """A features file as the MLX batch a compiled model runs: padded to its size bucket."""
    from foldscreen.model.batch import to_mlx_batch
    from foldscreen.model.buckets import atom_bucket, stack_batches, token_bucket

    batch = to_mlx_batch(load_features(path))
    n_token, n_atom = batch["token_mask"].shape[-1], batch["atom_mask"].shape[-1]
    return stack_batches([batch], (token_bucket(n_token), atom_bucket(n_atom)))


def config(args: argparse.Namespace, backend: str) -> Any:
    """OpenFold3's config, or for MLX the architecture saved in `--architecture` (no OpenFold3)."""
    if backend == "mlx" and args.architecture and args.architecture.is_file():
        import ml_collections

        architecture = ml_collections.ConfigDict(json.loads(args.architecture.read_text()))
        shared = architecture.shared  # the run's settings, never the file's (it may hold any)
        shared.diffusion.no_full_rollout_samples = args.samples
        shared.diffusion.no_full_rollout_steps = args.steps or DEFAULT_STEPS
        shared.num_recycles = args.recycles if args.recycles is not None else DEFAULT_RECYCLES
        return ml_collections.ConfigDict({"architecture": architecture})
    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.settings import InferenceSettings

    recycles = args.recycles if args.recycles is not None else DEFAULT_RECYCLES
    cfg = model_config(InferenceSettings(backend=backend, device="cuda", weights="released",
                                         samples=args.samples, recycles=recycles,
                                         diffusion_steps=args.steps or DEFAULT_STEPS))
    if args.architecture and not args.architecture.is_file():
        args.architecture.write_text(cfg.architecture.to_json())
    return cfg


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


def mlx_model(args: argparse.Namespace, precision: str, compiled: bool | None = None) -> Any:
    import mlx.core as mx

    from foldscreen.model.openfold3 import OpenFold3

    mx.random.seed(0)  # the same random weights in every process
    if args.scores_mib is not None:
        from foldscreen.model import primitives

        primitives.SCORES_BYTES = args.scores_mib * 2**20
    compiled = not args.eager if compiled is None else compiled
    model = OpenFold3(config(args, "mlx").architecture, compiled=compiled)
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
        seeds = list(range(1, args.batch + 1))  # --batch tasks in one forward pass
        return lambda: model.predict([arrays] * args.batch, seeds, args.chunk_size)  # evaluates them
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
    for path, depth, limit in itertools.product(args.features, args.queue_depth or [None],
                                                args.memory_limit_gib or [None]):
        if args.framework == "mlx":
            run_settings(depth, limit)
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
        emit(args, {"kind": "speed", "features": path.name, "batch": args.batch, "queue_depth": depth,
                    "memory_limit_gib": limit,
                    "n_tokens": int(batch["token_mask"].shape[-1]),
                    "n_atoms": int(batch["atom_mask"].shape[-1]), "times_s": times,
                    "median_s": round(statistics.median(times), 3),
                    "first_s": None if first is None else round(first, 3),
                    "peak_gib": peak_gib(args.framework), "device": device})


def run_settings(queue_depth: int | None, memory_limit_gib: float | None) -> None:
    """The MLX queue depth (model.primitives.QUEUE_DEPTH) and memory limit (as
    inference.memory_limit_gib sets it) of what runs next; None keeps the current one."""
    import mlx.core as mx

    from foldscreen.model import primitives

    if queue_depth is not None:
        primitives.QUEUE_DEPTH = queue_depth
    if memory_limit_gib is not None:
        mx.set_memory_limit(int(memory_limit_gib * 2**30))


def kabsch_rmsd(x: np.ndarray, y: np.ndarray) -> float:
    """RMSD of x onto y [N, 3] after the optimal superposition."""
    x, y = x - x.mean(0), y - y.mean(0)
    u, _, vt = np.linalg.svd(x.T @ y)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, 1, d]) @ vt
    return float(np.sqrt((((x @ rotation) - y) ** 2).sum(-1).mean()))


def expected(logits: np.ndarray, bin_max: float) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, expected value) of logits over equal bins from 0 to `bin_max`."""
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    n = logits.shape[-1]
    centres = (np.arange(n) + 0.5) * bin_max / n
    return p, (p * centres).sum(-1)


def ptm(pae_probs: np.ndarray, asym: np.ndarray, interface: bool) -> np.ndarray:
    """pTM or ipTM per sample (AF3 SI eqs. 17-18) from PAE bins of 0-32 A; pae_probs [S, N, N, B]."""
    n, bins = pae_probs.shape[-2], pae_probs.shape[-1]
    d0 = 1.24 * (max(n, 19) - 15) ** (1 / 3) - 1.8
    centres = (np.arange(bins) + 0.5) * 32 / bins
    tm = (pae_probs / (1 + (centres / d0) ** 2)).sum(-1)  # [S, N, N]
    pairs = (asym[:, None] != asym[None, :]) if interface else np.ones((n, n), bool)
    per_row = (tm * pairs).sum(-1) / np.maximum(pairs.sum(-1), 1)
    return per_row.max(-1)


def scored(model: Any, batch: dict, seed: int) -> dict[str, np.ndarray]:
    """Positions, pLDDT, PAE and a ranking proxy (0.8 ipTM + 0.2 pTM; pTM for one chain)."""
    from foldscreen.model.batch import to_mlx_batch

    outputs = {key: np.array(value) for key, value in model(to_mlx_batch(batch), seed=seed).items()}
    token = batch["token_mask"][0].numpy() > 0
    asym = batch["asym_id"][0].numpy()[token]
    _, plddt = expected(outputs["plddt_logits"][0], 100.0)
    pae_probs, pae = expected(outputs["pae_logits"][0][:, token][:, :, token], 32.0)
    whole = ptm(pae_probs, asym, interface=False)
    ranking = 0.8 * ptm(pae_probs, asym, interface=True) + 0.2 * whole if len(set(asym)) > 1 else whole
    return {"positions": outputs["atom_positions_predicted"][0], "plddt": plddt, "pae": pae,
            "ranking": ranking}


def accuracy(args: argparse.Namespace) -> None:
    exact = mlx_model(args, "float32", compiled=False if args.against_eager else None)
    low = mlx_model(args, args.precision)
    for path in args.features:
        batch = load_features(path)
        mask = batch["atom_mask"][0].numpy() > 0
        a, b = scored(exact, batch, seed=1), scored(low, batch, seed=1)
        rmsd = [kabsch_rmsd(b["positions"][k][mask], a["positions"][k][mask])
                for k in range(args.samples)]
        emit(args, {"kind": "accuracy", "features": path.name,
                    "n_tokens": int(batch["token_mask"].shape[-1]), "n_atoms": int(mask.sum()),
                    "rmsd_a": [round(r, 3) for r in rmsd],
                    "plddt_mean_abs_diff": round(float(np.abs(a["plddt"] - b["plddt"])[:, mask].mean()), 4),
                    "pae_mean_abs_diff": round(float(np.abs(a["pae"] - b["pae"]).mean()), 4),
                    "ranking_abs_diff": [round(float(d), 4) for d in np.abs(a["ranking"] - b["ranking"])],
                    "against": "eager float32" if args.against_eager else "float32", "device": "mlx gpu"})


def screen_task(path: Path, out: Path) -> tuple[Any, Callable[[], dict]]:
    """A task of the screen and how to get its features (the tensors and the rebuilt atom array)."""
    from foldscreen.inference import tasks
    from foldscreen.inference.run import Task

    name = path.stem
    folder = tasks.task_dir(out, name, 1)

    def get() -> dict:
        import biotite.structure as struc

        with np.load(path) as saved:
            atoms = {key.removeprefix("atoms."): saved[key] for key in saved.files
                     if key.startswith("atoms.")}
        array = struc.AtomArray(len(atoms["coord"]))
        array.coord = atoms.pop("coord")
        if "bonds" in atoms:
            array.bonds = struc.BondList(array.array_length(), atoms.pop("bonds"))
        for annotation, values in atoms.items():
            array.set_annotation(annotation, values)
        return {**load_features(path), "atom_array": [array], "query_id": [name], "seed": [1]}
    return Task(name, 1, folder, "bench", tasks.staging_dir(folder)), get


def screen_job(path: Path, out: Path) -> tuple[Any, Any]:
    """A task of the screen and its featurisation job, from the query's sequence (as
    `make_screen.py` made it), with a single-sequence alignment written beside its folder."""
    from make_features import protein, single_sequence_msas

    from foldscreen.contracts import Chain
    from foldscreen.inference.prefetch import FeaturiseJob

    task, _ = screen_task(path, out)
    index, residues = (int(part) for part in path.stem.split("_")[1:])
    chains = (Chain("protein", ("A",), sequence=protein(residues, 1000 + index)),)
    msas = single_sequence_msas(chains, Path(tempfile.mkdtemp()))
    return task, FeaturiseJob(path.stem, chains, msas, {}, 1, task.staging)


def tokens(path: Path) -> int:
    with np.load(path) as saved:
        return saved["token_mask"].shape[-1]


def featurise_seconds(folder: Path) -> dict[str, float]:
    """What featurising each query of the screen took on the CPU machine (`make_screen.py`)."""
    return json.loads((folder / "featurise_s.json").read_text())


def featurise(args: argparse.Namespace) -> None:
    """OpenFold3's featuriser on this machine, in this process, one query after another (as a
    once-per-query OpenFold3 run pays it): seconds per query of the screen's `--features`, the
    first (imports and caches, once per process) apart."""
    from foldscreen.inference.featurise import silence_known_warnings
    from foldscreen.inference.prefetch import featurise_job

    silence_known_warnings()
    out, picks, times = Path(tempfile.mkdtemp()), sorted(args.features, key=tokens), []
    for path in picks:
        _, job = screen_job(path, out)
        started = time.perf_counter()
        featurise_job(job)
        times.append(round(time.perf_counter() - started, 3))
    emit(args, {"kind": "featurise", "features": [path.name for path in picks], "first_s": times[0],
                "times_s": times[1:], "median_s": round(statistics.median(times[1:]), 3),
                "mean_s": round(statistics.mean(times[1:]), 3), "device": f"cpu ({os.cpu_count()} cores)"})


def screen(args: argparse.Namespace) -> None:
    (screen_openfold3 if args.framework == "openfold3" else screen_mlx)(args)


def screen_openfold3(args: argparse.Namespace) -> None:
    """OpenFold3 called once per query, on a sample of the screen's queries (`--features`: all
    200 would take most of an hour): each timed once after a warm-up, and the whole screen's
    model time (every query of `featurise_s.json`, named `screen_<index>_<residues>`) estimated
    from a line fitted to time against tokens."""
    prepare, device = openfold3_runner(args)
    picks = sorted(args.features, key=tokens)
    prepare(load_features(picks[0]))()
    sizes, times = [tokens(path) for path in picks], []
    for path in picks:
        run = prepare(load_features(path))
        started = time.perf_counter()
        run()
        times.append(round(time.perf_counter() - started, 3))
    slope, intercept = np.polyfit(sizes, times, 1)
    featurised = featurise_seconds(picks[0].parent)
    model_s = float(sum(intercept + slope * int(name.rsplit("_", 1)[1]) for name in featurised))
    featurise_s = round(sum(featurised.values()), 1)
    emit(args, {"kind": "screen", "queries": len(featurised), "sampled_tokens": sizes,
                "times_s": times, "fit_s": [round(float(intercept), 3), round(float(slope), 5)],
                "model_s_estimated": round(model_s, 1), "featurise_s_on_cpu_machine": featurise_s,
                "queries_per_hour": round(3600 * len(featurised) / (model_s + featurise_s)),
                "queries_per_hour_model_only": round(3600 * len(featurised) / model_s),
                "peak_gib": peak_gib("openfold3"), "device": device})


def screen_mlx(args: argparse.Namespace) -> None:
    """The screen through the inference stage's task loop: batched, files written behind; with
    `--featurise-workers`, featurised on this machine in worker processes as a chunk job does."""
    from foldscreen.inference.backend import Backend
    from foldscreen.inference.mlx_backend import MlxBackend
    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.prefetch import featurised
    from foldscreen.inference.run import predict_tasks, write_in_process
    from foldscreen.inference.settings import InferenceSettings

    passes: list[dict[str, Any]] = []

    class RandomWeights(MlxBackend):
        def __init__(self, settings: InferenceSettings) -> None:
            Backend.__init__(self, settings, model_config(settings))
            self.model, self._openblas = mlx_model(args, settings.precision), False

        def forward_many(self, batches: list[dict[str, Any]]) -> list:
            started = time.perf_counter()
            results = super().forward_many(batches)
            passes.append({"tasks": len(batches), "s": round(time.perf_counter() - started, 2),
                           "tokens": max(int(b["token_mask"].shape[-1]) for b in batches),
                           "atoms": max(int(b["atom_mask"].shape[-1]) for b in batches)})
            print(json.dumps(passes[-1]), file=sys.stderr, flush=True)
            return results

    # threads: as a GPU job given the machine's cores (the writing process's torch threads; L15's
    # screens gave it 2, and OpenFold3's scoring at 384 tokens takes 4 s on 2 cores, 6.4 s on 1)
    settings = InferenceSettings(weights="random", samples=args.samples, precision=args.precision,
                                 batch_tokens=args.batch_tokens, model_chunk_size=args.chunk_size,
                                 write_in_process=False if args.write_in_thread else None,
                                 threads=os.cpu_count() or 1)
    backend = RandomWeights(settings)
    out = Path(tempfile.mkdtemp())
    started = time.perf_counter()
    # in order of size, as the plan orders a screen's chunks: each size bucket's graph is traced
    # once, and its groups fill as they go
    by_size = sorted(args.features, key=tokens)
    if args.featurise_workers is None:  # the features made on the CPU machine, loaded
        screen_tasks = [screen_task(path, out) for path in by_size]
    else:  # featurised here by OpenFold3's featuriser in worker processes, as a chunk job does
        screen_tasks = featurised((screen_job(path, out) for path in by_size), args.featurise_workers)

    def within_budget():  # stop taking tasks after --budget-s; those taken finish
        for task in screen_tasks:
            if time.perf_counter() - started > args.budget_s:
                return
            yield task
    outcomes = [outcome for _, outcome in predict_tasks(backend, within_budget())]
    wall = time.perf_counter() - started
    records = [r for r in outcomes if isinstance(r, dict)]
    done = [path for path in args.features if path.stem in {r["query_id"] for r in records}]
    timing = lambda key: round(sum(r["timings"][key] for r in records), 1)  # noqa: E731
    emit(args, {"kind": "screen", "queries": len(args.features), "done": len(records),
                "failed": len(outcomes) - len(records),
                "wall_s": round(wall, 1), "queries_per_hour": round(3600 * len(records) / wall),
                "model_s": timing("model_s"), "write_s": timing("write_s"), "load_s": timing("featurise_s"),
                "model_busy": round(timing("model_s") / wall, 3),
                "batched_with": statistics.mean(r["batched_with"] for r in records) if records else None,
                "passes": len(passes), "shapes": len({(p["tasks"], p["tokens"], p["atoms"]) for p in passes}),
                "featurise_s_on_cpu_machine": round(sum(featurise_seconds(done[0].parent)[path.stem]
                                                        for path in done), 1) if done else None,
                "featurise_workers": args.featurise_workers,
                "write_in_process": write_in_process(settings, backend),
                "batch_tokens": args.batch_tokens, "device": backend.device, "peak_gib": peak_gib("mlx")})


def emit(args: argparse.Namespace, row: dict[str, Any]) -> None:
    preset = "predict" if args.framework == "openfold3" else ("eager" if args.eager else "compiled")
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MLX_"))
    row = {"framework": args.framework, "preset": preset, **({"env": env} if env else {}),
           "recycles": args.recycles if args.recycles is not None else DEFAULT_RECYCLES,
           "steps": args.steps or DEFAULT_STEPS, "samples": args.samples,
           "precision": "float32" if args.framework == "openfold3" else args.precision,
           "chunk_size": args.chunk_size, "queue_depth": (args.queue_depth or [None])[0],
           "memory_limit_gib": (args.memory_limit_gib or [None])[0], "lease": args.lease,
           **({"scores_mib": args.scores_mib} if args.scores_mib is not None else {}),
           **row}
    line = json.dumps(row)
    print(line, flush=True)
    with args.out.open("a") as out:
        out.write(line + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["featurise", "speed", "accuracy", "screen"])
    parser.add_argument("framework", choices=["openfold3", "mlx"])
    parser.add_argument("--features", type=Path, nargs="+", required=True)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="default: 200")
    parser.add_argument("--recycles", type=int, default=None, help="default: 3")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--eager", action="store_true", help="MLX: no compiled denoising step")
    parser.add_argument("--against-eager", action="store_true", help="accuracy: eager reference")
    parser.add_argument("--chunk-size", type=int, default=None, help="MLX model_chunk_size")
    parser.add_argument("--batch", type=int, default=1, help="MLX speed: tasks per forward pass")
    parser.add_argument("--batch-tokens", type=int, default=None, help="MLX screen: inference.batch_tokens")
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="screen: stop after")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--architecture", type=Path, default=None,
                        help="JSON of the released architecture: written if absent, else read (no OpenFold3)")
    parser.add_argument("--lease", required=True, help="one identifier per lease")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.jsonl"))
    parser.add_argument("--queue-depth", type=int, nargs="+", default=None,
                        help="MLX: evaluations queued ahead of the GPU (model.primitives.QUEUE_DEPTH); "
                             "speed: a row for each")
    parser.add_argument("--write-in-thread", action="store_true",
                        help="MLX screen: write files in a thread (inference.write_in_process: false)")
    parser.add_argument("--featurise-workers", type=int, default=None,
                        help="MLX screen: featurise here in this many worker processes")
    parser.add_argument("--memory-limit-gib", type=float, nargs="+", default=None,
                        help="MLX: inference.memory_limit_gib; speed: a row for each")
    parser.add_argument("--scores-mib", type=int, default=None,
                        help="MLX: primitives.SCORES_BYTES in MiB (the float32 triangle attentions' bound)")
    args = parser.parse_args()
    if args.framework == "mlx":  # (the GPU machine's OpenFold3 rows run before MLX is installed)
        run_settings((args.queue_depth or [None])[0], (args.memory_limit_gib or [None])[0])
    {"featurise": featurise, "speed": speed, "accuracy": accuracy, "screen": screen}[args.mode](args)


if __name__ == "__main__":
    main()
