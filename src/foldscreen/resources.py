"""What an inference job needs: memory and runtime estimated from its chunk's sizes.

A model of the figures measured in `benchmarks/RESULTS.md` (OpenFold3's full-size network,
float32, 3 recycles, 200 steps, 5 samples; MLX compiled on one H200, and on the 2-core CPU VM).
Tasks of a job run one after another, so its memory is that of its largest task and its time
the sum of its tasks'. Estimates err high: Slurm kills a job that outgrows its request, and the
workflow then asks again with `attempt` times as much. Standard library only (imported at every
Snakemake start).
"""

from __future__ import annotations

import math

# Device memory of one task: a base plus a share per token squared (the pair representation and
# what grows with it). MLX at 384 tokens, 1 sample: 8.2 GiB; 1,000 tokens whole: 54.4 GiB, with
# inference.model_chunk_size 128: 8.2 GiB.
BASE_GIB = 1.5
GIB_PER_TOKEN2 = 5.5e-5
GIB_PER_TOKEN2_CHUNKED = 7e-6
# Time of one task on a GPU: 6.7 s at 100 tokens, 9.6 s at 384 (MLX, 5 samples); OpenFold3 60 s
# at 1,000. A CPU is slower by about 60x (MLX: 383-604 s at 100 residues, 1 sample, 2 cores).
TASK_S = 10.0
TASK_S_PER_TOKEN2 = 5e-5
CPU_SLOWDOWN = 60
# The figures are at 1 sample for memory and at 5 samples, 200 diffusion steps for time. Samples
# add memory (MLX at 384 tokens: 8.22 GiB for 1 sample, 8.46 GiB for 5: 4e-7 GiB per token squared
# and sample). Diffusion is about two thirds of a task's time (6.3 of 9.6 s at 384 tokens) and
# grows with the steps and, where it is bound by arithmetic rather than kernel launches, the
# samples: scaled by both, never below the figures' 5 samples (on a GPU 1 sample costs as much).
GIB_PER_TOKEN2_SAMPLE = 4e-7
REFERENCE_SAMPLES = 5
REFERENCE_STEPS = 200
DIFFUSION_SHARE = 2 / 3
# Each job: a process start and the checkpoint load (about 45 s), the first compiled call of its
# bucket (up to 201 s on a fresh GPU machine, while MLX builds its kernels), featurisation.
JOB_START_S = 300
# Host memory of a job: Python, OpenFold3's featuriser and the weights (2.3 GB on disk).
HOST_BASE_MB = 4000


def task_gib(n_token: int, chunked: bool) -> float:
    """Estimated peak memory (GiB) of one task of `n_token` tokens (padded size)."""
    return BASE_GIB + (GIB_PER_TOKEN2_CHUNKED if chunked else GIB_PER_TOKEN2) * n_token**2


def max_tokens_within(gpu_memory_gb: float, chunked: bool) -> int:
    """The most tokens one task may have for its estimate to fit in `gpu_memory_gb`."""
    per_token2 = GIB_PER_TOKEN2_CHUNKED if chunked else GIB_PER_TOKEN2
    return max(0, math.floor(math.sqrt(max(0.0, gpu_memory_gb - BASE_GIB) / per_token2)))


def job_mem_mb(n_token: int, gpu: bool, chunked: bool, attempt: int, samples: int = 1) -> int:
    """Host memory of a job whose largest task has `n_token` tokens; on a CPU the model's too."""
    model_gib = task_gib(n_token, chunked) + (max(samples, 1) - 1) * GIB_PER_TOKEN2_SAMPLE * n_token**2
    return math.ceil(HOST_BASE_MB + (0 if gpu else model_gib * 1024)) * attempt


def job_runtime_min(n_tasks: int, tokens_squared: int, gpu: bool, attempt: int,
                    samples: int = REFERENCE_SAMPLES, steps: int | None = REFERENCE_STEPS) -> int:
    """Minutes of a job of `n_tasks` tasks whose tokens squared sum to `tokens_squared`, each task
    making `samples` samples in `steps` diffusion steps (None: the weights' default, taken as 200)."""
    seconds = n_tasks * TASK_S + tokens_squared * TASK_S_PER_TOKEN2
    seconds *= diffusion_scale(samples, steps) * (1 if gpu else CPU_SLOWDOWN)
    return math.ceil((JOB_START_S + seconds) / 60) * attempt


def diffusion_scale(samples: int, steps: int | None) -> float:
    """A task's time against the figures' (5 samples, 200 steps): the diffusion share scaled."""
    steps = REFERENCE_STEPS if steps is None else steps
    diffusion = (steps / REFERENCE_STEPS) * max(samples, REFERENCE_SAMPLES) / REFERENCE_SAMPLES
    return 1 - DIFFUSION_SHARE + DIFFUSION_SHARE * diffusion
