"""OpenFold3's diffusion sampler: noise schedule, random augmentation, rollout (AF3 Alg. 18-19).

Every random number comes from a `Draws` object. `KeyedDraws(seed, steps)` draws them from MLX's
PRNG keyed by the task seed, so that a seed gives the same structures every run and whatever the
sample chunking; tests inject OpenFold3's own draws instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import mlx.core as mx
import numpy as np

from .atom_attention import Batch
from .diffusion import DiffusionModule
from .primitives import InFlight, chunked


@dataclass(frozen=True)
class StepDraws:
    """Standard normal draws of one step, in the order OpenFold3 draws them.

    quaternion [*, S, 4] (normalised: a uniform random rotation), translation [*, S, 3] and
    noise [*, S, N_atom, 3].
    """

    quaternion: mx.array
    translation: mx.array
    noise: mx.array


class Draws(Protocol):
    """The sampler's random numbers: all standard normal, for all S samples at once."""

    def initial(self, shape: tuple[int, ...]) -> mx.array:
        """The initial positions' draws [*, S, N_atom, 3] (scaled by the first noise level)."""

    def step(self, step: int, shape: tuple[int, ...]) -> StepDraws:
        """The draws of step `step` (from 0) for positions of `shape` [*, S, N_atom, 3]."""


class KeyedDraws:
    """Draws from MLX's PRNG: the seed's key split into one key per step, split per draw.

    With `n_atom`, the atoms beyond the first `n_atom` (padding) get zeros, so that a task
    draws the same numbers padded or not. `compiled` draws each step's numbers in one compiled
    graph (the same numbers; fewer kernels on a GPU).
    """

    def __init__(self, seed: int, steps: int, n_atom: int | None = None,
                 compiled: bool = False) -> None:
        self.keys = mx.random.split(mx.random.key(seed), steps + 1)
        self.n_atom = n_atom
        self.compiled = compiled
        self._compiled: tuple[tuple[int, ...], Callable[..., tuple]] | None = None

    def _atoms(self, shape: tuple[int, ...], key: mx.array) -> mx.array:
        n_atom = shape[-2] if self.n_atom is None else self.n_atom
        x = mx.random.normal((*shape[:-2], n_atom, shape[-1]), key=key)
        padding = [(0, 0)] * (x.ndim - 2) + [(0, shape[-2] - n_atom), (0, 0)]
        return x if n_atom == shape[-2] else mx.pad(x, padding)

    def initial(self, shape: tuple[int, ...]) -> mx.array:
        return self._atoms(shape, self.keys[0])

    def _step(self, key: mx.array, shape: tuple[int, ...]) -> tuple[mx.array, mx.array, mx.array]:
        rotation, translation, noise = mx.random.split(key, 3)
        samples = tuple(shape[:-2])
        return (mx.random.normal(samples + (4,), key=rotation),
                mx.random.normal(samples + (3,), key=translation), self._atoms(shape, noise))

    def step(self, step: int, shape: tuple[int, ...]) -> StepDraws:
        if not self.compiled:
            return StepDraws(*self._step(self.keys[step + 1], tuple(shape)))
        if self._compiled is None or self._compiled[0] != shape:  # one graph per rollout shape
            self._compiled = (shape, mx.compile(partial(self._step, shape=tuple(shape))))
        return StepDraws(*self._compiled[1](self.keys[step + 1]))


class StackedDraws:
    """The draws of several tasks stacked along the batch axis, each task drawing its own."""

    def __init__(self, tasks: Sequence[Draws]) -> None:
        self.tasks = tasks

    def initial(self, shape: tuple[int, ...]) -> mx.array:
        return mx.concatenate([task.initial((1, *shape[1:])) for task in self.tasks])

    def step(self, step: int, shape: tuple[int, ...]) -> StepDraws:
        draws = [task.step(step, (1, *shape[1:])) for task in self.tasks]
        if len(draws) == 1:
            return draws[0]
        return StepDraws(*(mx.concatenate([getattr(d, name) for d in draws])
                           for name in ("quaternion", "translation", "noise")))


def noise_schedule(steps: int, sigma_data: float, s_max: float, s_min: float,
                   p: float) -> mx.array:
    """The noise levels c_0 > ... > c_steps [steps + 1] of AF3's inference schedule (p. 24)."""
    t = mx.arange(steps + 1, dtype=mx.float32) / steps
    return sigma_data * (s_max ** (1 / p) + t * (s_min ** (1 / p) - s_max ** (1 / p))) ** p


def quaternion_to_rotation(q: mx.array) -> mx.array:
    """[*, 4] quaternions (real part first, any norm) -> [*, 3, 3] rotation matrices."""
    q = q / mx.linalg.norm(q, axis=-1, keepdims=True)
    a, b, c, d = (q[..., i] for i in range(4))
    rows = [
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
    ]
    return mx.stack([mx.stack(row, axis=-1) for row in rows], axis=-2)


def centre_random_augmentation(x: mx.array, atom_mask: mx.array, quaternion: mx.array,
                               translation: mx.array) -> mx.array:
    """Centre the unmasked atoms, rotate, translate, zero the masked atoms (AF3 Algorithm 19).

    x [*, N_atom, 3], atom_mask [*, N_atom], quaternion [*, 4], translation [*, 3].
    """
    mask = atom_mask[..., None]
    mean = mx.sum(x * mask, axis=-2, keepdims=True) \
        / mx.maximum(mx.sum(mask, axis=-2, keepdims=True), 1)
    rotation = quaternion_to_rotation(quaternion)
    x = (x - mean) @ mx.swapaxes(rotation, -1, -2) + translation[..., None, :]
    return x * mask


def noised(x: mx.array, atom_mask: mx.array, quaternion: mx.array, translation: mx.array,
           noise: mx.array, noise_level: mx.array) -> mx.array:
    """The augmented positions plus `noise_level` times the noise (AF3 Algorithm 18, l. 4-8)."""
    return centre_random_augmentation(x, atom_mask, quaternion, translation) + noise_level * noise


def stepped(x_noisy: mx.array, x_denoised: mx.array, t: mx.array, step: mx.array) -> mx.array:
    """The step from x_noisy towards the denoised positions (AF3 Algorithm 18, l. 9-11)."""
    return x_noisy + step * ((x_noisy - x_denoised) / t)


compiled_noised, compiled_stepped = mx.compile(noised), mx.compile(stepped)


@dataclass(frozen=True)
class SampleDiffusion:
    """The diffusion sampler (AF3 Algorithm 18) with OpenFold3's settings."""

    gamma_0: float = 0.8
    gamma_min: float = 1.0
    noise_scale: float = 1.003
    step_scale: float = 1.5

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SampleDiffusion:
        """From OpenFold3's architecture.sample_diffusion config."""
        return cls(cfg["gamma_0"], cfg["gamma_min"], cfg["noise_scale"], cfg["step_scale"])

    def __call__(self, diffusion_module: DiffusionModule, batch: Batch, s_input: mx.array,
                 s_trunk: mx.array, z_trunk: mx.array, schedule: mx.array, no_samples: int,
                 draws: Draws, chunk_size: int | None = None,
                 sample_chunk_size: int | None = None, compiled: bool = False) -> mx.array:
        """Sampled positions [*, S, N_atom, 3] for S = `no_samples`, denoised together.

        The batch and the trunk's outputs have a sample axis of size 1 ([*, 1, ...]), as in
        OpenFold3. Each step centres and randomly rotates and translates the positions, adds
        noise, and takes a step towards the denoised positions; the denoising runs in chunks of
        `sample_chunk_size` samples. What no step changes is made once, before the first step;
        `compiled` runs each denoising as one compiled MLX graph (traced at the first step).
        """
        atom_mask = batch["atom_mask"]
        shape = (*atom_mask.shape[:-2], no_samples, atom_mask.shape[-1], 3)
        cond = diffusion_module.conditioning(batch, s_input, s_trunk, z_trunk, chunk_size)
        mx.eval(cond)
        denoise = diffusion_module.compiled_denoise() if compiled else diffusion_module.denoise
        noise_step, take_step = (compiled_noised, compiled_stepped) if compiled else (noised, stepped)

        def denoise_chunk(x_noisy: mx.array, t: mx.array) -> mx.array:
            return denoise(cond, x_noisy, t)

        # The step sizes as float32 scalars computed here: no device round trip within the loop.
        levels = np.array(schedule)
        x = float(levels[0]) * draws.initial(shape)
        queue = InFlight()
        for step in range(len(levels) - 1):
            c_previous, c = levels[step], levels[step + 1]
            draw = draws.step(step, shape)
            t = c_previous * np.float32(self.gamma_0 + 1 if c > self.gamma_min else 1)
            noise = np.float32(self.noise_scale) * np.sqrt(t**2 - c_previous**2)
            x_noisy = noise_step(x, atom_mask, draw.quaternion, draw.translation, draw.noise,
                                 mx.array(noise))
            x_denoised = chunked(denoise_chunk, [x_noisy], sample_chunk_size, axis=-3,
                                 broadcast=[mx.array(t)])
            x = take_step(x_noisy, x_denoised, mx.array(t),
                          mx.array(np.float32(self.step_scale) * (c - t)))
            queue.push(x)  # the next step is built while this one runs
        mx.eval(x)
        return x


def sample_atom_positions(diffusion_module: DiffusionModule, architecture: Mapping[str, Any],
                          batch: Batch, s_input: mx.array, s_trunk: mx.array, z_trunk: mx.array,
                          seed: int, chunk_size: int | None = None,
                          sample_chunk_size: int | None = None,
                          draws: Draws | None = None, compiled: bool = False,
                          n_atom: int | None = None) -> mx.array:
    """`atom_positions_predicted` [*, S, N_atom, 3] of one task, as OpenFold3's rollout makes it.

    batch: the task's features as MLX arrays, [*, ...] (`to_mlx_batch`); s_input
    [*, N_token, c_s_input], s_trunk [*, N_token, c_s], z_trunk [*, N_token, N_token, c_z]: the
    trunk's outputs. `architecture` is OpenFold3's `config.architecture`: it gives S and the
    number of steps (shared.diffusion.no_full_rollout_samples and no_full_rollout_steps), the
    noise schedule and the sampler's settings. Random numbers come from `KeyedDraws(seed,
    steps, n_atom)` unless `draws` are given (`n_atom`: the task's own atoms, the rest being
    padding); `compiled` compiles the denoising step.
    """
    rollout = architecture["shared"]["diffusion"]
    steps, samples = rollout["no_full_rollout_steps"], rollout["no_full_rollout_samples"]
    schedule = noise_schedule(steps, **architecture["noise_schedule"])
    sampler = SampleDiffusion.from_config(architecture["sample_diffusion"])
    batch = {key: mx.expand_dims(value, 1) for key, value in batch.items() if value.ndim > 0}
    return sampler(diffusion_module, batch, mx.expand_dims(s_input, 1),
                   mx.expand_dims(s_trunk, 1), mx.expand_dims(z_trunk, 1), schedule, samples,
                   draws if draws is not None else KeyedDraws(seed, steps, n_atom), chunk_size,
                   sample_chunk_size, compiled)
