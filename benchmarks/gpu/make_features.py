"""Features for the GPU benchmarks, made here with OpenFold3's featuriser (the GPU machine has no RDKit).

    python benchmarks/gpu/make_features.py --out .devdata

Writes one compressed `.npz` per query (tensors only; one-hot arrays shrink about 50x):
random proteins of 100, 384 and 1,000 residues for the speed rows, and ten queries of different
sizes and kinds (proteins, a heterodimer, a homotrimer, protein-ligand, RNA, DNA, protein-RNA)
for the bfloat16 accuracy rows. Single-sequence alignments throughout.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import numpy as np

from foldscreen.contracts import Chain
from foldscreen.inference.featurise import featurise, query_set, silence_known_warnings

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def protein(n: int, seed: int) -> str:
    """n residues drawn uniformly from the 20 amino acids by one generator seeded `seed`."""
    return nucleic(n, seed, AMINO)


def nucleic(n: int, seed: int, letters: str) -> str:
    """n letters drawn uniformly from `letters` (until 2026-12-03 each letter was drawn by a new
    generator of the same seed: every sequence was one letter repeated)."""
    rng = random.Random(seed)
    return "".join(rng.choice(letters) for _ in range(n))


def queries() -> dict[str, tuple[Chain, ...]]:
    """Name -> chains: the speed rows (protein_N) and the accuracy set (acc_*)."""
    speed = {f"protein_{n}": (Chain("protein", ("A",), sequence=protein(n, n)),) for n in (100, 384, 1000)}
    accuracy = {
        "acc_protein_60": (Chain("protein", ("A",), sequence=protein(60, 1)),),
        "acc_protein_150": (Chain("protein", ("A",), sequence=protein(150, 2)),),
        "acc_protein_300": (Chain("protein", ("A",), sequence=protein(300, 3)),),
        "acc_heterodimer": (Chain("protein", ("A",), sequence=protein(120, 4)),
                            Chain("protein", ("B",), sequence=protein(90, 5))),
        "acc_homotrimer": (Chain("protein", ("A", "B", "C"), sequence=protein(70, 6)),),
        "acc_protein_ligand": (Chain("protein", ("A",), sequence=protein(140, 7)),
                               Chain("ligand", ("B",), smiles="CC(=O)Nc1ccc(O)cc1")),
        "acc_protein_atp": (Chain("protein", ("A",), sequence=protein(110, 8)),
                            Chain("ligand", ("B",), ccd_codes=("ATP",))),
        "acc_rna": (Chain("rna", ("A",), sequence=nucleic(60, 9, "ACGU")),),
        "acc_dna_duplex": (Chain("dna", ("A",), sequence=nucleic(30, 10, "ACGT")),
                           Chain("dna", ("B",), sequence=nucleic(30, 11, "ACGT"))),
        "acc_protein_rna": (Chain("protein", ("A",), sequence=protein(100, 12)),
                            Chain("rna", ("B",), sequence=nucleic(40, 13, "ACGU"))),
    }
    return {**speed, **accuracy}


def single_sequence_msas(chains: tuple[Chain, ...], folder: Path) -> dict[str, str]:
    paths = {}
    for index, chain in enumerate(chains):
        if chain.molecule_type in ("protein", "rna") and chain.sequence:
            path = folder / f"chain_{index}" / "colabfold_main.a3m"
            path.parent.mkdir(parents=True)
            path.write_text(f">query\n{chain.sequence}\n")
            paths[",".join(chain.chain_ids)] = str(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".devdata"))
    parser.add_argument("--only", nargs="*", help="names to make (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    silence_known_warnings()
    for name, chains in queries().items():
        if args.only and name not in args.only:
            continue
        folder = Path(tempfile.mkdtemp())
        batch = featurise(query_set(name, chains, single_sequence_msas(chains, folder)), name, 1, folder)
        tensors = {key: value.numpy() for key, value in batch.items() if hasattr(value, "numpy")}
        np.savez_compressed(args.out / f"{name}.npz", **tensors)
        print(name, tensors["token_mask"].shape[-1], "tokens", tensors["atom_mask"].shape[-1], "atoms")


if __name__ == "__main__":
    main()
