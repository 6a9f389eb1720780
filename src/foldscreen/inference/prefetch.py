"""The next tasks featurised in worker processes while the model runs the current one.

OpenFold3's featuriser (parsing, reference conformers with RDKit, MSA and template features)
runs on the CPU for seconds per task; on a GPU that is as long as the model itself for small
queries. With workers, up to `workers + 1` tasks are featurised ahead, in order, by processes
started with `spawn` (a fork would copy the parent's GPU state); without, each task is
featurised when its turn comes. A worker seeds every generator with the task's seed first, so a
task gets the same features either way.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contracts import Chain
from .featurise import featurise, query_set, silence_known_warnings
from .seeding import seed_everything


@dataclass(frozen=True)
class FeaturiseJob:
    """What featurising one (query, seed) task takes."""

    query_id: str
    chains: tuple[Chain, ...]
    msa_paths: dict[str, str]
    paired_paths: dict[str, str]
    seed: int
    scratch: Path


def featurise_job(job: FeaturiseJob) -> dict[str, Any]:
    """The task's feature batch (the reference conformers are drawn from the seeded generators)."""
    seed_everything(job.seed)
    return featurise(query_set(job.query_id, job.chains, job.msa_paths, job.paired_paths),
                     job.query_id, job.seed, job.scratch)


def featurised(jobs: Iterable[tuple[Any, FeaturiseJob]], workers: int
               ) -> Iterator[tuple[Any, Callable[[], dict[str, Any]]]]:
    """(tag, get) for each (tag, job) in order; `get()` returns the batch or raises its error."""
    if workers <= 0:
        for tag, job in jobs:
            yield tag, lambda job=job: featurise_job(job)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=silence_known_warnings) as pool:
        ahead: deque[tuple[Any, Future]] = deque()
        for tag, job in jobs:
            ahead.append((tag, pool.submit(featurise_job, job)))
            if len(ahead) > workers:
                done_tag, future = ahead.popleft()
                yield done_tag, future.result
        while ahead:
            done_tag, future = ahead.popleft()
            yield done_tag, future.result
