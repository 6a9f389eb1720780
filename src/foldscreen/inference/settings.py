"""Inference settings, from the `inference:` section of the config."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..contracts import DEMO_WEIGHTS as DEMO


@dataclass(frozen=True)
class InferenceSettings:
    backend: str = "mlx"
    weights: str = DEMO
    seeds: tuple[int, ...] = (42,)
    samples: int = 5
    diffusion_steps: int | None = None
    recycles: int | None = None
    model_chunk_size: int | None = None
    precision: str = "float32"
    featurise_workers: int | None = None
    write_in_process: bool | None = None
    batch_tokens: int | None = None
    kernel_cache: str | None = None
    cuda_graphs: bool = True
    memory_limit_gib: float | None = None
    threads: int = 2
    device: str = "cpu"

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> InferenceSettings:
        known = {k: v for k, v in section.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "seeds": tuple(known.get("seeds", (42,)))})

    @property
    def demo(self) -> bool:
        return self.weights == DEMO

    def digest(self) -> str:
        """What a task's files depend on (not seeds, threads, device or chunking); kept with each task."""
        fields = asdict(self)
        for name in ("seeds", "threads", "device", "model_chunk_size", "featurise_workers",
                     "write_in_process", "batch_tokens", "kernel_cache", "cuda_graphs", "memory_limit_gib"):
            fields.pop(name)
        if not self.demo:
            stat = Path(self.weights).stat()
            fields["weights"] = [str(Path(self.weights).resolve()), stat.st_size, stat.st_mtime_ns]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
