"""The inference stage without Snakemake: the CLI, task skipping, failures, determinism."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from foldscreen.contracts import load_queries
from foldscreen.inference import InferenceSettings, run_chunk
from foldscreen.inference.backend import BackendUnavailable
from foldscreen.inference.load import load_backend
from foldscreen.io import write_parquet

SHEET = "id,sequence\npep,GSWTWENGKW\nlost_msa,GSHMKELEEK\n"
FAST = ["--samples", "2", "--diffusion-steps", "3", "--recycles", "0", "--threads", "1"]


def cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "foldscreen.cli", *args],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli")
    (out / "q.csv").write_text(SHEET)
    cli("ingest", str(out / "q.csv"), "--out", str(out))
    cli("msa", "--out", str(out), "--cache", str(out / "cache"))
    lost = pd.read_parquet(out / "msa" / "all.parquet").set_index("query_id").at["lost_msa", "path"]
    Path(lost).unlink()  # the cache was cleaned between the MSA and the inference stage
    cli("predict", "--out", str(out), "--seeds", "1", "2", *FAST)
    cli("aggregate", "--out", str(out))
    return out


def test_cli_stages_make_the_tables(screen):
    samples = pd.read_parquet(screen / "samples.parquet")
    assert len(samples) == 4 and set(samples["query_id"]) == {"pep"}
    assert sorted(samples["rank"]) == [1, 2, 3, 4]
    queries = pd.read_parquet(screen / "queries.parquet").set_index("query_id")
    assert queries.loc["pep", "status"] == "predicted"
    assert queries.loc["lost_msa", "status"] == "failed"


def test_a_failing_task_is_recorded_and_the_others_go_on(screen):
    failures = pd.read_parquet(screen / "failures.parquet")
    failed = failures[failures["query_id"] == "lost_msa"]
    assert set(failed["stage"]) == {"inference"}
    assert set(failed["field"]) == {"seed 1", "seed 2"}
    assert "alignment of chain A is missing from the MSA cache" in failed["reason"].iloc[0]
    assert not (screen / "predictions" / "lost_msa" / "seed_1").exists()


def test_done_tasks_are_skipped_and_redone_when_settings_change(screen, tmp_path):
    settings = InferenceSettings(seeds=(1,), samples=2, diffusion_steps=3, recycles=0, threads=1)
    record = screen / "predictions" / "pep" / "seed_1" / "task.json"
    before = record.stat().st_mtime_ns
    tables = screen / "ingest" / "all.parquet", screen / "msa" / "all.parquet"
    run_chunk(*tables, settings, screen / "predictions", tmp_path / "s.parquet", tmp_path / "f.parquet")
    assert record.stat().st_mtime_ns == before
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == 2

    fewer = InferenceSettings(seeds=(1,), samples=1, diffusion_steps=3, recycles=0, threads=1)
    run_chunk(*tables, fewer, screen / "predictions", tmp_path / "s.parquet", tmp_path / "f.parquet")
    assert len(json.loads(record.read_text())["samples"]) == 1
    assert sorted(p.name for p in record.parent.glob("*_model.cif")) == ["pep_seed_1_sample_1_model.cif"]


def test_a_task_is_redone_when_its_alignment_changes(screen, tmp_path):
    settings = InferenceSettings(seeds=(1,), samples=2, diffusion_steps=3, recycles=0, threads=1)
    predictions = tmp_path / "predictions"
    shutil.copytree(screen / "predictions", predictions)
    record = predictions / "pep" / "seed_1" / "task.json"
    msa = pd.read_parquet(screen / "msa" / "all.parquet")
    cached = Path(msa.loc[msa["query_id"] == "pep", "path"].iloc[0])
    other = tmp_path / "another_entry" / cached.name  # e.g. the server's alignment of the chain
    other.parent.mkdir()
    shutil.copy(cached, other)
    msa.loc[msa["query_id"] == "pep", "path"] = str(other)
    write_parquet(tmp_path / "msa.parquet", msa)
    args = settings, predictions, tmp_path / "s.parquet", tmp_path / "f.parquet"

    run_chunk(screen / "ingest" / "all.parquet", screen / "msa" / "all.parquet", *args)
    before = record.stat().st_mtime_ns
    run_chunk(screen / "ingest" / "all.parquet", screen / "msa" / "all.parquet", *args)
    assert record.stat().st_mtime_ns == before  # same alignment: skipped
    run_chunk(screen / "ingest" / "all.parquet", tmp_path / "msa.parquet", *args)
    assert record.stat().st_mtime_ns != before  # another alignment: predicted again


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_same_query_and_seed_give_identical_files(screen, tmp_path, backend):
    first = tmp_path / "first"
    rerun = tmp_path / "again"
    for folder in (first, rerun):
        (folder / "ingest").mkdir(parents=True)
        (folder / "msa").mkdir()
        for table in ("config.yaml", "ingest/all.parquet", "ingest/all.failures.parquet", "msa/all.parquet"):
            (folder / table).write_bytes((screen / table).read_bytes())
        cli("predict", "--out", str(folder), "--seeds", "2", "--backend", backend, *FAST)
    first, second = (d / "predictions" / "pep" / "seed_2" for d in (first, rerun))
    names = sorted(p.name for p in first.iterdir() if p.name != "task.json")
    assert len(names) == 7  # three files per sample, and the task's token layout
    assert names == sorted(p.name for p in second.iterdir() if p.name != "task.json")
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_weights_that_cannot_load_fail_the_chunk_once_not_each_task(screen, tmp_path, backend):
    from foldscreen.model.weights import CheckpointError

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint" * 100)
    settings = InferenceSettings(backend=backend, weights=str(corrupt), seeds=(1, 2), threads=1)
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        run_chunk(screen / "ingest" / "all.parquet", screen / "msa" / "all.parquet", settings,
                  tmp_path / "predictions", tmp_path / "s.parquet", tmp_path / "f.parquet")
    assert not (tmp_path / "f.parquet").exists()  # no failure row per task: the job fails


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_missing_weights_file_is_a_clear_error(tmp_path, backend):
    from foldscreen.inference.model_config import model_config

    settings = InferenceSettings(backend=backend, weights=str(tmp_path / "nope.pt"))
    with pytest.raises(BackendUnavailable, match="does not exist"):
        load_backend(settings, model_config(settings))


def test_torch_backend_loads_checkpoints_through_the_shared_reader(tmp_path):
    """Built without OpenFold3's random initial weights, it holds exactly the checkpoint's."""
    import torch
    from openfold3.projects.of3_all_atom.model import OpenFold3

    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.torch_backend import TorchBackend

    config = model_config(InferenceSettings())  # the demo's small architecture
    settings = InferenceSettings(backend="torch", weights=str(tmp_path / "ema.pt"), threads=1)
    saved = OpenFold3(config).state_dict()
    torch.save({"ema": {"params": saved}}, tmp_path / "ema.pt")
    loaded = TorchBackend(settings, config).model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())


def test_openfold3_featurisation_reads_the_cached_alignment(tmp_path):
    from foldscreen.contracts import Chain
    from foldscreen.inference.featurise import featurise, query_set
    from foldscreen.msa import build_msas

    example = Path(__file__).parents[1] / "config" / "examples" / "msas" / "ubiquitin_N40.a3m"
    chain = Chain("protein", ("A",), sequence="MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQ",
                  msa_path=str(example))
    table = build_msas([("ubq", (chain,))], "precomputed", tmp_path / "cache")
    batch = featurise(query_set("ubq", (chain,), {"A": table["path"][0]}), "ubq", 1, tmp_path)
    assert batch["msa"].shape[-3] == 4  # the query and its three homologues
    assert batch["has_deletion"][0, 3].nonzero().flatten().tolist() == [18]  # 'psd' inserted


def cif_coordinates(text: str) -> np.ndarray:
    """The x, y, z columns of an mmCIF's atom_site rows."""
    rows = [line.split() for line in text.splitlines() if line.startswith(("ATOM", "HETATM"))]
    header = [line.split(".")[1].strip() for line in text.splitlines() if line.startswith("_atom_site.")]
    columns = [header.index(name) for name in ("Cartn_x", "Cartn_y", "Cartn_z")]
    return np.array([[float(row[c]) for c in columns] for row in rows])


def test_featurising_ahead_and_batching_give_the_same_predictions(screen, tmp_path):
    """Featurised in a worker, or written in a process: the same files. Both seeds in one
    forward pass (batch_tokens): the same structures and scores to float32 rounding, and each
    seed its own (128 tokens: two tasks of the smallest bucket, 64)."""
    tables = screen / "ingest" / "all.parquet", screen / "msa" / "all.parquet"
    structures, scores = {}, {}
    runs = {"alone": (0, 0, False), "worker": (1, 0, False), "writer": (0, 0, True),
            "batched": (0, 128, False)}
    for run, (workers, batch_tokens, in_process) in runs.items():
        settings = InferenceSettings(seeds=(1, 2), samples=1, diffusion_steps=3, recycles=0,
                                     threads=1, featurise_workers=workers, batch_tokens=batch_tokens,
                                     write_in_process=in_process)
        predictions = tmp_path / run
        run_chunk(*tables, settings, predictions, tmp_path / f"s_{run}.parquet",
                  tmp_path / f"f_{run}.parquet")
        samples = pd.read_parquet(tmp_path / f"s_{run}.parquet")
        assert sorted(samples["seed"]) == [1, 2]
        assert set(pd.read_parquet(tmp_path / f"f_{run}.parquet")["query_id"]) == {"lost_msa"}
        folders = {seed: predictions / "pep" / f"seed_{seed}" for seed in (1, 2)}
        structures[run] = {seed: (f / f"pep_seed_{seed}_sample_1_model.cif").read_text()
                           for seed, f in folders.items()}
        scores[run] = samples.sort_values("seed")[["ptm", "avg_plddt", "sample_ranking_score"]].to_numpy()
        batched = {json.loads((f / "task.json").read_text())["batched_with"] for f in folders.values()}
        assert batched == ({2} if batch_tokens else {1})
    assert structures["alone"] == structures["worker"] == structures["writer"]
    assert structures["alone"][1] != structures["alone"][2]
    for seed in (1, 2):
        alone, batched = (cif_coordinates(structures[run][seed]) for run in ("alone", "batched"))
        assert np.abs(alone - batched).max() <= 2e-3  # mmCIF keeps 3 decimals
    np.testing.assert_allclose(scores["batched"], scores["alone"], atol=1e-4)


def test_cuda_settings_set_mlx_s_environment_unless_the_user_has(monkeypatch, tmp_path):
    from foldscreen.inference.mlx_backend import cuda_settings

    monkeypatch.delenv("MLX_PTX_CACHE_DIR", raising=False)
    monkeypatch.delenv("MLX_USE_CUDA_GRAPHS", raising=False)
    monkeypatch.delenv("MLX_MAX_OPS_PER_BUFFER", raising=False)
    cuda_settings(InferenceSettings(kernel_cache=str(tmp_path / "kernels")))
    assert os.environ["MLX_PTX_CACHE_DIR"] == str((tmp_path / "kernels").resolve())
    assert "MLX_USE_CUDA_GRAPHS" not in os.environ  # graphs stay on by default
    assert "MLX_MAX_OPS_PER_BUFFER" not in os.environ  # and so do MLX's commit sizes
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", "/users/own")
    cuda_settings(InferenceSettings(kernel_cache="other", cuda_graphs=False))
    assert os.environ["MLX_PTX_CACHE_DIR"] == "/users/own"
    assert os.environ["MLX_USE_CUDA_GRAPHS"] == "0"
    assert os.environ["MLX_MAX_OPS_PER_BUFFER"] == "20"
    monkeypatch.setenv("MLX_MAX_OPS_PER_BUFFER", "100")
    cuda_settings(InferenceSettings(cuda_graphs=False))
    assert os.environ["MLX_MAX_OPS_PER_BUFFER"] == "100"


def test_memory_limit_sets_mlx_s_limit_and_changes_no_digest():
    """inference.memory_limit_gib is MLX's memory limit (what the host waits on before queueing
    more work), a runtime setting: the tasks' digest ignores it."""
    import mlx.core as mx

    from foldscreen.inference.mlx_backend import MlxBackend
    from foldscreen.inference.model_config import model_config

    before = mx.get_memory_limit()
    try:
        settings = InferenceSettings(memory_limit_gib=1.5, threads=1)
        MlxBackend(settings, model_config(settings))
        assert mx.get_memory_limit() == int(1.5 * 2**30)
    finally:
        mx.set_memory_limit(before)
    assert settings.digest() == InferenceSettings(threads=1).digest()


@pytest.mark.parametrize("graphs, tokens, expected", [
    ("1", 300, 320), ("1", 1000, None),  # two of 1,024 padded tokens exceed batch_tokens
    ("0", 300, 320),  # with or without CUDA graphs: run alone, large tasks ran no faster (L11)
])
def test_tasks_share_passes_only_where_batching_pays(monkeypatch, graphs, tokens, expected):
    """A task's batch size is its token bucket, or None where it runs alone: above
    batch_tokens / 2, with or without CUDA graphs (RESULTS.md, L10 and L11)."""
    from foldscreen.inference.mlx_backend import MlxBackend
    from foldscreen.inference.model_config import model_config

    monkeypatch.setenv("MLX_USE_CUDA_GRAPHS", graphs)
    settings = InferenceSettings(batch_tokens=1536, threads=1)
    backend = MlxBackend(settings, model_config(settings))
    assert backend.batch_size({"token_mask": np.ones((1, tokens))}) == expected


@pytest.mark.parametrize("device, threads, configured, expected", [
    ("mlx gpu (CUDA, NVIDIA H200)", 8, None, 7),  # all but one of the job's threads
    ("mlx gpu (Metal, Apple M3)", 1, None, 1),  # at least one
    ("torch cuda (NVIDIA H200)", 4, None, 3),
    ("mlx cpu (OpenBLAS)", 8, None, 0),  # the CPU featurises in turn, in the job's own process
    ("mlx gpu (CUDA, NVIDIA H200)", 8, 2, 2),  # as configured
])
def test_featurise_workers_follow_the_device_and_the_jobs_threads(device, threads, configured, expected):
    """Where a GPU predicts, OpenFold3's featuriser is the slower side (about 10 s per query on
    a 2-core VM against 4-5 s on an H200): the job's threads featurise ahead."""
    from foldscreen.inference.run import featurise_workers

    class OnDevice:  # only the device's name is read; no GPU here
        pass

    backend = OnDevice()
    backend.device = device
    settings = InferenceSettings(threads=threads, featurise_workers=configured)
    assert featurise_workers(settings, backend) == expected


@pytest.mark.parametrize("device, configured, expected", [
    ("mlx gpu (CUDA, NVIDIA H200)", None, True), ("torch cuda (NVIDIA H200)", None, True),
    ("mlx cpu (OpenBLAS)", None, False), ("mlx gpu (CUDA, NVIDIA H200)", False, False),
    ("mlx cpu (OpenBLAS)", True, True),
])
def test_files_are_written_in_a_process_where_a_gpu_predicts(device, configured, expected):
    from foldscreen.inference.run import write_in_process

    class OnDevice:  # only the device's name is read; no GPU here
        pass

    backend = OnDevice()
    backend.device = device
    assert write_in_process(InferenceSettings(write_in_process=configured), backend) == expected


class Fatal(str):
    """A query id that kills the process that unpickles it (as a crash in the writer would)."""

    def __reduce__(self):
        return os._exit, (1,)


def test_a_writing_process_that_dies_fails_its_task_and_the_next_are_written(screen, tmp_path):
    """The writer process dies on the second task: that task fails, its folder never appears,
    and the third is written by a new process."""
    from foldscreen.inference import tasks
    from foldscreen.inference.model_config import model_config
    from foldscreen.inference.prefetch import FeaturiseJob, featurise_job
    from foldscreen.inference.run import Task, predict_tasks

    settings = InferenceSettings(samples=1, diffusion_steps=3, recycles=0, threads=1, batch_tokens=0,
                                 write_in_process=True)
    backend = load_backend(settings, model_config(settings))
    msa = pd.read_parquet(screen / "msa" / "all.parquet").set_index("query_id")
    chains = dict(load_queries(screen / "ingest" / "all.parquet"))["pep"]
    first = tasks.task_dir(tmp_path, "pep", 1)

    def featurised():
        for seed, query_id in ((1, "pep"), (2, Fatal("pep")), (3, "pep")):
            folder = tasks.task_dir(tmp_path, query_id, seed)
            staging = tasks.staging_dir(folder)
            job = FeaturiseJob("pep", chains, {"A": msa.at["pep", "path"]}, {}, seed, staging)
            if seed == 3:  # once the first is written, the process takes the second and dies
                while not (first / "task.json").exists():
                    time.sleep(0.1)
                time.sleep(2)
            yield Task(query_id, seed, folder, "digest", staging), lambda job=job: featurise_job(job)

    outcomes = {task.seed: outcome for task, outcome in predict_tasks(backend, featurised())}
    assert outcomes[1]["seed"] == 1 and outcomes[3]["seed"] == 3
    assert "terminated abruptly" in str(outcomes[2])
    assert (tmp_path / "pep" / "seed_3" / "task.json").exists()
    assert sorted(p.name for p in (tmp_path / "pep").iterdir()) == ["seed_1", "seed_3"]  # nothing staged left


def test_a_writing_process_that_cannot_start_fails_the_job():
    """No task is failed for it: the job is (as weights that cannot load fail it)."""
    from foldscreen.inference.run import Writer, WriterUnavailable

    with Writer(True, threads=0) as writer:  # torch.set_num_threads(0) raises as the process starts
        future = writer.submit(None, None, None, None, 1)
        with pytest.raises(WriterUnavailable, match="died as it started"):
            writer.result(future)
