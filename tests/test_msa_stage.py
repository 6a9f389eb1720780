"""The MSA stage against a ColabFold server on loopback: deduplication, the shared cache, the
workflow end to end, and a kill in the middle of a download."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml
from colabfold_server import serve
from conftest import run_snakemake, screen_config, snakemake_cmd

from foldscreen.contracts import Chain
from foldscreen.msa import MsaSettings, build_msas
from foldscreen.msa.formats import parse_a3m

AMINO = "ACDEFGHIKLMNPQRSTVWY"
FAST = {"poll_seconds": 0.05, "timeout_seconds": 10, "retries": 1}


def protein(sequence: str, ids=("A",)) -> Chain:
    return Chain("protein", tuple(ids), sequence=sequence)


def server_settings(cache: Path, url: str, **server) -> MsaSettings:
    return MsaSettings(mode="server", cache=cache, server={"url": url, **FAST, **server})


def screen_of_50(rng: random.Random) -> tuple[list[tuple[str, tuple[Chain, ...]]], set[tuple[str, ...]]]:
    """50 queries drawn from 12 chains (every chain used): monomers, homodimers and heterodimers."""
    pool = ["M" + "".join(rng.choice(AMINO) for _ in range(rng.randrange(20, 40))) for _ in range(12)]
    queries, heteromers = [], set()
    for index in range(50):
        first = pool[index % 12]
        kind = index % 3
        if kind == 0:
            chains = (protein(first),)
        elif kind == 1:
            chains = (protein(first, ("A", "B")),)
        else:
            second = rng.choice([s for s in pool if s != first])
            chains = (protein(first), protein(second, ("B",)))
            heteromers.add(tuple(sorted((first, second))))
        queries.append((f"q{index}", chains))
    return queries, heteromers


def entries(cache: Path, source: str = "server") -> list[Path]:
    """The complete entries of a cache folder (lock files and temporary folders excluded)."""
    return [p for p in (cache / source).glob("*/*") if p.is_dir() and not p.name.startswith(".")]


def test_50_queries_with_12_unique_chains_send_12_sequences_then_none(tmp_path):
    queries, heteromers = screen_of_50(random.Random(5))
    chunks = [queries[i:i + 13] for i in range(0, 50, 13)]  # 4 chunk jobs at once, chains overlapping
    with serve(run_seconds=0.3) as server:
        settings = server_settings(tmp_path, server.url)
        with ThreadPoolExecutor(len(chunks)) as pool:
            tables = list(pool.map(lambda chunk: build_msas(chunk, settings), chunks))
        assert server.counts["msa_sequences"] == 12  # each unique chain sent once
        assert server.counts["pair"] == len(heteromers)             # each heteromer paired once
        first = dict(server.counts)

        again = build_msas(queries, settings)
        assert dict(server.counts) == first  # the second run sends nothing

    table = pd.concat(tables, ignore_index=True)
    assert (table["status"] == "ok").all() and table["reason"].eq("").all()
    assert table["path"].nunique() == 12 and len(entries(tmp_path)) == 12
    assert len(entries(tmp_path, "server.paired")) == len(heteromers)
    assert sorted(again["path"]) == sorted(table["path"])
    dimer = table[table["query_id"] == "q2"]
    assert dimer["paired_path"].notna().all() and dimer["paired_path"].nunique() == 2
    homodimer = table[table["query_id"] == "q1"]
    assert homodimer["paired_path"].isna().all()  # homomers are not paired (as in OpenFold3)
    for path in table["path"].unique():
        rows = parse_a3m(Path(path).read_text())
        assert len(rows) > 1 and Path(path).is_relative_to(tmp_path / "server")


def test_cache_key_holds_the_server_and_its_mode(tmp_path):
    queries = [("q", (protein("MKTAYIAKQRQISFVKSHFS"),))]
    with serve() as plain, serve(prefix="/api") as prefixed:
        build_msas(queries, server_settings(tmp_path, plain.url))
        build_msas(queries, server_settings(tmp_path, plain.url))
        build_msas(queries, server_settings(tmp_path, prefixed.url))
        build_msas(queries, server_settings(tmp_path, plain.url, use_env=False))
        assert plain.counts["sequences"] == 2 and prefixed.counts["sequences"] == 1
        assert plain.modes == ["env", "all"] and prefixed.modes == ["env"]
    assert len(entries(tmp_path)) == 3


def test_a_sequence_the_server_refuses_fails_only_its_query_and_is_not_cached(tmp_path):
    good, bad = "MKTAYIAKQRQISFVKSHFS", "GSWTWENGKWTWKWWKE"
    queries = [("good", (protein(good),)), ("bad", (protein(bad),)),
               ("pair", (protein(good), protein(bad, ("B",))))]
    with serve() as server:
        server.script("ERROR", sequences=[bad])
        table = build_msas(queries, server_settings(tmp_path, server.url))
    status = dict(zip(zip(table["query_id"], table["chain_ids"]), table["status"]))
    assert status == {("good", "A"): "ok", ("bad", "A"): "failed",
                      ("pair", "A"): "ok", ("pair", "B"): "failed"}
    assert "ERROR" in table.loc[table["query_id"] == "bad", "reason"].iloc[0]
    assert server.counts["pair"] == 0  # a query that fails anyway is not paired
    assert len(entries(tmp_path)) == 1


def test_the_retry_record_counts_runs_with_failed_alignments_or_pairings(tmp_path):
    from foldscreen.msa import retry_record

    good, bad = "MKTAYIAKQRQISFVKSHFS", "GSWTWENGKWTWKWWKE"
    with serve() as server:
        server.script("ERROR", sequences=[bad])
        server.script("ERROR", endpoint="pair")
        settings = server_settings(tmp_path, server.url)
        pair = (protein(good), protein("GSHMKELEEKLRKL", ("B",)))
        record = retry_record(build_msas([("bad", (protein(bad),)), ("pair", pair)], settings), 2)
        assert record["failed_runs"] == 3
        assert [line.split(":")[0] for line in record["failed"]] == ["bad chain A", "pair chain A",
                                                                     "pair chain B"]
        server.heal()
        clean = {"failed_runs": 3, "failed": []}
        assert retry_record(build_msas([("good", (protein(good),))], settings), 3) == clean
    assert retry_record(build_msas([], settings), 1) == {"failed_runs": 1, "failed": []}  # only bad queries


def test_a_failed_pairing_leaves_the_query_unpaired_with_a_note(tmp_path):
    first, second = "MKTAYIAKQRQISFVKSHFS", "GSWTWENGKWTWKWWKE"
    with serve() as server:
        settings = server_settings(tmp_path, server.url)
        build_msas([("a", (protein(first),)), ("b", (protein(second),))], settings)
        server.script("ERROR", on="submit")  # only the pairing request is left to send
        table = build_msas([("pair", (protein(first), protein(second, ("B",))))], settings)
        assert server.counts["pair"] == 1
    assert list(table["status"]) == ["ok", "ok"] and table["paired_path"].isna().all()
    assert all(r.startswith("no paired alignment (the query is predicted without one)") and "ERROR" in r
               for r in table["reason"])
    assert entries(tmp_path, "server.paired") == []


# --- the workflow ---------------------------------------------------------------------------------

SHEET = """id,sequence,molecule_type,copies,smiles
mono,MKTAYIAKQRQISFVKSHFS,protein,1,
dimer,GSHMKELEEKLRKL:MKTAYIAKQRQISFVKSHFS,protein,1,
refused,GSWTWENGKWTWKWWKE,protein,1,
homodimer,GSHMKELEEKLRKL,protein,2,
"""
REFUSED = "GSWTWENGKWTWKWWKE"
TABLES = [f"results/test/{name}.parquet" for name in ("samples", "queries", "failures")]


def server_screen(folder: Path, url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "queries.csv").write_text(SHEET)
    config = screen_config(folder, samples=1)
    config["msa"] = {"mode": "server", "cache": str(folder / "msa_cache"), "server": {"url": url, **FAST}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.mark.slow
def test_workflow_with_the_server_predicts_with_its_alignments(tmp_path):
    from foldscreen.contracts import load_queries
    from foldscreen.inference.featurise import featurise, query_set

    with serve(prefix="/api") as server:
        server.script("ERROR", sequences=[REFUSED])
        folder = server_screen(tmp_path / "screen", server.url)
        run_snakemake(folder, *TABLES, "--cores", "2")
        assert set(server.received) == {"MKTAYIAKQRQISFVKSHFS", "GSHMKELEEKLRKL", REFUSED}
        assert server.counts["pair"] == 1  # one heteromer
        sent = server.counts["sequences"]

        out = folder / "results" / "test"
        queries = pd.read_parquet(out / "queries.parquet")
        assert dict(zip(queries["query_id"], queries["status"])) == {
            "mono": "predicted", "dimer": "predicted", "homodimer": "predicted", "refused": "failed"}
        failures = pd.read_parquet(out / "failures.parquet")
        (refused,) = failures.itertuples(index=False)
        assert (refused.query_id, refused.stage, refused.field) == ("refused", "msa", "chain A")
        assert "ERROR" in refused.reason

        msa = pd.concat([pd.read_parquet(p) for p in sorted((out / "msa").glob("*.parquet"))])
        cache = folder / "msa_cache"
        good = msa[msa["status"] == "ok"]
        assert set(good["source"]) == {"server"}
        for path in good["path"]:
            assert Path(path).is_relative_to(cache / "server") and len(parse_a3m(Path(path).read_text())) > 1
        dimer = good[good["query_id"] == "dimer"]
        assert dimer["paired_path"].notna().all()

        # What the inference stage featurised: the cached server alignments, paired rows included.
        ingested = [query for table in sorted((out / "ingest").glob("chunk_?????.parquet"))
                    for query in load_queries(table)]
        chains = dict(ingested)["dimer"]
        paths = dict(zip(dimer["chain_ids"], dimer["path"]))
        paired = dict(zip(dimer["chain_ids"], dimer["paired_path"]))
        batch = featurise(query_set("dimer", chains, paths, paired), "dimer", 7, tmp_path / "scratch")
        n_paired_rows = len(parse_a3m(Path(paired["A"]).read_text()))
        assert int(batch["num_paired_seqs"]) == n_paired_rows + 1 > 2
        assert batch["msa"].shape[-3] > n_paired_rows + 1  # unpaired rows follow the paired ones

        # A second screen over the same cache: only the refused sequence is asked for again.
        other = server_screen(tmp_path / "other", server.url)
        (other / "config.yaml").write_text((folder / "config.yaml").read_text().replace(
            str(folder / "msa_cache"), str(cache)))
        run_snakemake(other, "msa", "--cores", "2")
        assert server.received[sent:] == [REFUSED] * (server.counts["sequences"] - sent)
        assert server.counts["sequences"] > sent and server.counts["pair"] == 1


def dimer_paired(out: Path) -> pd.Series:
    msa = pd.read_parquet(out / "msa" / "chunk_00000.parquet")
    return msa.loc[msa["query_id"] == "dimer", "paired_path"]


@pytest.mark.slow
def test_a_rerun_asks_again_for_exactly_the_failed_alignments_and_predicts_their_queries(tmp_path):
    sheet = SHEET + "lone,MADEKPEPTIDEHERE,protein,1,\n"  # chunks: mono+dimer, refused+homodimer, lone
    with serve() as server:
        server.script("ERROR", sequences=[REFUSED])
        server.script("ERROR", endpoint="pair")
        folder = server_screen(tmp_path / "screen", server.url)
        (folder / "queries.csv").write_text(sheet)
        run_snakemake(folder, "--cores", "2")
        out = folder / "results" / "test"
        queries = pd.read_parquet(out / "queries.parquet")
        assert dict(zip(queries["query_id"], queries["status"]))["refused"] == "failed"
        assert dimer_paired(out).isna().all()
        lone = (out / "msa" / "chunk_00002.parquet").stat().st_mtime_ns
        sent, before = len(server.received), dict(server.counts)

        server.heal()
        run_snakemake(folder, "--cores", "2")
        asked = {key: server.counts[key] - before.get(key, 0)
                 for key in ("msa_sequences", "pair", "pair_sequences")}
        assert asked == {"msa_sequences": 1, "pair": 1, "pair_sequences": 2}  # the refused chain, the pairing
        assert sorted(server.received[sent:]) == sorted([REFUSED, "GSHMKELEEKLRKL", "MKTAYIAKQRQISFVKSHFS"])
        queries = pd.read_parquet(out / "queries.parquet")
        assert set(queries["status"]) == {"predicted"} and len(queries) == 5
        assert dimer_paired(out).notna().all()
        assert (out / "msa" / "chunk_00002.parquet").stat().st_mtime_ns == lone  # had no failure
        samples = pd.read_parquet(out / "samples.parquet")
        assert set(samples["query_id"]) == {"mono", "dimer", "refused", "homodimer", "lone"}
        assert pd.read_parquet(out / "failures.parquet").empty

        assert "Nothing to be done" in run_snakemake(folder, "-n").stdout  # no failure left
        assert len(server.received) == sent + 3


@pytest.mark.slow
def test_killing_an_msa_job_mid_download_leaves_no_entry(tmp_path):
    with serve(slow_seconds=30) as server:
        server.script("slow", on="download", times=1)
        folder = server_screen(tmp_path / "killed", server.url)
        process = subprocess.Popen(snakemake_cmd(folder, "msa", "--cores", "1"), start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while server.counts["download"] == 0:
            assert time.time() < deadline and process.poll() is None, "no download started"
            time.sleep(0.05)
        time.sleep(0.3)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        cache = folder / "msa_cache"
        assert entries(cache) == [] and not list(cache.rglob("*.a3m"))
        assert not list((folder / "results" / "test" / "msa").glob("*.parquet"))

        run_snakemake(folder, "--unlock")
        run_snakemake(folder, "msa", "--cores", "1")
        assert len(entries(cache)) == 3  # the refused sequence is not refused here
        tables = sorted((folder / "results" / "test" / "msa").glob("chunk_*.parquet"))
        # two chunks of one size bucket (every query is at most 64 tokens): mono and dimer,
        # refused and homodimer
        assert len(tables) == 2 and all((pd.read_parquet(t)["status"] == "ok").all() for t in tables)


def test_command_line_msa_stage_reads_the_config_msa_section(tmp_path):
    from foldscreen.cli import main

    (tmp_path / "q.csv").write_text(SHEET)
    out = tmp_path / "out"
    main(["ingest", str(tmp_path / "q.csv"), "--out", str(out)])
    with serve(prefix="/api") as server:
        config = {"msa": {"mode": "single_sequence", "server": {"url": "http://127.0.0.1:9", **FAST}}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        main(["msa", "--out", str(out), "--config", str(tmp_path / "config.yaml"), "--mode", "server",
              "--server-url", server.url, "--cache", str(tmp_path / "cache")])
        assert server.counts["msa_sequences"] == 3 and server.counts["pair"] == 1
    table = pd.read_parquet(out / "msa" / "all.parquet")
    assert set(table["source"]) == {"server"} and (table["status"] == "ok").all()
