"""OpenFold3 at inference (AF3 Algorithm 1): trunk, diffusion sampling, confidence heads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx

from .buckets import atom_bucket, crop_outputs, pad_batch, token_bucket
from .diffusion import DiffusionModule
from .heads import AuxiliaryHeadsAllAtom
from .sampler import Draws, sample_atom_positions
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
        Every random draw derives from `seed` (MSA row sampling through MLX's global generator,
        the sampler through keys split from it), so a (task, seed) always gives the same result.
        The task is padded to `padded` (tokens, atoms) and the outputs cut back: the same answer.
        A compiled model pads to the task's size bucket by default, so that one graph serves
        every task of the bucket.
        """
        mx.random.seed(seed)
        n_token, n_atom = batch["token_mask"].shape[-1], batch["atom_mask"].shape[-1]
        if padded is None and self.compiled:
            padded = token_bucket(n_token), atom_bucket(n_atom)
        if padded is not None:
            batch = pad_batch(dict(batch), *padded)
        num_cycles = self._architecture["shared"]["num_recycles"] + 1
        s_input, s, z = self.run_trunk(batch, num_cycles, chunk_size)
        positions = sample_atom_positions(self.diffusion_module, self._architecture, batch,
                                          s_input, s, z, seed, chunk_size, draws=draws,
                                          compiled=self.compiled, n_atom=n_atom)
        sampled = {key: mx.expand_dims(value, 1) for key, value in batch.items() if value.ndim > 0}
        s_input, s, z = (mx.expand_dims(x, 1) for x in (s_input, s, z))
        outputs = {"si_trunk": s, "zij_trunk": z, "atom_positions_predicted": positions}
        outputs.update(self.aux_heads(sampled, s_input, s, z, positions, chunk_size))
        outputs = crop_outputs(outputs, n_token, n_atom)
        mx.eval(outputs)
        return outputs
