"""OpenFold3 at inference (AF3 Algorithm 1): trunk, diffusion sampling, confidence heads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mlx.core as mx

from .buckets import atom_bucket, crop_outputs, stack_batches, token_bucket
from .diffusion import DiffusionModule
from .heads import AuxiliaryHeadsAllAtom
from .sampler import Draws, KeyedDraws, StackedDraws, sample_atom_positions
from .trunk import Trunk


class OpenFold3(Trunk):
    """The whole network; its parameter names are OpenFold3's checkpoint keys."""

    def __init__(self, architecture: Mapping[str, Any], compiled: bool = False) -> None:
        """`architecture` is OpenFold3's `config.architecture` (it sets recycles, steps, samples).

        `compiled` runs each PairFormer block and each denoising step as one compiled MLX graph
        (worth it on a GPU).
        """
        super().__init__(architecture, compiled)
        self.diffusion_module = DiffusionModule.from_config(architecture["diffusion_module"])
        self.aux_heads = AuxiliaryHeadsAllAtom(architecture["heads"])
        self._architecture = architecture

    def set_precision(self, precision: mx.Dtype) -> None:
        """The MSA module, PairFormer and diffusion transformer in `precision` (after loading)."""
        self.cast_trunk(precision)
        self.diffusion_module.cast_transformer(precision)

    def __call__(self, batch: Mapping[str, mx.array], seed: int, chunk_size: int | None = None,
                 draws: Draws | None = None,
                 padded: tuple[int, int] | None = None) -> dict[str, mx.array]:
        """OpenFold3's inference outputs for one featurised task (batch size 1).

        Returns `atom_positions_predicted` [*, S, N_atom, 3], the trunk's `si_trunk` and
        `zij_trunk` (with a sample axis of 1) and the heads' logits, under OpenFold3's names.
        Every random draw derives from `seed` (MSA row sampling and the sampler through keys made
        from it), so a (task, seed) always gives the same result. The task is padded to `padded`
        (tokens, atoms) and the outputs cut back: the same answer. A compiled model pads to the
        task's size bucket by default, so that one graph serves every task of the bucket.
        """
        return self.predict([batch], [seed], chunk_size, None if draws is None else [draws],
                            padded)[0]

    def predict(self, batches: Sequence[Mapping[str, mx.array]], seeds: Sequence[int],
                chunk_size: int | None = None, draws: Sequence[Draws] | None = None,
                padded: tuple[int, int] | None = None) -> list[dict[str, mx.array]]:
        """The outputs of several tasks (one batch and seed each), run as one forward pass.

        The tasks are padded to one size (`padded`, else the largest task's, or its size bucket
        when compiled) and stacked along the batch axis; each task's outputs are cut back to its
        own size. A task gets the same outputs batched or alone: every random draw is keyed by
        its own seed, and padding is masked out everywhere.
        """
        sizes = [(b["token_mask"].shape[-1], b["atom_mask"].shape[-1]) for b in batches]
        if padded is None and (self.compiled or len(batches) > 1):
            n_token, n_atom = (max(n) for n in zip(*sizes, strict=True))
            padded = (token_bucket(n_token), atom_bucket(n_atom)) if self.compiled else (n_token, n_atom)
        batch = stack_batches(batches, padded) if padded is not None else dict(batches[0])
        num_cycles = self._architecture["shared"]["num_recycles"] + 1
        s_input, s, z = self.run_trunk(batch, num_cycles, chunk_size,
                                       [msa_keys(seed, num_cycles) for seed in seeds])
        if draws is None:
            steps = self._architecture["shared"]["diffusion"]["no_full_rollout_steps"]
            draws = [KeyedDraws(seed, steps, n_atom, self.compiled)
                     for seed, (_, n_atom) in zip(seeds, sizes, strict=True)]
        positions = sample_atom_positions(self.diffusion_module, self._architecture, batch,
                                          s_input, s, z, seeds[0], chunk_size,
                                          draws=StackedDraws(draws), compiled=self.compiled)
        sampled = {key: mx.expand_dims(value, 1) for key, value in batch.items() if value.ndim > 0}
        s_input, s, z = (mx.expand_dims(x, 1) for x in (s_input, s, z))
        outputs = {"si_trunk": s, "zij_trunk": z, "atom_positions_predicted": positions}
        outputs.update(self.aux_heads(sampled, s_input, s, z, positions, chunk_size))
        tasks = [crop_outputs({key: value[i:i + 1] for key, value in outputs.items()}, *size)
                 for i, size in enumerate(sizes)]
        mx.eval(tasks)
        return tasks


def msa_keys(seed: int, num_cycles: int) -> list[mx.array]:
    """The keys of a task's MSA row sampling, one per trunk cycle (a stream apart from the
    sampler's, which starts from `mx.random.key(seed)`)."""
    return list(mx.random.split(mx.random.key(seed + 2**32), num_cycles))
