"""The inference stage of one chunk: load the model once, predict every task not yet done."""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__
from ..io import atomic_write_json, write_parquet
from ..queries.ingest import FAILURE_COLUMNS, load_queries
from ..queries.records import Chain
from ..reports.tables import JSON_COLUMNS, SAMPLE_COLUMNS, SCORE_COLUMNS, rank_samples
from . import tasks
from .backend import Backend, load_backend
from .featurise import featurise, query_set, silence_known_warnings
from .model_config import model_config
from .outputs import sample_summaries, write_outputs
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
    in the failures table and the chunk goes on.
    """
    digest = settings.digest()
    msas = _MsaTable(pd.read_parquet(msa_table))
    backend = _LazyBackend(settings)
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for query_id, chains in load_queries(queries_table):
        if query_id in msas.failed:
            continue  # the MSA stage has recorded why
        main, paired = msas.paths.get(query_id, {}), msas.paired.get(query_id, {})
        task_digest = tasks.task_digest(digest, main, paired)
        for seed in settings.seeds:
            folder = tasks.task_dir(predictions, query_id, seed)
            record = tasks.completed_record(folder, task_digest)
            if record is None:
                model = backend.get()  # weights that cannot load fail the job, not each task
                try:
                    record = predict_task(model, query_id, chains, main, seed, folder, task_digest, paired)
                except Exception as err:  # one bad task never stops the chunk
                    log.error("%s seed %s failed:\n%s", query_id, seed, traceback.format_exc())
                    failures.append({"query_id": query_id, "source": "", "stage": "inference",
                                     "field": f"seed {seed}", "reason": f"{type(err).__name__}: {err}"})
                    continue
            else:
                tasks.remove_stale(folder)  # a job killed just after the task's rename
                log.info("%s seed %s: already done, skipped", query_id, seed)
            rows.extend(sample_rows(record, folder))
    write_parquet(out_samples, rank_samples(pd.DataFrame(rows, columns=SAMPLE_COLUMNS)))
    write_parquet(out_failures, pd.DataFrame(failures, columns=FAILURE_COLUMNS))


def predict_task(backend: Backend, query_id: str, chains: tuple[Chain, ...], msa_paths: dict[str, str],
                 seed: int, folder: Path, digest: str,
                 paired_paths: dict[str, str] | None = None) -> dict[str, Any]:
    """Featurise, run and write one task; its folder appears only when everything is written."""
    staging = tasks.staging_dir(folder)
    try:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        seed_everything(seed)  # reference conformers are drawn at random
        batch = featurise(query_set(query_id, chains, msa_paths, paired_paths), query_id, seed, staging)
        timings["featurise_s"] = time.perf_counter() - started
        seed_everything(seed)
        started = time.perf_counter()
        batch, outputs = backend.forward(batch)
        timings["model_s"] = time.perf_counter() - started
        started = time.perf_counter()
        write_outputs(batch, outputs, backend.config, staging)
        timings["write_s"] = time.perf_counter() - started
        written = staging / query_id / f"seed_{seed}"
        record = {
            "query_id": query_id, "seed": seed, "task_digest": digest,
            "settings": asdict(backend.settings), "demo_weights": backend.settings.demo,
            "backend": backend.name, "device": backend.device, "foldscreen": __version__,
            "n_tokens": int(batch["token_mask"].shape[-1]),
            "n_atoms": int(outputs["atom_positions_predicted"].shape[-2]),
            "timings": timings, "task_seconds": sum(timings.values()),
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
               "rank": 0, "n_tokens": record["n_tokens"], "n_atoms": record["n_atoms"],
               "task_seconds": record["task_seconds"], "backend": record["backend"],
               "device": record["device"], "weights": record["settings"]["weights"],
               "demo_weights": record["demo_weights"],
               "model_path": str(folder / sample["model"]),
               "confidences_path": str(folder / sample["confidences"]),
               "aggregated_path": str(folder / sample["aggregated"])}
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
