"""Sweeps: the grid of arms a `sweep:` expands into, and a sweep of two arms run end to end on
the demo weights against a ColabFold server on loopback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from colabfold_server import serve
from conftest import run_snakemake, screen_config
from snakemake.exceptions import WorkflowError

from foldscreen.config import validate_config
from foldscreen.contracts import ARM_COLUMNS, TABLES
from foldscreen.sweep import DEFAULT_ARM, SweepError, msa_modes, sweep_arms


def validated(sweep: dict | None, **inference) -> dict:
    config = {"screen": "s", "queries": ["q.csv"], "inference": inference}
    if sweep is not None:
        config["sweep"] = sweep
    return validate_config(config)


def names(sweep: dict) -> list[str]:
    return [arm.name for arm in sweep_arms(validated(sweep))]


def test_a_sweep_is_every_combination_with_readable_ids_and_the_rest_from_the_config():
    arms = sweep_arms(validated({"recycles": [3, 10], "msa_mode": ["single_sequence", "server"]}, samples=2))
    assert [arm.name for arm in arms] == ["recycles-3_msa-single_sequence", "recycles-3_msa-server",
                                          "recycles-10_msa-single_sequence", "recycles-10_msa-server"]
    assert arms[1].columns == {"arm": "recycles-3_msa-server", "samples_per_seed": 2, "recycles": 3,
                               "diffusion_steps": None, "precision": "float32", "msa_mode": "server"}
    assert list(arms[1].columns) == ARM_COLUMNS
    assert arms[1].inference == {"seeds": [42], "samples": 2, "recycles": 3, "diffusion_steps": None,
                                 "precision": "float32"}
    assert msa_modes(arms) == ["single_sequence", "server"]  # two sets of msa jobs, not four

    # the axes take a fixed order, whatever the config's; a list of seeds and a null read plainly
    grid = {"precision": ["float32", "bfloat16"], "diffusion_steps": [None, 50], "seeds": [1, [2, 3]],
            "samples": [5]}
    ids = names(grid)
    assert len(ids) == len(set(ids)) == 2 * 2 * 2 * 1
    assert ids[:2] == ["seeds-1_samples-5_steps-default_precision-float32",
                       "seeds-1_samples-5_steps-default_precision-bfloat16"]
    assert ids[-1] == "seeds-2-3_samples-5_steps-50_precision-bfloat16"
    assert all(re.fullmatch(r"[a-z0-9_-]+", name) for name in ids)  # safe file names
    assert sweep_arms(validated(grid))[-1].seeds == (2, 3)

    # a value added to an axis adds arms and keeps the ids of the others (they rerun nothing)
    assert set(ids) < set(names({**grid, "samples": [5, 1]}))

    (arm,) = sweep_arms(validated(None, recycles=4, precision="bfloat16"))  # no sweep: one arm
    assert arm.columns == {"arm": DEFAULT_ARM, "samples_per_seed": 5, "recycles": 4, "diffusion_steps": None,
                           "precision": "bfloat16", "msa_mode": "single_sequence"}


@pytest.mark.parametrize("sweep, words", [
    ({}, "sweep"),
    ({"recycles": []}, "recycles"),
    ({"recyles": [1]}, "recyles"),
    ({"precision": ["fp8"]}, "precision"),
    ({"samples": [0]}, "samples"),
    ({"seeds": [1, [1]]}, "seeds-1"),  # two values, one arm
    ({"msa_mode": ["server", "local"]}, "msa.local.databases"),
])
def test_a_sweep_that_cannot_run_is_refused_naming_the_key(sweep, words):
    with pytest.raises((WorkflowError, SweepError)) as error:
        sweep_arms(validated(sweep))
    assert words in str(error.value)


# --- end to end -------------------------------------------------------------------------------------

SHEET = """id,sequence,molecule_type,copies,smiles
mono,MKTAYIAKQRQISFVKSHFS,protein,1,
dimer,GSHMKELEEKLRKL:MKTAYIAKQRQISFVKSHFS,protein,1,
bad_letters,MKTJZQLL,protein,1,
"""
ARMS = ("recycles-0", "recycles-1")
OUT = "results/test"


def sweep_screen(folder: Path, url: str) -> dict:
    folder.mkdir(parents=True)
    (folder / "queries.csv").write_text(SHEET)
    config = screen_config(folder, samples=1, diffusion_steps=2, chunk_size=3)
    config["msa"].update(mode="server", server={"url": url, "poll_seconds": 0.05, "timeout_seconds": 10})
    config["sweep"] = {"recycles": [0, 1]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return config


def planned(dry_run: str, rule: str) -> list[str]:
    """The first output of each job of `rule` in a dry run's listing."""
    return re.findall(rf"rule {rule}:\n(?:    .*\n)*?    output: ([^,\s]+)", dry_run)


@pytest.mark.slow
def test_a_sweep_of_two_arms_aligns_once_and_every_table_holds_both_arms(tmp_path):
    folder = tmp_path / "screen"
    with serve() as server:
        config = sweep_screen(folder, server.url)
        run_snakemake(folder, *(f"{OUT}/{name}.parquet" for name in TABLES), "--cores", "2")
        # one msa job for both arms: each unique chain sent once, the heteromer paired once
        counts = {key: server.counts[key] for key in ("msa_sequences", "pair", "pair_sequences")}
        assert counts == {"msa_sequences": 2, "pair": 1, "pair_sequences": 2}
    out = folder / OUT
    assert sorted(p.relative_to(out).as_posix() for p in (out / "msa").glob("**/*.parquet")) == [
        "msa/chunk_00000.parquet"]

    settings = {"samples_per_seed": 1, "diffusion_steps": 2, "precision": "float32", "msa_mode": "server"}
    tables = {name: pd.read_parquet(out / f"{name}.parquet") for name in TABLES}
    for name, table in tables.items():
        assert sorted(table["arm"].unique()) == list(ARMS), name
        for arm, recycles in zip(ARMS, (0, 1)):
            rows = table[table["arm"] == arm]
            assert (rows["recycles"] == recycles).all(), name
            assert all((rows[column] == value).all() for column, value in settings.items()), name
    samples = tables["samples"]
    assert sorted(zip(samples["arm"], samples["query_id"], samples["rank"])) == [
        (arm, query, 1) for arm in ARMS for query in ("dimer", "mono")]
    queries = tables["queries"]
    assert list(queries["arm"]) == ["recycles-0"] * 2 + ["recycles-1"] * 2  # arm after arm
    assert set(queries["status"]) == {"predicted"}
    failures = tables["failures"]
    assert sorted(zip(failures["arm"], failures["query_id"], failures["stage"])) == [
        (arm, "bad_letters", "ingest") for arm in ARMS]
    assert sorted(tables["chain_pairs"]["arm"]) == list(ARMS)  # the dimer's one pair in each arm

    for row in samples.itertuples():  # each arm predicted with its own settings, in its own folder
        assert Path(row.model_path).parts[2:4] == ("arms", row.arm)
        task = json.loads((folder / row.model_path).with_name("task.json").read_text())
        assert task["settings"]["recycles"] == row.recycles
    for row in queries.itertuples():
        ranked = folder / row.ranked_model_path
        assert ranked == out / "arms" / row.arm / "ranked" / f"{row.query_id}_rank_1.cif"
        assert ranked.samefile(folder / row.best_model_path)

    # A third value: only the new arm's jobs, no alignment. A swept mode: one msa job set per mode.
    config["sweep"]["recycles"].append(2)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    dry = run_snakemake(folder, "-n").stdout
    assert planned(dry, "inference_chunk") == [f"{OUT}/arms/recycles-2/inference/chunk_00000.parquet"]
    assert planned(dry, "msa_chunk") == []
    config["sweep"]["msa_mode"] = ["server", "single_sequence"]
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    dry = run_snakemake(folder, "-n").stdout
    assert sorted(planned(dry, "msa_chunk")) == [f"{OUT}/msa/{mode}/chunk_00000.parquet"
                                                 for mode in ("server", "single_sequence")]
    assert len(planned(dry, "inference_chunk")) == 6
