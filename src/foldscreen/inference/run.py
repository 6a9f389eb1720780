"""The inference stage of one chunk: load the model once, predict every task not yet done."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
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
from .outputs import load_writer, sample_summaries, write_outputs
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


@dataclass(frozen=True)
class Task:
    """One (query, seed) of the chunk still to predict, and where its files go."""

    query_id: str
    seed: int
    folder: Path
    digest: str
    staging: Path


@dataclass
class Ready:
    """A featurised task waiting for the model."""

    task: Task
    batch: dict[str, Any]
    timings: dict[str, float]


def run_chunk(queries_table: Path, msa_table: Path, settings: InferenceSettings,
              predictions: Path, out_samples: Path, out_failures: Path) -> None:
    """Predict every (query, seed) of the chunk; write the chunk's sample and failure tables.

    A task whose folder is complete (same settings and alignments) is skipped. A task that fails
    is recorded in the failures table and the chunk goes on. The tasks to run are featurised
    ahead, in worker processes where the model runs on a GPU (`inference.featurise_workers`);
    small tasks of one size bucket share forward passes where the backend batches
    (`inference.batch_tokens`); files are written behind the model, in a process of their own
    where it runs on a GPU (`inference.write_in_process`), else in a thread.
    """
    digest = settings.digest()
    msas = _MsaTable(pd.read_parquet(msa_table))
    backend = _LazyBackend(settings)
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    pending: list[tuple[Task, FeaturiseJob]] = []
    for query_id, chains in load_queries(queries_table):
        if query_id in msas.failed:
            continue  # the MSA stage has recorded why
        main, paired = msas.paths.get(query_id, {}), msas.paired.get(query_id, {})
        task_digest = tasks.task_digest(digest, main, paired)
        for seed in settings.seeds:
            folder = tasks.task_dir(predictions, query_id, seed)
            record = tasks.completed_record(folder, task_digest)
            rows[query_id, seed] = []  # the chunk's task order, whatever order tasks finish in
            if record is None:
                staging = tasks.staging_dir(folder)
                job = FeaturiseJob(query_id, chains, main, paired, seed, staging)
                pending.append((Task(query_id, seed, folder, task_digest, staging), job))
            else:
                tasks.remove_stale(folder)  # a job killed just after the task's rename
                log.info("%s seed %s: already done, skipped", query_id, seed)
                rows[query_id, seed] = sample_rows(record, folder)
    failures: list[dict[str, Any]] = []
    if pending:
        model = backend.get()  # weights that cannot load fail the job, not each task
        ahead = featurised(pending, featurise_workers(settings, model))
        for task, outcome in predict_tasks(model, ahead):
            if isinstance(outcome, Exception):
                del rows[task.query_id, task.seed]
                failures.append({"query_id": task.query_id, "source": "", "stage": "inference",
                                 "field": f"seed {task.seed}",
                                 "reason": f"{type(outcome).__name__}: {outcome}"})
            else:
                rows[task.query_id, task.seed] = sample_rows(outcome, task.folder)
    samples = [row for task_rows in rows.values() for row in task_rows]
    write_parquet(out_samples, pd.DataFrame(samples, columns=INFERENCE_COLUMNS))
    write_parquet(out_failures, pd.DataFrame(failures, columns=FAILURE_COLUMNS))


def featurise_workers(settings: InferenceSettings, backend: Backend) -> int:
    """Worker processes featurising ahead: as configured, else where the model runs on a GPU all
    but one of the job's threads (at least one), since OpenFold3's featuriser (1-3 s per query on
    a 2-core VM, 13 s for a process's first) costs about what the GPU takes per batched query
    (about 3 s on an H200)."""
    if settings.featurise_workers is not None:
        return settings.featurise_workers
    return max(1, settings.threads - 1) if on_gpu(backend) else 0


def write_in_process(settings: InferenceSettings, backend: Backend) -> bool:
    """Whether files are written in a process of their own: as configured, else where the model
    runs on a GPU. OpenFold3's writer is Python (scores, mmCIF, JSON) and in a thread holds the
    interpreter lock that the thread driving the GPU needs between kernels
    (benchmarks/bench_write_behind.py); a process costs one import of OpenFold3 per job."""
    if settings.write_in_process is not None:
        return settings.write_in_process
    return on_gpu(backend)


def on_gpu(backend: Backend) -> bool:
    return "gpu" in backend.device or "cuda" in backend.device


WRITES_AHEAD = 2
"""Tasks of earlier passes whose files may still be being written while the model runs the next
pass (besides those of the pass just run)."""


def predict_tasks(backend: Backend, featurised_tasks: Iterable[tuple[Task, Callable[[], dict[str, Any]]]]
                  ) -> Iterator[tuple[Task, dict[str, Any] | Exception]]:
    """(task, its record or the error that failed it) for every (task, get its features).

    Featurised tasks wait in groups of one padded size (the backend's `batch_size`); a group
    runs as one forward pass when the next task would not fit it, and every group left runs at
    the end. Files are written behind the model, in a thread or a process (`write_in_process`).
    """
    started, model_seconds, passes, count = time.perf_counter(), 0.0, 0, 0
    groups: dict[Any, list[Ready]] = {}
    writes: deque[tuple[Task, Future]] = deque()
    writing = Writing(backend.config, backend.settings, backend.name, backend.device)
    with Writer(write_in_process(backend.settings, backend), backend.settings.threads) as writer:

        def run(group: list[Ready]) -> Iterator[tuple[Task, dict[str, Any] | Exception]]:
            nonlocal model_seconds, passes
            before = time.perf_counter()
            results = forward_group(backend, group)
            seconds = time.perf_counter() - before
            for done, result in results:
                if isinstance(result, Exception):
                    _discard(done.task)
                    yield done.task, result
                    continue
                done.timings["model_s"] = seconds / len(group)
                writes.append((done.task, writer.submit(writing, done, *result, len(group))))
            model_seconds += seconds
            passes += 1
            while len(writes) > len(group) + WRITES_AHEAD:  # this pass's files go on behind the next
                yield _written(writer, *writes.popleft())

        for task, get_batch in featurised_tasks:
            count += 1
            ready = _featurise(task, get_batch)
            if isinstance(ready, Exception):
                _discard(task)
                yield task, ready
                continue
            size = backend.batch_size(ready.batch)
            if size is None:
                yield from run([ready])
                continue
            group = groups.setdefault(size, [])
            if group and size * (len(group) + 1) > backend.batch_tokens:
                yield from run(groups.pop(size))
                groups[size] = [ready]
            else:
                group.append(ready)
        for group in list(groups.values()):
            yield from run(group)
        while writes:
            yield _written(writer, *writes.popleft())
    wall = time.perf_counter() - started
    log.info("%d tasks in %d forward passes, %.1f s; the model ran %.0f%% of it (features made "
             "ahead, files written behind it)", count, passes, wall,
             100 * model_seconds / max(wall, 1e-9))


def _featurise(task: Task, get_batch: Callable[[], dict[str, Any]]) -> Ready | Exception:
    started = time.perf_counter()
    try:
        batch = get_batch()
    except Exception as err:  # one bad task never stops the chunk
        log.error("%s seed %s failed:\n%s", task.query_id, task.seed, traceback.format_exc())
        return err
    return Ready(task, batch, {"featurise_s": time.perf_counter() - started})


def forward_group(backend: Backend, group: list[Ready]
                  ) -> list[tuple[Ready, tuple[dict[str, Any], dict[str, Any]] | Exception]]:
    """Each task's (batch, outputs), from one forward pass; a failed pass reruns its tasks alone,
    so that only the task at fault fails."""
    if len(group) > 1:
        try:
            return list(zip(group, backend.forward_many([ready.batch for ready in group]), strict=True))
        except Exception:
            log.warning("a batched forward pass of %d tasks failed; running them one by one", len(group),
                        exc_info=True)
            return [pair for ready in group for pair in forward_group(backend, [ready])]
    ready = group[0]
    try:
        seed_everything(ready.task.seed)
        return [(ready, backend.forward(ready.batch))]
    except Exception as err:  # one bad task never stops the chunk
        log.error("%s seed %s failed:\n%s", ready.task.query_id, ready.task.seed, traceback.format_exc())
        return [(ready, err)]


def _written(writer: Writer, task: Task, future: Future) -> tuple[Task, dict[str, Any] | Exception]:
    try:
        record = writer.result(future)
    except WriterUnavailable:
        raise
    except Exception as err:  # one bad task never stops the chunk
        log.error("%s seed %s failed:\n%s", task.query_id, task.seed, traceback.format_exc())
        _discard(task)
        return task, err
    log.info("%s seed %s: %d samples in %.1f s", task.query_id, task.seed, len(record["samples"]),
             record["task_seconds"])
    return task, record


def _discard(task: Task) -> None:
    shutil.rmtree(task.staging, ignore_errors=True)


@dataclass(frozen=True)
class Writing:
    """What writing a task's files takes from the backend (it travels to a writing process)."""

    config: Any
    settings: InferenceSettings
    backend: str
    device: str


class WriterUnavailable(RuntimeError):
    """The writing process cannot start: the job fails, not each of its tasks."""


class Writer:
    """Writes tasks' files behind the model: in a thread, or in a spawned process (its own
    interpreter lock). A process that dies fails the tasks it held (their folders never
    appear, so a rerun redoes them) and a new one writes the next; one that dies as it starts
    fails the job."""

    def __init__(self, in_process: bool, threads: int) -> None:
        self.in_process, self.threads = in_process, threads
        self.pool = self._start()

    def _start(self) -> Executor:
        if not self.in_process:
            return ThreadPoolExecutor(1)
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_writing, initargs=(self.threads,))
        # starts the process now, so that it imports OpenFold3 during the first pass
        self.started = pool.submit(os.getpid)
        return pool

    def result(self, future: Future) -> dict[str, Any]:
        """A write's record; raises its error, or WriterUnavailable if no process could start."""
        try:
            return future.result()
        except BrokenProcessPool:
            if self.started.exception() is not None:
                raise WriterUnavailable(
                    "the process that writes the tasks' files died as it started (its error is "
                    "in the log above); inference.write_in_process: false writes them in a "
                    "thread instead") from None
            raise

    def submit(self, *args: Any) -> Future:
        try:
            return self.pool.submit(write_task, *args)
        except BrokenProcessPool:  # the process died: those it was writing have failed
            self.pool.shutdown(wait=False)
            self.pool = self._start()
            return self.pool.submit(write_task, *args)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)


def _start_writing(threads: int) -> None:
    """A writing process's start: OpenFold3's writer imported (10-16 s on an H200 machine, which
    its first task would otherwise wait for, and the model with it: L15)."""
    import torch

    torch.set_num_threads(threads)
    load_writer()
    silence_known_warnings()  # OpenFold3's imports reset the warning filters


def write_task(writing: Writing, ready: Ready, batch: dict[str, Any], outputs: dict[str, Any],
               batched: int) -> dict[str, Any]:
    """Write one task's files in its staging folder, which then becomes the task's folder.

    `batched`: how many tasks shared its forward pass (its `model_s` is its share of it).
    """
    task, timings = ready.task, ready.timings
    try:
        started = time.perf_counter()
        write_outputs(batch, outputs, writing.config, task.staging)
        timings["write_s"] = time.perf_counter() - started
        written = task.staging / task.query_id / f"seed_{task.seed}"
        write_layout(written / TOKENS_FILE, token_layout(batch))
        settings = writing.settings
        record = {
            "query_id": task.query_id, "seed": task.seed, "task_digest": task.digest,
            "settings": asdict(settings), "demo_weights": settings.demo,
            "backend": writing.backend, "device": writing.device, "foldscreen": __version__,
            "n_tokens": int(batch["token_mask"].shape[-1]),
            "n_atoms": int(outputs["atom_positions_predicted"].shape[-2]),
            "timings": timings, "task_seconds": sum(timings.values()), "batched_with": batched,
            "tokens": TOKENS_FILE, "samples": sample_summaries(written, task.query_id, task.seed),
        }
        atomic_write_json(written / tasks.TASK_RECORD, record)
        tasks.commit(written, task.folder)
    finally:
        _discard(task)
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
