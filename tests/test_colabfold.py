"""The ColabFold server client against a loopback server speaking the real ticket protocol."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from colabfold_server import paired_blocks, serve, unpaired_block
from openfold3.core.data.io.sequence.msa import parse_a3m

from foldscreen.io import hold_slot
from foldscreen.msa.colabfold import (
    LOST_AFTER,
    MAX_REJECTIONS,
    ServerSettings,
    fetch_paired,
    fetch_unpaired,
)
from foldscreen.msa.results import NoAlignment

SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMKELEEKLRKLNLYIQWLKDGG", "MSTNPKPQRKTKRNTNRRPQDVKFPGG",
             "MADEEKLPPGWEKRMSRSSGRVYYFNHITNASQ", "MVLSPADKTNVKAAWGKVGAHAGEY", "GSWTWENGKWTWKGG",
             "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEG"]


@pytest.fixture
def colabfold_server():
    with serve() as server:
        yield server


def settings_for(server, tmp_path: Path, **options) -> ServerSettings:
    defaults = {"poll_seconds": 0.01, "slots_dir": tmp_path / "slots", "timeout_seconds": 5,
                "retries": 2, "max_wait_seconds": 30}
    return ServerSettings(url=server.url, **{**defaults, **options})


def expected(sequence: str, number: int, env: bool = True) -> str:
    text = unpaired_block(number, sequence, "uniref")
    return text + unpaired_block(number, sequence, "env") if env else text


def test_a_batch_gets_every_alignment(colabfold_server, tmp_path):
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path), SEQUENCES[:4])
    assert results == {s: expected(s, 101 + i) for i, s in enumerate(SEQUENCES[:4])}
    assert colabfold_server.counts["msa"] == 1 and colabfold_server.counts["download"] == 1
    assert colabfold_server.modes == ["env"]


def test_unique_sequences_are_batched(colabfold_server, tmp_path):
    settings = settings_for(colabfold_server, tmp_path, batch_size=3)
    results = fetch_unpaired(settings, SEQUENCES + SEQUENCES[:2])
    assert list(results) == SEQUENCES
    assert all(results[s] == expected(s, 101 + i % 3) for i, s in enumerate(SEQUENCES))
    assert colabfold_server.counts["msa"] == 3
    assert sorted(colabfold_server.received) == sorted(SEQUENCES)


@pytest.mark.parametrize(("env", "filters", "pairing", "unpaired", "paired"), [
    (True, True, "greedy", "env", "pairgreedy-env"),
    (False, True, "complete", "all", "paircomplete"),
    (True, False, "greedy", "env-nofilter", "pairgreedy-env"),
    (False, False, "complete", "nofilter", "paircomplete"),
])
def test_modes(colabfold_server, tmp_path, env, filters, pairing, unpaired, paired):
    settings = settings_for(colabfold_server, tmp_path, use_env=env, use_filter=filters, pairing=pairing)
    assert (settings.unpaired_mode, settings.paired_mode) == (unpaired, paired)
    assert unpaired in settings.database_version and paired in settings.database_version
    assert fetch_unpaired(settings, SEQUENCES[:1]) == {SEQUENCES[0]: expected(SEQUENCES[0], 101, env)}
    assert isinstance(fetch_paired(settings, [tuple(SEQUENCES[:2])])[tuple(SEQUENCES[:2])], list)
    assert colabfold_server.modes == [unpaired, paired]


def test_database_version_tells_servers_apart():
    assert ServerSettings().database_version != ServerSettings(url="http://mine:8080/api").database_version
    assert ServerSettings().database_version == ServerSettings(url="https://api.colabfold.com/").database_version


def test_ratelimit_and_unknown_are_resubmitted(colabfold_server, tmp_path):
    colabfold_server.script("RATELIMIT", times=2)
    colabfold_server.script("UNKNOWN", times=1)
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path), SEQUENCES[:2])
    assert results == {s: expected(s, 101 + i) for i, s in enumerate(SEQUENCES[:2])}
    assert colabfold_server.counts["submit"] == 4


def test_a_lost_ticket_is_resubmitted(colabfold_server, tmp_path):
    colabfold_server.script("UNKNOWN", on="status", times=LOST_AFTER)
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path), SEQUENCES[:1])
    assert results == {SEQUENCES[0]: expected(SEQUENCES[0], 101)}
    assert colabfold_server.counts["submit"] == 2


@pytest.mark.parametrize("on", ["submit", "status"])
def test_error_fails_only_the_rejected_sequence(colabfold_server, tmp_path, on):
    bad = SEQUENCES[2]
    colabfold_server.script("ERROR", on=on, sequences=[bad])
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path, batch_size=5), SEQUENCES[:5])
    assert isinstance(results[bad], NoAlignment) and "ERROR" in results[bad].reason
    good = {s: r for s, r in results.items() if s != bad}
    assert len(good) == 4 and all(isinstance(r, str) and r.startswith(">1") for r in good.values())


def test_a_server_that_rejects_everything_is_not_probed_sequence_by_sequence(colabfold_server, tmp_path):
    colabfold_server.script("ERROR")
    sequences = [f"MKV{'A' * i}" for i in range(32)]
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path, batch_size=32), sequences)
    assert all(isinstance(r, NoAlignment) for r in results.values())
    # Splitting down to single sequences would take 63 tickets; the halves left once the limit is hit
    # are each tried once more (5 levels).
    assert colabfold_server.counts["submit"] == MAX_REJECTIONS + 5


def test_maintenance_fails_its_batch_and_the_others_go_on(colabfold_server, tmp_path):
    colabfold_server.script("MAINTENANCE", sequences=[SEQUENCES[0]])
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path, batch_size=2), SEQUENCES[:4])
    assert [isinstance(results[s], NoAlignment) for s in SEQUENCES[:4]] == [True, True, False, False]
    assert "maintenance" in results[SEQUENCES[0]].reason
    assert results[SEQUENCES[2]] == expected(SEQUENCES[2], 101)


def test_server_errors_are_retried(colabfold_server, tmp_path):
    colabfold_server.script("http500", on="submit", times=2)
    colabfold_server.script("http500", on="download", times=1)
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path), SEQUENCES[:2])
    assert all(isinstance(r, str) for r in results.values())
    assert colabfold_server.counts["submit"] == 3 and colabfold_server.counts["download"] == 2


def test_persistent_server_errors_fail_after_the_retries(colabfold_server, tmp_path):
    colabfold_server.script("http500", on="status")
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path, retries=3), SEQUENCES[:2])
    assert all(isinstance(r, NoAlignment) and "HTTP 500" in r.reason for r in results.values())
    assert colabfold_server.counts["status"] == 4


def test_a_server_that_is_down_fails_after_the_retries(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ServerSettings(url=f"http://127.0.0.1:{port}", poll_seconds=0.01, retries=2,
                              slots_dir=tmp_path)
    failure = fetch_unpaired(settings, SEQUENCES[:1])[SEQUENCES[0]]
    assert "Connection refused" in failure.reason and "after 2 retries" in failure.reason


@pytest.mark.parametrize(("option", "message"), [
    ({"url": "api.colabfold.com"}, "http"), ({"pairing": "best"}, "pairing"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_settings_are_named(option, message):
    with pytest.raises(ValueError, match=message):
        ServerSettings(**option)


def test_a_slow_answer_times_out_and_is_retried(tmp_path):
    with serve(slow_seconds=1.5) as server:
        server.script("slow", on="status", times=1)
        results = fetch_unpaired(settings_for(server, tmp_path, timeout_seconds=0.5), SEQUENCES[:1])
        assert results == {SEQUENCES[0]: expected(SEQUENCES[0], 101)}
        assert server.counts["status"] >= 3  # the timed-out poll, PENDING, COMPLETE


@pytest.mark.parametrize("answer", ["truncated", "garbage"])
def test_a_broken_archive_is_refetched_then_fails(colabfold_server, tmp_path, answer):
    colabfold_server.script(answer, sequences=[SEQUENCES[0]])
    colabfold_server.script(answer, sequences=[SEQUENCES[1]], times=1)
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path, batch_size=1), SEQUENCES[:3])
    assert isinstance(results[SEQUENCES[0]], NoAlignment) and "archive" in results[SEQUENCES[0]].reason
    assert results[SEQUENCES[1]] == expected(SEQUENCES[1], 101)
    assert results[SEQUENCES[2]] == expected(SEQUENCES[2], 101)
    assert colabfold_server.counts["download"] == 3 + 2 + 1  # retries + 1, then 2, then 1


def test_a_ticket_is_given_up_after_max_wait(colabfold_server, tmp_path):
    colabfold_server.script("stuck")
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path, max_wait_seconds=0.3), SEQUENCES[:1])
    assert "gave up" in results[SEQUENCES[0]].reason


def test_bad_sequences_fail_without_a_request(colabfold_server, tmp_path):
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path), ["", "MK-TV", "MKTV*"])
    assert all(isinstance(r, NoAlignment) for r in results.values())
    assert colabfold_server.counts["submit"] == 0


def test_paired_alignments_have_one_block_per_chain_with_aligned_rows(colabfold_server, tmp_path):
    sets = [tuple(SEQUENCES[:2]), tuple(SEQUENCES[2:5]), (SEQUENCES[0], SEQUENCES[0])]
    results = fetch_paired(settings_for(colabfold_server, tmp_path), sets)
    for chain_set in sets[:2]:
        texts = results[chain_set]
        assert texts == paired_blocks(list(chain_set), "pairgreedy-env")
        assert len({text.count(">") for text in texts}) == 1
        assert [text.split("\n")[1] for text in texts] == list(chain_set)
    assert isinstance(results[sets[2]], NoAlignment)
    assert colabfold_server.counts["pair"] == 2 and colabfold_server.counts["msa"] == 0
    assert colabfold_server.counts["pair_sequences"] == 5


def test_a_paired_error_fails_that_set(colabfold_server, tmp_path):
    colabfold_server.script("ERROR", sequences=[SEQUENCES[3]])
    sets = [tuple(SEQUENCES[:2]), tuple(SEQUENCES[2:4])]
    results = fetch_paired(settings_for(colabfold_server, tmp_path), sets)
    assert isinstance(results[sets[0]], list) and isinstance(results[sets[1]], NoAlignment)


def test_a_url_path_prefix(tmp_path):
    with serve(prefix="/api") as server:
        assert server.url.endswith("/api")
        results = fetch_unpaired(settings_for(server, tmp_path), SEQUENCES[:1])
        assert results == {SEQUENCES[0]: expected(SEQUENCES[0], 101)}
        missing = ServerSettings(url=server.url.removesuffix("/api"), poll_seconds=0.01, slots_dir=tmp_path)
        failure = fetch_unpaired(missing, SEQUENCES[:1])[SEQUENCES[0]]
        assert "HTTP 404" in failure.reason  # a client error is not retried
        assert server.counts["submit"] == 1 and len(server.headers) == 4 + 1  # submit, 2 polls, download


def test_user_agent_and_no_authorization_by_default(colabfold_server, tmp_path):
    fetch_unpaired(settings_for(colabfold_server, tmp_path), SEQUENCES[:1])
    assert all(h["User-Agent"].startswith("foldscreen/") for h in colabfold_server.headers)
    assert not any("Authorization" in h for h in colabfold_server.headers)


def test_authorization_is_sent_and_never_logged(colabfold_server, tmp_path, monkeypatch, caplog):
    secret = "Bearer s3cret-t0ken-value"
    monkeypatch.setenv("FOLDSCREEN_TEST_TOKEN", secret)
    colabfold_server.script("RATELIMIT", times=1)
    colabfold_server.script("http500", on="download", times=1)
    caplog.set_level(logging.DEBUG)
    settings = settings_for(colabfold_server, tmp_path, auth_env="FOLDSCREEN_TEST_TOKEN")
    results = fetch_unpaired(settings, SEQUENCES[:1])
    assert isinstance(results[SEQUENCES[0]], str)
    assert [h["Authorization"] for h in colabfold_server.headers] == [secret] * 6
    assert "RATELIMIT" in caplog.text and "HTTP 500" in caplog.text
    assert "s3cret" not in caplog.text and "s3cret" not in repr(settings)
    monkeypatch.delenv("FOLDSCREEN_TEST_TOKEN")
    with pytest.raises(ValueError, match="FOLDSCREEN_TEST_TOKEN"):
        fetch_unpaired(settings, SEQUENCES[:1])


def test_authorization_stays_with_its_host_on_a_redirect(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLDSCREEN_TEST_TOKEN", "Bearer s3cret")
    with serve(redirect_host="localhost") as server:
        settings = settings_for(server, tmp_path, auth_env="FOLDSCREEN_TEST_TOKEN")
        assert fetch_unpaired(settings, SEQUENCES[:1]) == {SEQUENCES[0]: expected(SEQUENCES[0], 101)}
        assert [h.get("Authorization") for h in server.headers] == ["Bearer s3cret"] * 4 + [None]
        assert server.headers[-1]["Host"].startswith("localhost:")


def test_a_result_complete_at_submission_is_downloaded_at_once(tmp_path):
    with serve(complete_on_submit=True) as server:
        results = fetch_unpaired(settings_for(server, tmp_path), SEQUENCES[:2])
        assert results == {s: expected(s, 101 + i) for i, s in enumerate(SEQUENCES[:2])}
        assert (server.counts["status"], server.counts["download"]) == (0, 1)


def test_results_are_reported_as_batches_finish(colabfold_server, tmp_path):
    colabfold_server.script("ERROR", sequences=[SEQUENCES[4]])
    seen: list[tuple[str, bool]] = []
    settings = settings_for(colabfold_server, tmp_path, batch_size=2)
    results = fetch_unpaired(settings, [*SEQUENCES[:5], "M1"],
                             lambda s, r: seen.append((s, isinstance(r, str))))
    assert sorted(seen) == sorted((s, isinstance(r, str)) for s, r in results.items() if s != "M1")
    assert dict(seen)[SEQUENCES[4]] is False and dict(seen)[SEQUENCES[0]] is True
    pairs: list[tuple[str, ...]] = []
    fetch_paired(settings, [tuple(SEQUENCES[:2]), tuple(SEQUENCES[2:4])], lambda s, r: pairs.append(s))
    assert sorted(pairs) == sorted([tuple(SEQUENCES[:2]), tuple(SEQUENCES[2:4])])


def test_lowercase_sequences_are_sent_in_capitals(colabfold_server, tmp_path):
    results = fetch_unpaired(settings_for(colabfold_server, tmp_path), [SEQUENCES[0].lower()])
    assert results == {SEQUENCES[0].lower(): expected(SEQUENCES[0], 101)}


CHILD = """
import json, sys, time
from pathlib import Path
from foldscreen.msa.colabfold import ServerSettings, fetch_unpaired
url, slots, folder, limit, *sequences = sys.argv[1:]
Path(folder, "ready-" + sequences[0]).touch()
while not Path(folder, "go").exists():
    time.sleep(0.01)
settings = ServerSettings(url=url, slots_dir=Path(slots), max_concurrent=int(limit), batch_size=1,
                          poll_seconds=0.01)
print(json.dumps(all(isinstance(r, str) for r in fetch_unpaired(settings, sequences).values())))
"""


def run_processes(server, folder: Path, limit: int) -> None:
    """Four processes, two sequences each, started together against one server."""
    folder.mkdir()
    groups = [SEQUENCES[i:i + 2] for i in range(0, 8, 2)]
    groups[-1] = [SEQUENCES[6], "MKV"]
    children = [subprocess.Popen([sys.executable, "-c", CHILD, server.url, str(folder / "slots"),
                                  str(folder), str(limit), *group], stdout=subprocess.PIPE, text=True)
                for group in groups]
    deadline = time.monotonic() + 60
    while len(list(folder.glob("ready-*"))) < len(children) and time.monotonic() < deadline:
        time.sleep(0.02)
    (folder / "go").touch()
    assert [json.loads(child.communicate(timeout=60)[0]) for child in children] == [True] * 4


def test_the_concurrency_limit_holds_across_processes(tmp_path):
    with serve(run_seconds=0.3) as server:
        run_processes(server, tmp_path / "limited", 1)
        assert server.counts["msa"] == 8 and server.max_open == 1
    with serve(run_seconds=0.3) as server:  # the same run without the limit does overlap
        run_processes(server, tmp_path / "free", 4)
        assert server.max_open > 1


def test_threads_of_one_process_share_the_limit(tmp_path):
    with serve(run_seconds=0.1) as server:
        settings = settings_for(server, tmp_path, batch_size=1, max_concurrent=3)
        assert all(isinstance(r, str) for r in fetch_unpaired(settings, SEQUENCES).values())
        assert 1 < server.max_open <= 3


def test_openfold3_reads_the_alignment_with_the_query_first(colabfold_server, tmp_path):
    sequence = SEQUENCES[3]
    text = fetch_unpaired(settings_for(colabfold_server, tmp_path), [sequence])[sequence]
    path = tmp_path / "entry" / "colabfold_main.a3m"
    path.parent.mkdir()
    path.write_text(text)
    msa = parse_a3m(path.read_text())
    assert "".join(msa.msa[0]) == sequence
    assert msa.msa.shape == (text.count(">"), len(sequence))
    assert msa.deletion_matrix.sum() > 0  # the homologues' insertions are kept as deletions


def give_up_after(tries: int):
    """A slot wait function that raises TimeoutError once `tries` waits are used up."""
    left = iter(range(tries))

    def wait() -> float:
        if next(left, None) is None:
            raise TimeoutError
        return 0.01
    return wait


def test_a_killed_process_leaves_its_slot_free(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from foldscreen.io import hold_slot\n"
        "with hold_slot(Path(sys.argv[1]), 1, lambda: 0.01):\n"
        "    Path(sys.argv[1], 'held').touch(); time.sleep(60)"), str(tmp_path)])
    try:
        while not (tmp_path / "held").exists():
            assert holder.poll() is None
            time.sleep(0.02)
        with pytest.raises(TimeoutError), hold_slot(tmp_path, 1, give_up_after(5)):
            pass
        holder.kill()
        holder.wait()
        with hold_slot(tmp_path, 1, give_up_after(5)) as index:
            assert index == 0
    finally:
        holder.kill()
