"""One GPU per inference job, when several jobs share a machine's GPUs (the local executor).

`snakemake --cores 32 --resources gpu=4` runs four inference jobs at once (each asks for the
`gpu` resource, inference.gpus); Snakemake counts GPUs but does not say which one a job gets.
Each job therefore holds the lock of one of the GPUs it can see (`foldscreen.io.hold_one_of`)
for its whole run and shows itself only that one, through CUDA_VISIBLE_DEVICES set before MLX
or PyTorch is imported (both number the visible devices from 0). A killed job's lock goes with
it. A job that sees one GPU (a Slurm job given one, or a one-GPU machine) has nothing to choose.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path

from ..io import hold_one_of


def visible_gpus(environ: MutableMapping[str, str]) -> list[str]:
    """The NVIDIA GPUs the process may use: CUDA_VISIBLE_DEVICES, else every /dev/nvidia<N>."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    found = [m.group(1) for name in os.listdir("/dev") if (m := re.fullmatch(r"nvidia(\d+)", name))]
    return sorted(found, key=int)


def default_folder(environ: MutableMapping[str, str]) -> Path:
    """The node's lock folder: one per Slurm allocation (whose GPUs may be numbered from 0 again)."""
    return Path(tempfile.gettempdir()) / "foldscreen-gpu-slots" / environ.get("SLURM_JOB_ID", "node")


@contextmanager
def hold_gpu(folder: Path | None = None, environ: MutableMapping[str, str] = os.environ,
             wait: Callable[[], float] = lambda: 2.0) -> Iterator[str | None]:
    """While the block runs, hold one visible GPU and make it the only one `environ` shows.

    Yields the GPU's id as CUDA_VISIBLE_DEVICES named it (None where there is no choice to make:
    no GPU, or just one). Waits while every GPU is held by another job.
    """
    gpus = visible_gpus(environ)
    if len(gpus) <= 1:
        yield None
        return
    with hold_one_of(folder or default_folder(environ), [f"gpu-{g}" for g in gpus], wait) as name:
        gpu = name.removeprefix("gpu-")
        environ["CUDA_VISIBLE_DEVICES"] = gpu
        yield gpu
