"""The diffusion module: atom positions denoised under the trunk's conditioning (AF3 Alg. 20-22)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .atom_attention import AtomAttentionEncoder, Batch, DiffusionTransformer
from .input_embedder import ENCODER_KEYS, relative_position_bins, token_positions
from .primitives import LayerNorm, Linear, chunked
from .transition import Transition

# The arguments of each part in OpenFold3's architecture.diffusion_module config (the rest of
# each section is for training).
CONDITIONING_KEYS = ("c_s_input", "c_s", "c_z", "c_fourier_emb", "max_relative_idx",
                     "max_relative_chain", "sigma_data", "seed_fourier_emb")
TRANSFORMER_KEYS = ("c_a", "c_s", "c_z", "c_hidden", "no_heads", "no_blocks", "n_transition",
                    "n_query", "n_key", "inf")
DECODER_KEYS = ("c_atom", "c_atom_pair", "c_token", "c_hidden", "no_heads", "no_blocks",
                "n_transition", "n_query", "n_key", "inf")


def one_hot(x: mx.array, n: int) -> mx.array:
    return (x[..., None] == mx.arange(n)).astype(mx.float32)


class FourierEmbedding(nn.Module):
    """Random Fourier features of the noise level (AF3 Algorithm 22).

    `w` and `b` are fixed random draws, buffers in OpenFold3's state dict: they are read from the
    checkpoint like the weights (the values drawn here only hold their place).
    """

    def __init__(self, c: int, seed: int = 42) -> None:
        super().__init__()
        key_w, key_b = mx.random.split(mx.random.key(seed))
        self.w = mx.random.normal((c,), key=key_w)
        self.b = mx.random.uniform(shape=(c,), key=key_b)

    def __call__(self, x: mx.array) -> mx.array:
        """[*, 1] -> [*, c]"""
        return mx.cos(2 * math.pi * (x * self.w + self.b))


class DiffusionConditioning(nn.Module):
    """The trunk's single and pair representations conditioned for diffusion (AF3 Algorithm 21).

    The pair part does not depend on the noise level: `pair` makes it once for a whole rollout.
    """

    def __init__(self, c_s_input: int, c_s: int, c_z: int, c_fourier_emb: int,
                 max_relative_idx: int, max_relative_chain: int, sigma_data: float,
                 seed_fourier_emb: int = 42) -> None:
        super().__init__()
        self.max_relative_idx = max_relative_idx
        self.max_relative_chain = max_relative_chain
        self.sigma_data = float(sigma_data)
        c_relpos = 2 * (2 * max_relative_idx + 2) + 1 + (2 * max_relative_chain + 2)
        self.layer_norm_z = LayerNorm(c_z + c_relpos, create_offset=False)
        self.linear_z = Linear(c_z + c_relpos, c_z, bias=False)
        self.transition_z = [Transition(c_z, 2) for _ in range(2)]
        self.layer_norm_s = LayerNorm(c_s + c_s_input, create_offset=False)
        self.linear_s = Linear(c_s + c_s_input, c_s, bias=False)
        self.fourier_emb = FourierEmbedding(c_fourier_emb, seed_fourier_emb)
        self.layer_norm_n = LayerNorm(c_fourier_emb, create_offset=False)
        self.linear_n = Linear(c_fourier_emb, c_s, bias=False)
        self.transition_s = [Transition(c_s, 2) for _ in range(2)]

    def relative_positions(self, i: mx.array, j: mx.array) -> mx.array:
        """AF3 Algorithm 3's one-hot features [*, N_i, N_j, c_relpos], in OpenFold3's order.

        i [*, N_i, 1, 7] and j [*, 1, N_j, 7] are token_positions of the rows and the columns.
        """
        residue, token, same_entity, chain = relative_position_bins(
            i, j, self.max_relative_idx, self.max_relative_chain)
        n_bins = 2 * self.max_relative_idx + 2
        return mx.concatenate([one_hot(residue, n_bins), one_hot(token, n_bins),
                               same_entity[..., None].astype(mx.float32),
                               one_hot(chain, 2 * self.max_relative_chain + 2)], axis=-1)

    def _pair_rows(self, z_i: mx.array, positions_i: mx.array, mask_i: mx.array,
                   positions_j: mx.array, mask_j: mx.array) -> mx.array:
        """Rows i of z: z_i [*, N_i, N, c_z], positions_i [*, N_i, 1, 7], mask_i [*, N_i, 1, 1]."""
        relpos = self.relative_positions(positions_i, positions_j)
        shape = mx.broadcast_shapes(z_i.shape[:-1], relpos.shape[:-1])
        z = mx.concatenate([mx.broadcast_to(z_i, shape + z_i.shape[-1:]),
                            mx.broadcast_to(relpos, shape + relpos.shape[-1:])], axis=-1)
        z = self.linear_z(self.layer_norm_z(z))
        pair_mask = mask_i[..., 0] * mask_j
        for transition in self.transition_z:
            z = z + transition(z, pair_mask)
        return z

    def pair(self, batch: Batch, z_trunk: mx.array, chunk_size: int | None = None) -> mx.array:
        """z_ij [*, N_token, N_token, c_z] from the trunk's; `chunk_size` bounds the rows made at once."""
        positions = token_positions(batch)
        mask = batch["token_mask"].astype(mx.float32)
        rows = [z_trunk, positions[..., :, None, :], mask[..., :, None, None]]
        columns = [positions[..., None, :, :], mask[..., None, :]]
        return chunked(self._pair_rows, rows, chunk_size, axis=-3, broadcast=columns)

    def single_base(self, s_input: mx.array, s_trunk: mx.array) -> mx.array:
        """The part of s_i [*, N_token, c_s] that the noise level does not change."""
        return self.linear_s(self.layer_norm_s(mx.concatenate([s_trunk, s_input], axis=-1)))

    def single(self, s: mx.array, t: mx.array, token_mask: mx.array) -> mx.array:
        """s_i [*, N_token, c_s] at noise level t [*], from `single_base`."""
        n = self.fourier_emb((0.25 * mx.log(t / self.sigma_data))[..., None])
        s = s + self.linear_n(self.layer_norm_n(n))[..., None, :]
        for transition in self.transition_s:
            s = s + transition(s, token_mask)
        return s

    def __call__(self, batch: Batch, t: mx.array, s_input: mx.array, s_trunk: mx.array,
                 z_trunk: mx.array, chunk_size: int | None = None) -> tuple[mx.array, mx.array]:
        return (self.single(self.single_base(s_input, s_trunk), t, batch["token_mask"]),
                self.pair(batch, z_trunk, chunk_size))


class AtomAttentionDecoder(nn.Module):
    """Token activations back to atoms, then to position updates (AF3 Algorithm 6)."""

    def __init__(self, c_atom: int, c_atom_pair: int, c_token: int, c_hidden: int,
                 no_heads: int, no_blocks: int, n_transition: int, n_query: int, n_key: int,
                 inf: float = 1e9) -> None:
        super().__init__()
        self.linear_q_in = Linear(c_token, c_atom, bias=False)
        self.atom_transformer = DiffusionTransformer(
            c_atom, c_atom, c_atom_pair, c_hidden, no_heads, no_blocks, n_transition,
            n_query, n_key, inf)
        self.layer_norm = LayerNorm(c_atom, create_offset=False)
        self.linear_q_out = Linear(c_atom, 3, bias=False)

    def decode(self, batch: Batch, a: mx.array, q: mx.array,
               prepared: Mapping[str, Any]) -> mx.array:
        """As the call, given the atom transformer's `prepare`d biases and conditioning (from
        c_l and p_lm) instead of c_l and p_lm."""
        atom_mask = batch["atom_mask"]
        a = self.linear_q_in(a) * batch["token_mask"][..., None]
        q = q + mx.take_along_axis(a, batch["atom_to_token_index"][..., None], axis=-2) \
            * atom_mask[..., None]
        q = self.atom_transformer.run_prepared(q, prepared, atom_mask)
        return self.linear_q_out(self.layer_norm(q))

    def __call__(self, batch: Batch, a: mx.array, q: mx.array, c: mx.array,
                 p: mx.array) -> mx.array:
        """r_l updates [*, N_atom, 3] from a_i [*, N_token, c_token] and the encoder's q_l, c_l, p_lm.

        Each atom gets its token's activation through `atom_to_token_index`; masked tokens and
        atoms get none (OpenFold3 broadcasts by `num_atoms_per_token`: the same wherever masked
        tokens and atoms are trailing padding).
        """
        return self.decode(batch, a, q, self.atom_transformer.prepare(c, p, batch["atom_mask"]))


class DiffusionModule(nn.Module):
    """Denoising of noisy atom positions, conditioned on the trunk (AF3 Algorithm 20)."""

    def __init__(self, c_s: int, c_token: int, sigma_data: float,
                 diffusion_conditioning: Mapping[str, Any], atom_attn_enc: Mapping[str, Any],
                 diffusion_transformer: Mapping[str, Any],
                 atom_attn_dec: Mapping[str, Any]) -> None:
        super().__init__()
        self.sigma_data = float(sigma_data)
        self.diffusion_conditioning = DiffusionConditioning(**diffusion_conditioning)
        self.atom_attn_enc = AtomAttentionEncoder(**atom_attn_enc, add_noisy_pos=True)
        self.layer_norm_s = LayerNorm(c_s, create_offset=False)
        self.linear_s = Linear(c_s, c_token, bias=False)
        self.diffusion_transformer = DiffusionTransformer(**diffusion_transformer)
        self.layer_norm_a = LayerNorm(c_token, create_offset=False)
        self.atom_attn_dec = AtomAttentionDecoder(**atom_attn_dec)
        self._compiled: Callable[..., mx.array] | None = None
        self.precision = mx.float32

    def cast_transformer(self, precision: mx.Dtype) -> None:
        """Run the token transformer in `precision` (its weights are cast now)."""
        self.precision = precision
        self.diffusion_transformer.set_dtype(precision)
        self._compiled = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DiffusionModule:
        """From OpenFold3's architecture.diffusion_module config (training-only keys ignored)."""
        def pick(section: str, keys: tuple[str, ...]) -> dict[str, Any]:
            return {key: cfg[section][key] for key in keys}

        main = cfg["diffusion_module"]
        return cls(main["c_s"], main["c_token"], main["sigma_data"],
                   pick("diffusion_conditioning", CONDITIONING_KEYS),
                   pick("atom_attn_enc", ENCODER_KEYS + ("c_s", "c_z")),
                   pick("diffusion_transformer", TRANSFORMER_KEYS),
                   pick("atom_attn_dec", DECODER_KEYS))

    def conditioning(self, batch: Batch, s_input: mx.array, s_trunk: mx.array, z_trunk: mx.array,
                     chunk_size: int | None = None) -> dict[str, Any]:
        """Everything denoising needs that no step changes, made once per rollout.

        The single conditioning apart from the noise-level embedding, the atom conditioning c_l,
        every attention bias of the three transformers (pair-bias projections and masks), the
        atom transformers' conditioning by c_l (adaptive norms and gates, in atom windows), the
        token transformer's linear layers of s stacked in two matrices, with the masks and the
        atom-to-token map of the batch. A tree of arrays: it can be evaluated once and passed to
        a compiled `denoise`.
        """
        atom_mask, token_mask = batch["atom_mask"], batch["token_mask"]
        z = self.diffusion_conditioning.pair(batch, z_trunk, chunk_size)
        c, p = self.atom_attn_enc.conditioning(batch, s_trunk, z, chunk_size)
        return {
            "atom_mask": atom_mask, "token_mask": token_mask,
            "atom_to_token_index": batch["atom_to_token_index"],
            "s": self.diffusion_conditioning.single_base(s_input, s_trunk), "c": c,
            "encoder": self.atom_attn_enc.atom_transformer.prepare(c, p, atom_mask),
            "tokens": [bias.astype(self.precision)
                       for bias in self.diffusion_transformer.biases(z, token_mask)],
            "token_weights": self.diffusion_transformer.weights(),
            "decoder": self.atom_attn_dec.atom_transformer.prepare(c, p, atom_mask),
        }

    def __call__(self, batch: Batch, x_noisy: mx.array, t: mx.array, s_input: mx.array,
                 s_trunk: mx.array, z_trunk: mx.array,
                 chunk_size: int | None = None) -> mx.array:
        """Denoised positions [*, N_atom, 3] of x_noisy [*, N_atom, 3] at noise level t [*].

        s_input [*, N_token, c_s_input], s_trunk [*, N_token, c_s] and z_trunk
        [*, N_token, N_token, c_z] are the trunk's outputs. Leading axes broadcast: the batch and
        the trunk's outputs have a sample axis of size 1 where x_noisy has S samples.
        `chunk_size` bounds the rows of the pair representations made at once.
        """
        return self.denoise(self.conditioning(batch, s_input, s_trunk, z_trunk, chunk_size),
                            x_noisy, t)

    def compiled_denoise(self) -> Callable[..., mx.array]:
        """`denoise` as one compiled graph, kept for the module's life (a trace per input shape).

        The parameters are inputs of the graph, not constants: loading weights needs no new trace.
        """
        if self._compiled is None:
            self._compiled = mx.compile(self.denoise, inputs=self.state)
        return self._compiled

    def denoise(self, cond: dict[str, Any], x_noisy: mx.array, t: mx.array) -> mx.array:
        """As the call, given the rollout's `conditioning`."""
        atom_mask = cond["atom_mask"][..., None]
        s = self.diffusion_conditioning.single(cond["s"], t, cond["token_mask"])
        x_noisy = x_noisy * atom_mask
        t = t[..., None, None]
        r_noisy = x_noisy / mx.sqrt(t**2 + self.sigma_data**2)
        c = cond["c"]
        q = c + self.atom_attn_enc.noisy_position_embedder.linear_r(r_noisy)
        a, q = self.atom_attn_enc.encode(cond, q, cond["encoder"])
        a = a + self.linear_s(self.layer_norm_s(s))
        low = self.precision
        transformer = self.diffusion_transformer
        weights = cond["token_weights"]
        a = transformer.run(a.astype(low), transformer.conditioning(s.astype(low), weights["conditioning"]),
                            cond["tokens"], cond["token_mask"].astype(low), weights).astype(mx.float32)
        r_update = self.atom_attn_dec.decode(cond, self.layer_norm_a(a), q, cond["decoder"])
        sigma = self.sigma_data
        x_out = (sigma**2 / (sigma**2 + t**2) * x_noisy
                 + sigma * t / mx.sqrt(sigma**2 + t**2) * r_update)
        return x_out * atom_mask
