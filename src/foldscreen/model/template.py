"""The template embedder (AF3 Algorithm 16): template features embedded with the pair
representation, a pair stack per template, and their average projected to the pair width.

The template distogram and unit vectors come precomputed in OpenFold3's batch (its data
pipeline already masks them to same-chain pairs); this module builds the pair masks from them.
Constructors take OpenFold3's config names as keywords; each `from_config` takes the matching
part of OpenFold3's `architecture.template` config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .pairformer import PairBlock, stack_args
from .primitives import LayerNorm, Linear

TEMPLATE_FEATURES = ("template_restype", "template_pseudo_beta_mask",
                     "template_backbone_frame_mask", "template_distogram",
                     "template_unit_vector")


def _pair_mask(mask: mx.array, same_chain: mx.array) -> mx.array:
    """[*, N_templ, N] token mask -> [*, N_templ, N, N, 1] pair mask within chains."""
    return (mask[..., :, None] * mask[..., None, :])[..., None] * same_chain


class TemplatePairEmbedderAllAtom(nn.Module):
    """Template pair features plus the projected pair representation (AF3 Algorithm 16,
    lines 1-5 and 8)."""

    def __init__(self, c_in: int, c_dgram: int, c_aatype: int, c_out: int) -> None:
        super().__init__()
        self.dgram_linear = Linear(c_dgram, c_out, bias=False)
        self.aatype_linear_1 = Linear(c_aatype, c_out, bias=False)
        self.aatype_linear_2 = Linear(c_aatype, c_out, bias=False)
        self.pseudo_beta_mask_linear = Linear(1, c_out, bias=False)
        self.x_linear = Linear(1, c_out, bias=False)
        self.y_linear = Linear(1, c_out, bias=False)
        self.z_linear = Linear(1, c_out, bias=False)
        self.backbone_mask_linear = Linear(1, c_out, bias=False)
        self.layer_norm_z = LayerNorm(c_in)
        self.linear_z = Linear(c_in, c_out, bias=False)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TemplatePairEmbedderAllAtom:
        """From OpenFold3's template.template_pair_embedder config."""
        return cls(**{name: cfg[name] for name in ("c_in", "c_dgram", "c_aatype", "c_out")})

    def _embed_feats(self, batch: Mapping[str, mx.array]) -> mx.array:
        """The template features, each through its own linear: [*, N_templ, N, N, C_out]."""
        asym_id = batch["asym_id"]
        same_chain = (asym_id[..., :, None] == asym_id[..., None, :])[..., None, :, :, None]
        same_chain = same_chain.astype(mx.float32)
        restype = batch["template_restype"].astype(mx.float32)
        unit_vector = batch["template_unit_vector"]
        a = self.dgram_linear(batch["template_distogram"])
        a = a + self.pseudo_beta_mask_linear(
            _pair_mask(batch["template_pseudo_beta_mask"], same_chain))
        a = a + self.aatype_linear_1(restype)[..., :, None, :]
        a = a + self.aatype_linear_2(restype)[..., None, :, :]
        a = a + self.x_linear(unit_vector[..., 0:1])
        a = a + self.y_linear(unit_vector[..., 1:2])
        a = a + self.z_linear(unit_vector[..., 2:3])
        return a + self.backbone_mask_linear(
            _pair_mask(batch["template_backbone_frame_mask"], same_chain))

    def __call__(self, batch: Mapping[str, mx.array], z: mx.array) -> mx.array:
        """batch: the template features [*, N_templ, ...] and "asym_id" [*, N];
        z: [*, N, N, C_in] -> [*, N_templ, N, N, C_out]."""
        a = self._embed_feats(batch)
        return self.linear_z(self.layer_norm_z(z))[..., None, :, :, :] + a


class TemplatePairStack(nn.Module):
    """Pair stack of each template, then a layer norm (AF3 Algorithm 16, lines 9-10)."""

    def __init__(self, c_t: int, c_hidden_tri_att: int, c_hidden_tri_mul: int, no_blocks: int,
                 no_heads: int, pair_transition_n: int, tri_mul_first: bool = True,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.blocks = [
            PairBlock(c_t, c_hidden_tri_mul, c_hidden_tri_att, no_heads, pair_transition_n,
                      inf=inf, tri_mul_first=tri_mul_first)
            for _ in range(no_blocks)]
        self.layer_norm = LayerNorm(c_t)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TemplatePairStack:
        """From OpenFold3's template.template_pair_stack config; training-only keys ignored."""
        return cls(**stack_args(cfg, ("c_t", "c_hidden_tri_att", "c_hidden_tri_mul", "no_blocks", "no_heads",
                                      "pair_transition_n", "tri_mul_first", "inf")))

    def _one(self, t: mx.array, mask: mx.array, chunk_size: int | None) -> mx.array:
        for block in self.blocks:
            t = block(t, mask, chunk_size)
        return self.layer_norm(t)

    def __call__(self, t: mx.array, mask: mx.array, chunk_size: int | None = None) -> mx.array:
        """t: [*, N_templ, N, N, C_t], mask: [*, 1 or N_templ, N, N] -> [*, N_templ, N, N, C_t].

        Each template goes through the blocks alone.
        """
        mask = mx.broadcast_to(mask, t.shape[:-1])
        return mx.stack([self._one(t[..., i, :, :, :], mask[..., i, :, :], chunk_size)
                         for i in range(t.shape[-4])], axis=-4)


class TemplateEmbedderAllAtom(nn.Module):
    """Template embedder (AF3 Algorithm 16).

    Like OpenFold3, the average is over all template slots (empty ones included) and the pair
    stack is masked with the token pair mask, not with the template masks.
    """

    def __init__(self, c_t: int, c_z: int, template_pair_embedder: TemplatePairEmbedderAllAtom,
                 template_pair_stack: TemplatePairStack) -> None:
        super().__init__()
        self.template_pair_embedder = template_pair_embedder
        self.template_pair_stack = template_pair_stack
        self.linear_t = Linear(c_t, c_z, bias=False)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TemplateEmbedderAllAtom:
        """From OpenFold3's architecture.template config."""
        return cls(cfg["c_t"], cfg["c_z"],
                   TemplatePairEmbedderAllAtom.from_config(cfg["template_pair_embedder"]),
                   TemplatePairStack.from_config(cfg["template_pair_stack"]))

    def __call__(self, batch: Mapping[str, mx.array], z: mx.array, pair_mask: mx.array,
                 chunk_size: int | None = None) -> mx.array:
        """batch: template features [*, N_templ, ...] and "asym_id" [*, N]; z: [*, N, N, C_z];
        pair_mask: [*, N, N] -> the pair update [*, N, N, C_z].

        One template at a time, so that only one [N, N, C_t] embedding is alive.
        """
        axis = batch["asym_id"].ndim - 1  # the template axis
        n_templ = batch["template_restype"].shape[axis]
        pair_mask = pair_mask[..., None, :, :]
        u = mx.zeros((*z.shape[:-1], self.linear_t.weight.shape[1]), dtype=z.dtype)
        for i in range(n_templ):
            template = {key: mx.take(batch[key], mx.array([i]), axis=axis)
                        for key in TEMPLATE_FEATURES}
            t = self.template_pair_embedder({**template, "asym_id": batch["asym_id"]}, z)
            u = u + self.template_pair_stack(t, pair_mask, chunk_size)[..., 0, :, :, :]
            mx.eval(u)
        return self.linear_t(nn.relu(u / n_templ))
