"""The trunk: input embedding, then recycling through templates, MSA module and PairFormer.

AF3 Algorithm 1, lines 1-14, as OpenFold3's `run_trunk` does it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .input_embedder import InputEmbedderAllAtom
from .msa import MSAModuleEmbedder, MSAModuleStack
from .pairformer import PairFormerStack
from .primitives import LayerNorm, Linear
from .template import TemplateEmbedderAllAtom


class Trunk(nn.Module):
    """Input embedder, recycling projections, template embedder, MSA module and PairFormer."""

    def __init__(self, architecture: Mapping[str, Any], compiled: bool = False) -> None:
        """`architecture` is OpenFold3's `config.architecture`; `compiled`: compiled PairFormer blocks."""
        super().__init__()
        self.compiled = compiled
        c_s, c_z = architecture["shared"]["c_s"], architecture["shared"]["c_z"]
        self.input_embedder = InputEmbedderAllAtom.from_config(architecture["input_embedder"])
        self.layer_norm_z = LayerNorm(c_z)
        self.linear_z = Linear(c_z, c_z, bias=False)
        self.template_embedder = TemplateEmbedderAllAtom.from_config(architecture["template"])
        self.msa_module_embedder = MSAModuleEmbedder.from_config(architecture["msa"]["msa_module_embedder"])
        self.msa_module = MSAModuleStack.from_config(architecture["msa"]["msa_module"])
        self.layer_norm_s = LayerNorm(c_s)
        self.linear_s = Linear(c_s, c_s, bias=False)
        self.pairformer_stack = PairFormerStack.from_config(architecture["pairformer"])
        self.precision = mx.float32

    def cast_trunk(self, precision: mx.Dtype) -> None:
        """Run the MSA module and the PairFormer in `precision` (their weights are cast now)."""
        self.precision = precision
        self.msa_module.set_dtype(precision)
        self.pairformer_stack.set_dtype(precision)

    def run_trunk(self, batch: Mapping[str, mx.array], num_cycles: int,
                  chunk_size: int | None = None,
                  msa_keys: Sequence[Sequence[mx.array]] | None = None
                  ) -> tuple[mx.array, mx.array, mx.array]:
        """(s_input, s, z) after `num_cycles` trunk cycles (recycles + 1).

        `msa_keys[b][cycle]` keys the MSA row sampling of batch item b in each cycle (default:
        MLX's global generator).
        """
        s_input, s_init, z_init = self.input_embedder(batch, chunk_size)
        token_mask = batch["token_mask"].astype(mx.float32)
        pair_mask = token_mask[..., :, None] * token_mask[..., None, :]
        low = self.precision  # of the MSA module and the PairFormer; the rest stays float32
        token_mask_low, pair_mask_low = token_mask.astype(low), pair_mask.astype(low)
        s, z = mx.zeros_like(s_init), mx.zeros_like(z_init)
        for cycle in range(num_cycles):
            z = z_init + self.linear_z(self.layer_norm_z(z))
            z = z + self.template_embedder(batch, z, pair_mask, chunk_size)
            keys = None if msa_keys is None else [task[cycle] for task in msa_keys]
            m, msa_mask = self.msa_module_embedder(batch, s_input, keys=keys)
            z = self.msa_module(m.astype(low), z.astype(low), msa_mask.astype(low), pair_mask_low,
                                chunk_size)
            s = s_init + self.linear_s(self.layer_norm_s(s))
            s, z = self.pairformer_stack(s.astype(low), z, token_mask_low, pair_mask_low, chunk_size,
                                         compiled=self.compiled)
            s, z = s.astype(mx.float32), z.astype(mx.float32)
            mx.eval(s, z)
        return s_input, s, z
