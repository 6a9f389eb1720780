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


def job_mem_mb(n_token: int, gpu: bool, chunked: bool, attempt: int) -> int:
    """Host memory of a job whose largest task has `n_token` tokens; on a CPU the model's too."""
    model_mb = 0 if gpu else task_gib(n_token, chunked) * 1024
    return math.ceil(HOST_BASE_MB + model_mb) * attempt


def job_runtime_min(n_tasks: int, tokens_squared: int, gpu: bool, attempt: int) -> int:
    """Minutes of a job of `n_tasks` tasks whose tokens squared sum to `tokens_squared`."""
    seconds = n_tasks * TASK_S + tokens_squared * TASK_S_PER_TOKEN2
    seconds *= 1 if gpu else CPU_SLOWDOWN
    return math.ceil((JOB_START_S + seconds) / 60) * attempt
