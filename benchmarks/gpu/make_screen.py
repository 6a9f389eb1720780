"""The 200-query screen of the GPU benchmark, featurised here by OpenFold3's featuriser.

    python benchmarks/gpu/make_screen.py --out .devdata/screen

200 random proteins of 60 to 400 residues (fixed seeds), single-sequence alignments, seed 1.
Each query becomes one compressed `.npz`: the feature tensors, plus the featurised atom array
as plain arrays (`atoms.<annotation>`, `atoms.coord`, `atoms.bonds`), so that the GPU machine
(no RDKit) can rebuild it with biotite and write the real output files. The featurisation time
of every query is written to `featurise_s.json` beside them.

    python benchmarks/gpu/make_screen.py --out .devdata/screen --sample 10

copies ten of them, spread evenly over the sizes, with `featurise_s.json`, to
`.devdata/screen_sample` (OpenFold3's once-per-query rate is measured on those).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from make_features import protein, single_sequence_msas

from foldscreen.contracts import Chain
from foldscreen.inference.featurise import silence_known_warnings
from foldscreen.inference.prefetch import FeaturiseJob, featurise_job


def lengths(count: int) -> list[int]:
    rng = random.Random(200)
    return [rng.randint(60, 400) for _ in range(count)]


def atom_arrays(atoms) -> dict[str, np.ndarray]:
    arrays = {f"atoms.{name}": atoms.get_annotation(name) for name in atoms.get_annotation_categories()}
    arrays["atoms.coord"] = atoms.coord
    if atoms.bonds is not None:
        arrays["atoms.bonds"] = atoms.bonds.as_array()
    return arrays


def sample(screen: Path, count: int) -> None:
    """`count` queries of the screen, evenly spread over its sizes, copied beside it."""
    by_size = sorted(screen.glob("screen_*.npz"), key=lambda path: int(path.stem.rsplit("_", 1)[1]))
    folder = screen.parent / "screen_sample"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        shutil.copy(by_size[round(i * (len(by_size) - 1) / (count - 1))], folder)
    shutil.copy(screen / "featurise_s.json", folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".devdata/screen"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--sample", type=int, default=None, help="copy this many made queries")
    args = parser.parse_args()
    if args.sample:
        return sample(args.out, args.sample)
    args.out.mkdir(parents=True, exist_ok=True)
    silence_known_warnings()
    seconds = {}
    for index, n in enumerate(lengths(args.count)):
        name = f"screen_{index:03d}_{n}"
        chains = (Chain("protein", ("A",), sequence=protein(n, 1000 + index)),)
        folder = Path(tempfile.mkdtemp())
        started = time.perf_counter()
        # seeded as a chunk job seeds it, so the reference conformers are the ones the GPU
        # machine's featurisation of the same query draws
        batch = featurise_job(FeaturiseJob(name, chains, single_sequence_msas(chains, folder), {}, 1, folder))
        seconds[name] = time.perf_counter() - started
        tensors = {key: value.numpy() for key, value in batch.items() if hasattr(value, "numpy")}
        np.savez_compressed(args.out / f"{name}.npz", **tensors, **atom_arrays(batch["atom_array"][0]))
        print(name, f"{seconds[name]:.2f} s", flush=True)
    (args.out / "featurise_s.json").write_text(json.dumps(seconds, indent=1))


if __name__ == "__main__":
    main()
