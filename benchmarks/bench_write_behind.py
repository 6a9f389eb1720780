"""A forward pass's time while OpenFold3's writer runs beside it: in a thread or a process.

    python benchmarks/bench_write_behind.py [--steps 200] [--samples 1] [--repeats 3]

One random 50-residue protein (single-sequence alignment, demo weights, MLX on this machine)
runs through the MLX backend, timed: with no writer busy; while a thread writes the task's files
over and over (`write_outputs`, as `run.predict_tasks` writes them behind the model), at
Python's switch interval (5 ms) and at 0.5 ms; and while a process does (its own GIL, one
torch thread). The model's thread gives up the GIL in every evaluation and, while the writer's
thread holds it, waits up to the switch interval to take it back; a process shares only the
cores. Prints and appends one JSON line per setting to benchmarks/results/write_behind.jsonl
(every timed pass, their median). On a GPU machine with cores to spare, the thread against
the process tells what the GIL costs the model.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PYTHON_SWITCH_S = 0.005
SHORT_SWITCH_S = 0.0005


def write_over_and_over(written: tuple, config: Any, folder: Path, stop: Any, writes: Any) -> None:
    """OpenFold3's files of one task, written again and again until `stop` is set."""
    import torch

    from foldscreen.inference.outputs import write_outputs

    torch.set_num_threads(1)  # one core, as the thread has (the model runs with threads=1)
    while not stop.is_set():
        write_outputs(*written, config, folder / str(writes.value % 2))
        writes.value += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/write_behind.jsonl"))
    args = parser.parse_args()

    from foldscreen.contracts import Chain
    from foldscreen.inference import InferenceSettings
    from foldscreen.inference.featurise import featurise, query_set, silence_known_warnings
    from foldscreen.inference.mlx_backend import MlxBackend
    from foldscreen.inference.model_config import model_config

    silence_known_warnings()
    settings = InferenceSettings(samples=args.samples, diffusion_steps=args.steps, recycles=0, threads=1,
                                 cuda_graphs=False)  # as the screen runs on a GPU (ignored elsewhere)
    backend = MlxBackend(settings, model_config(settings))
    sys.path.insert(0, str(Path(__file__).parent / "gpu"))
    from make_features import protein, single_sequence_msas

    folder = Path(tempfile.mkdtemp())
    chains = (Chain("protein", ("A",), sequence=protein(50, 50)),)
    batch = featurise(query_set("p", chains, single_sequence_msas(chains, folder)), "p", 1, folder)
    written = backend.forward(batch)  # traced and compiled here: not timed

    def timed(where: str, switch_s: float) -> tuple[list[float], int]:
        """`where`: "" (no writer), "thread" or "process" (its own GIL, the same cores)."""
        context = multiprocessing.get_context("spawn")
        stop, writes = context.Event(), context.Value("i", 0)  # shared with a thread or a process
        job = (written, backend.config, folder / f"out_{where}", stop, writes)
        writer = {"": None, "thread": threading.Thread, "process": context.Process}[where]
        writer = writer and writer(target=write_over_and_over, args=job)
        before = sys.getswitchinterval()
        sys.setswitchinterval(switch_s)
        if writer:
            writer.start()
            while writes.value == 0:  # a spawned writer first imports its modules: time it writing
                time.sleep(0.05)
        try:
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                backend.forward(batch)
                times.append(round(time.perf_counter() - started, 3))
        finally:
            stop.set()
            if writer:
                writer.join()
            sys.setswitchinterval(before)
        return times, writes.value

    for label, where, switch_s in (("no writer", "", PYTHON_SWITCH_S),
                                   ("writer thread, Python's interval", "thread", PYTHON_SWITCH_S),
                                   ("writer thread, 0.5 ms interval", "thread", SHORT_SWITCH_S),
                                   ("writer process", "process", PYTHON_SWITCH_S)):
        times, writes = timed(where, switch_s)
        row = {"setting": label, "switch_s": switch_s, "steps": args.steps, "samples": args.samples,
               "times_s": times, "median_s": statistics.median(times), "writes": writes,
               "device": backend.device, "machine": platform.machine()}
        print(json.dumps(row), flush=True)
        with args.out.open("a") as out:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
