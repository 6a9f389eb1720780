"""The inference stage of one chunk: load the model once, predict every task not yet done."""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__
from ..contracts import FAILURE_COLUMNS, INFERENCE_COLUMNS, JSON_COLUMNS, SCORE_COLUMNS, load_queries
from ..contracts.layout import TOKENS_FILE, write_layout
from ..io import atomic_write_json, write_parquet
from . import tasks
from .backend import Backend
from .featurise import silence_known_warnings
from .layout import token_layout
from .load import load_backend
from .model_config import model_config
from .outputs import sample_summaries, write_outputs
from .prefetch import FeaturiseJob, featurised
from .seeding import seed_everything
from .settings import InferenceSettings

log = logging.getLogger("foldscreen.inference")

DEMO_WARNING = ("weights: demo -- a tiny model with RANDOM weights; its structures and "
                "confidences are meaningless (set inference.weights to an OpenFold3 checkpoint)")


class _LazyBackend:
    """Loads the model on first use, so a chunk whose tasks are all done never loads it."""

    def __init__(self, settings: InferenceSettings) -> None:
        self.settings = settings
        self._backend: Backend | None = None

    def get(self) -> Backend:
        if self._backend is None:
            started = time.perf_counter()
            silence_known_warnings()
            self._backend = load_backend(self.settings, model_config(self.settings))
            silence_known_warnings()  # OpenFold3's imports reset the warning filters
            log.info("loaded the %s backend on %s in %.1f s", self._backend.name,
                     self._backend.device, time.perf_counter() - started)
            if self.settings.demo:
                log.warning(DEMO_WARNING)
        return self._backend


def run_chunk(queries_table: Path, msa_table: Path, settings: InferenceSettings,
              predictions: Path, out_samples: Path, out_failures: Path) -> None:
    """Predict every (query, seed) of the chunk; write the chunk's sample and failure tables.

    A task whose folder is complete (same settings and alignments) is skipped. A task that fails is recorded
    in the failures table and the chunk goes on. The tasks to run are featurised ahead, in
    worker processes where the model runs on a GPU (`inference.featurise_workers`).
    """
    digest = settings.digest()
    msas = _MsaTable(pd.read_parquet(msa_table))
    backend = _LazyBackend(settings)
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    failures: list[dict[str, Any]] = []
    pending: list[tuple[tuple[str, int, Path, str, Path], FeaturiseJob]] = []
    for query_id, chains in load_queries(queries_table):
        if query_id in msas.failed:
            continue  # the MSA stage has recorded why
        main, paired = msas.paths.get(query_id, {}), msas.paired.get(query_id, {})
        task_digest = tasks.task_digest(digest, main, paired)
        for seed in settings.seeds:
            folder = tasks.task_dir(predictions, query_id, seed)
            record = tasks.completed_record(folder, task_digest)
            rows[query_id, seed] = []
            if record is None:
                staging = tasks.staging_dir(folder)
                job = FeaturiseJob(query_id, chains, main, paired, seed, staging)
                pending.append(((query_id, seed, folder, task_digest, staging), job))
            else:
                tasks.remove_stale(folder)  # a job killed just after the task's rename
                log.info("%s seed %s: already done, skipped", query_id, seed)
                rows[query_id, seed] = sample_rows(record, folder)
    model = backend.get() if pending else None  # weights that cannot load fail the job, not each task
    workers = featurise_workers(settings, model) if model else 0
    started, model_seconds = time.perf_counter(), 0.0
    for (query_id, seed, folder, task_digest, staging), get_batch in featurised(pending, workers):
        try:
            record = predict_task(model, query_id, get_batch, seed, folder, task_digest, staging)
        except Exception as err:  # one bad task never stops the chunk
            log.error("%s seed %s failed:\n%s", query_id, seed, traceback.format_exc())
            failures.append({"query_id": query_id, "source": "", "stage": "inference",
                             "field": f"seed {seed}", "reason": f"{type(err).__name__}: {err}"})
            del rows[query_id, seed]
            continue
        rows[query_id, seed] = sample_rows(record, folder)
        model_seconds += record["timings"]["model_s"]
    if pending:
        wall = time.perf_counter() - started
        log.info("%d tasks in %.1f s; the model ran %.0f%% of it (featurised by %d worker processes)",
                 len(pending), wall, 100 * model_seconds / max(wall, 1e-9), workers)
    samples = [row for task_rows in rows.values() for row in task_rows]
    write_parquet(out_samples, pd.DataFrame(samples, columns=INFERENCE_COLUMNS))
    write_parquet(out_failures, pd.DataFrame(failures, columns=FAILURE_COLUMNS))


def featurise_workers(settings: InferenceSettings, backend: Backend) -> int:
    """Worker processes featurising ahead: as configured, else one where the model runs on a GPU."""
    if settings.featurise_workers is not None:
        return settings.featurise_workers
    device = backend.device
    return 1 if ("gpu" in device or "cuda" in device) else 0


def predict_task(backend: Backend, query_id: str, get_batch: Callable[[], dict[str, Any]],
                 seed: int, folder: Path, digest: str, staging: Path) -> dict[str, Any]:
    """Run and write one task; its folder appears only when everything is written.

    `get_batch` returns the task's features (made in `staging`, the hidden folder beside
    `folder` that becomes it); `featurise_s` is how long the job waited for them.
    """
    try:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        batch = get_batch()
        timings["featurise_s"] = time.perf_counter() - started
        seed_everything(seed)
        started = time.perf_counter()
        batch, outputs = backend.forward(batch)
        timings["model_s"] = time.perf_counter() - started
        started = time.perf_counter()
        write_outputs(batch, outputs, backend.config, staging)
        timings["write_s"] = time.perf_counter() - started
        written = staging / query_id / f"seed_{seed}"
        write_layout(written / TOKENS_FILE, token_layout(batch))
        record = {
            "query_id": query_id, "seed": seed, "task_digest": digest,
            "settings": asdict(backend.settings), "demo_weights": backend.settings.demo,
            "backend": backend.name, "device": backend.device, "foldscreen": __version__,
            "n_tokens": int(batch["token_mask"].shape[-1]),
            "n_atoms": int(outputs["atom_positions_predicted"].shape[-2]),
            "timings": timings, "task_seconds": sum(timings.values()), "tokens": TOKENS_FILE,
            "samples": sample_summaries(written, query_id, seed),
        }
        atomic_write_json(written / tasks.TASK_RECORD, record)
        tasks.commit(written, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s seed %s: %d samples in %.1f s", query_id, seed, len(record["samples"]),
             record["task_seconds"])
    return record


def sample_rows(record: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    """The samples-table rows of one finished task."""
    rows = []
    for sample in record["samples"]:
        scores = sample["scores"]
        row = {"query_id": record["query_id"], "seed": record["seed"], "sample": sample["sample"],
               "n_tokens": record["n_tokens"], "n_atoms": record["n_atoms"],
               "task_seconds": record["task_seconds"], "backend": record["backend"],
               "device": record["device"], "weights": record["settings"]["weights"],
               "demo_weights": record["demo_weights"],
               "model_path": str(folder / sample["model"]),
               "confidences_path": str(folder / sample["confidences"]),
               "aggregated_path": str(folder / sample["aggregated"]),
               "tokens_path": str(folder / record["tokens"])}
        row.update({column: float(scores[column]) for column in SCORE_COLUMNS})
        row.update({column: json.dumps(scores.get(column, {}), sort_keys=True) for column in JSON_COLUMNS})
        rows.append(row)
    return rows


class _MsaTable:
    """The chunk's MSA table: failed queries, and each chain's main and paired alignment files."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.failed = set(frame.loc[frame["status"] == "failed", "query_id"])
        self.paths: dict[str, dict[str, str]] = {}
        self.paired: dict[str, dict[str, str]] = {}
        for row in frame[frame["status"] == "ok"].itertuples(index=False):
            self.paths.setdefault(row.query_id, {})[row.chain_ids] = row.path
            if isinstance(row.paired_path, str) and row.paired_path:
                self.paired.setdefault(row.query_id, {})[row.chain_ids] = row.paired_path
