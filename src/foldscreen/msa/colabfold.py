"""foldscreen's client of the ColabFold MMseqs2 server (the ticket protocol of api.colabfold.com).

A batch of sequences is sent as one FASTA (`>101`, `>102`, ...) to `/ticket/msa` (or one chain set
to `/ticket/pair`), the ticket is polled at `/ticket/<id>` until COMPLETE, and its tar.gz is read
from `/result/download/<id>`: each `.a3m` in it holds one block per query, the blocks separated by
NUL characters and headed by the query's number. Server faults are retried within bounds and then
reported per sequence as a `NoAlignment`; nothing half-read is ever returned.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import random
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from .. import __version__
from ..io import hold_slot
from .results import NoAlignment

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

UNIREF_A3M = "uniref.a3m"
ENV_A3M = "bfd.mgnify30.metaeuk30.smag30.a3m"
PAIRED_A3M = "pair.a3m"
FIRST_NUMBER = 101                   # the server's clients number the queries of a ticket from 101
PAIRINGS = {"greedy": "pairgreedy", "complete": "paircomplete"}
RESUBMIT = ("RATELIMIT", "UNKNOWN")  # answers to a submission that mean "try again later"
WAITING = ("PENDING", "RUNNING")
LOST_AFTER = 3                       # consecutive UNKNOWN polls after which a ticket is resubmitted
MAX_REJECTIONS = 8                   # ERROR answers in a row after which batches are no longer split
MAX_BACKOFF = 12.0                   # the longest wait, in units of poll_seconds
USER_AGENT = f"foldscreen/{__version__} (OpenFold3 screening workflow; python-urllib)"


@dataclass(frozen=True)
class ServerSettings:
    """Where the server is, what to ask it for, and how politely."""

    url: str = "https://api.colabfold.com"
    use_env: bool = True
    use_filter: bool = True
    pairing: str = "greedy"
    batch_size: int = 50
    max_concurrent: int = 2
    slots_dir: Path | None = None
    poll_seconds: float = 5.0
    max_wait_seconds: float = 3600
    retries: int = 5
    auth_env: str | None = None
    timeout_seconds: float = 60
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"msa server url {self.url!r} must start with http:// or https://")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"msa server pairing {self.pairing!r} must be one of {', '.join(PAIRINGS)}")
        for name in ("batch_size", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"msa server {name} must be at least 1")
        if self.retries < 0 or self.poll_seconds <= 0 or self.timeout_seconds <= 0:
            raise ValueError("msa server retries must be >= 0, poll_seconds and timeout_seconds > 0")
        if self.slots_dir is not None:
            object.__setattr__(self, "slots_dir", Path(self.slots_dir))

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def unpaired_mode(self) -> str:
        """The `mode` form field of `/ticket/msa`."""
        databases = "env" if self.use_env else ""
        if self.use_filter:
            return databases or "all"
        return f"{databases}-nofilter" if databases else "nofilter"

    @property
    def paired_mode(self) -> str:
        """The `mode` form field of `/ticket/pair`."""
        return PAIRINGS[self.pairing] + ("-env" if self.use_env else "")

    @property
    def database_version(self) -> str:
        """What goes into cache keys: the server and every setting that changes its answers."""
        return f"colabfold {self.base_url} msa={self.unpaired_mode} pair={self.paired_mode}"

    def slot_folder(self) -> Path:
        """The folder of this server's slot locks (one per server URL)."""
        root = self.slots_dir or Path(tempfile.gettempdir()) / "foldscreen-colabfold-slots"
        return root / hashlib.sha256(self.base_url.encode()).hexdigest()[:16]


class _Failed(Exception):
    """A ticket failed for every sequence in it."""


class _Rejected(_Failed):
    """The server answered ERROR: one of the ticket's sequences may be the cause."""


class _Malformed(ValueError):
    """An answer that cannot be read (bad JSON, a broken archive): retried like a fault."""


def fetch_unpaired(settings: ServerSettings, sequences: Sequence[str],
                   on_result: Callable[[str, str | NoAlignment], None] | None = None,
                   ) -> dict[str, str | NoAlignment]:
    """Unique sequences -> A3M text of each (query first, as the server gives it) or a NoAlignment.

    `on_result(sequence, result)` is called in the calling thread as each batch finishes, so that a
    caller can store results before the whole set is done."""
    client = _Client(settings)
    unique = list(dict.fromkeys(sequences))
    results: dict[str, str | NoAlignment] = {}
    todo = []
    for sequence in unique:
        problem = _sequence_problem(sequence)
        if problem:
            results[sequence] = NoAlignment(problem)
        else:
            todo.append(sequence)
    batches = [todo[i:i + settings.batch_size] for i in range(0, len(todo), settings.batch_size)]
    for _, part in _as_completed(settings, client.unpaired_batch, batches):
        results.update(part)
        for sequence, result in part.items():
            if on_result:
                on_result(sequence, result)
    return {sequence: results[sequence] for sequence in unique}


def fetch_paired(settings: ServerSettings, chain_sets: Sequence[tuple[str, ...]],
                 on_result: Callable[[tuple[str, ...], list[str] | NoAlignment], None] | None = None,
                 ) -> dict[tuple[str, ...], list[str] | NoAlignment]:
    """Heteromeric chain sets (>= 2 distinct sequences each) -> one paired A3M text per chain of the set,
    in the set's order, rows aligned across chains; or a NoAlignment. `on_result` as in fetch_unpaired."""
    client = _Client(settings)
    unique = list(dict.fromkeys(tuple(chain_set) for chain_set in chain_sets))
    results: dict[tuple[str, ...], list[str] | NoAlignment] = {}
    todo = []
    for chain_set in unique:
        problem = next(filter(None, map(_sequence_problem, chain_set)), "")
        if len(set(chain_set)) < 2 or len(set(chain_set)) != len(chain_set):
            problem = "a paired alignment needs at least two distinct sequences, each once"
        if problem:
            results[chain_set] = NoAlignment(problem)
        else:
            todo.append(chain_set)
    for chain_set, result in _as_completed(settings, client.paired_set, todo):
        results[chain_set] = result
        if on_result:
            on_result(chain_set, result)
    return {chain_set: results[chain_set] for chain_set in unique}


def _sequence_problem(sequence: str) -> str:
    if not sequence:
        return "empty sequence"
    if not (sequence.isascii() and sequence.isalpha()):
        return "the sequence has characters other than letters"
    return ""


def _as_completed(settings: ServerSettings, work: Callable[[T], R], items: list[T]) -> Iterator[tuple[T, R]]:
    """(item, work(item)) as each finishes, up to max_concurrent at once in this process (the slots
    bound it across processes)."""
    pool = ThreadPoolExecutor(max(1, min(settings.max_concurrent, len(items))))
    try:
        futures = {pool.submit(work, item): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(cancel_futures=True)


class _KeepAuthorizationHome(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never carry the Authorization header to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        moved = urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        if new is not None and moved:
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_KeepAuthorizationHome)


class _Client:
    """One screen's conversation with one server."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.rejections = 0  # ERROR answers since the last good ticket
        self.headers = {"User-Agent": settings.user_agent, "Accept": "application/json, */*"}
        if settings.auth_env:
            value = os.environ.get(settings.auth_env, "")
            if not value:
                raise ValueError(f"msa server auth_env names the environment variable {settings.auth_env},"
                                 " which is not set")
            self.headers["Authorization"] = value

    def unpaired_batch(self, batch: list[str]) -> dict[str, str | NoAlignment]:
        """Alignments of one batch; an ERROR answer is narrowed down by splitting the batch."""
        names = (UNIREF_A3M, ENV_A3M) if self.settings.use_env else (UNIREF_A3M,)
        try:
            files = self.ticket("ticket/msa", self.settings.unpaired_mode, batch, names)
        except _Rejected as err:
            self.rejections += 1
            if len(batch) == 1 or self.rejections > MAX_REJECTIONS:
                return dict.fromkeys(batch, NoAlignment(str(err)))
            log.warning("%s; splitting the batch of %d to find the sequences it rejects", err, len(batch))
            half = len(batch) // 2
            return {**self.unpaired_batch(batch[:half]), **self.unpaired_batch(batch[half:])}
        except _Failed as err:
            return dict.fromkeys(batch, NoAlignment(str(err)))
        self.rejections = 0
        results: dict[str, str | NoAlignment] = {}
        for index, sequence in enumerate(batch):
            number = FIRST_NUMBER + index
            if number not in files[UNIREF_A3M]:
                results[sequence] = NoAlignment(f"the server's {UNIREF_A3M} has no alignment for it")
                continue
            # An environmental block may be absent when nothing was found there.
            text = "".join(files[name].get(number, "") for name in names)
            results[sequence] = text if _query_row(text) == sequence.upper() else NoAlignment(
                "the server's alignment does not start with the query sequence")
        return results

    def paired_set(self, chain_set: tuple[str, ...]) -> list[str] | NoAlignment:
        """Paired alignments of one chain set: one A3M per chain, rows aligned across chains."""
        try:
            files = self.ticket("ticket/pair", self.settings.paired_mode, chain_set, (PAIRED_A3M,))
        except _Failed as err:
            return NoAlignment(str(err))
        texts = [files[PAIRED_A3M].get(FIRST_NUMBER + index, "") for index in range(len(chain_set))]
        if any(_query_row(text) != sequence.upper() for text, sequence in zip(texts, chain_set)):
            return NoAlignment(f"the server's {PAIRED_A3M} lacks a chain or does not start with its sequence")
        rows = [text.count("\n>") + 1 for text in texts]
        if len(set(rows)) != 1:
            return NoAlignment(f"the server's paired alignments have different row counts {rows}")
        return texts

    def ticket(self, endpoint: str, mode: str, sequences: Sequence[str],
               names: tuple[str, ...]) -> dict[str, dict[int, str]]:
        """Submit, wait for and download one ticket, holding a server slot throughout."""
        settings = self.settings
        with hold_slot(settings.slot_folder(), settings.max_concurrent, lambda: self.delay(0, 1.0)):
            deadline = time.monotonic() + settings.max_wait_seconds
            while True:
                ticket, status = self.submit(endpoint, mode, sequences, deadline)
                if status == "COMPLETE" or self.wait(ticket, deadline):
                    return self.request(f"result/download/{ticket}", None,
                                        lambda body: _read_archive(body, names))
                log.warning("ticket %s is unknown to the server; submitting again", ticket)

    def submit(self, endpoint: str, mode: str, sequences: Sequence[str], deadline: float) -> tuple[str, str]:
        """The id and status of a new ticket; RATELIMIT and UNKNOWN answers are resubmitted after a wait."""
        fasta = "".join(f">{FIRST_NUMBER + i}\n{sequence.upper()}\n" for i, sequence in enumerate(sequences))
        attempt = 0
        while True:
            answer = self.request(endpoint, {"q": fasta, "mode": mode}, _read_status)
            status = answer["status"]
            if status in RESUBMIT:
                self.pause(f"{endpoint} answered {status}", attempt, deadline)
                attempt += 1
            elif status == "ERROR":
                raise _Rejected(f"the server rejected the request (ERROR, mode {mode})")
            elif status == "MAINTENANCE":
                raise _Failed("the server is under maintenance (MAINTENANCE); try again later")
            elif status in (*WAITING, "COMPLETE") and answer.get("id"):
                log.info("%s: %d sequences submitted as ticket %s", endpoint, len(sequences), answer["id"])
                return str(answer["id"]), status
            else:
                raise _Failed(f"the server answered {endpoint} with {json.dumps(answer)[:200]}")

    def wait(self, ticket: str, deadline: float) -> bool:
        """Poll a ticket until COMPLETE (True) or lost (False); failures raise."""
        unknown = attempt = 0
        while True:
            self.pause(f"ticket {ticket}", attempt, deadline, level=logging.DEBUG)
            attempt += 1
            status = self.request(f"ticket/{ticket}", None, _read_status)["status"]
            if status == "COMPLETE":
                return True
            unknown = unknown + 1 if status == "UNKNOWN" else 0
            if unknown >= LOST_AFTER:
                return False
            if status == "ERROR":
                raise _Rejected(f"the server failed ticket {ticket} (ERROR)")
            if status == "MAINTENANCE":
                raise _Failed("the server is under maintenance (MAINTENANCE); try again later")
            if status not in (*WAITING, "UNKNOWN"):
                raise _Failed(f"ticket {ticket} has the unexpected status {status[:50]!r}")

    def pause(self, what: str, attempt: int, deadline: float, level: int = logging.INFO) -> None:
        """Sleep the back-off for `attempt`, or fail when that would pass the deadline."""
        seconds = self.delay(attempt)
        if time.monotonic() + seconds > deadline:
            raise _Failed(f"gave up after max_wait_seconds={self.settings.max_wait_seconds:g}: {what}")
        log.log(level, "%s; waiting %.1f s", what, seconds)
        time.sleep(seconds)

    def delay(self, attempt: int, cap: float = MAX_BACKOFF) -> float:
        """Jittered exponential back-off in units of poll_seconds."""
        return self.settings.poll_seconds * min(1.5 ** attempt, cap) * random.uniform(0.5, 1.5)

    def request(self, path: str, form: dict[str, str] | None, read: Callable[[bytes], Any]) -> Any:
        """`read` of the answer to one GET (or form POST); timeouts, connection errors, 5xx and
        unreadable answers are retried `retries` times with back-off, then the ticket fails."""
        url = f"{self.settings.base_url}/{path}"
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        retries, problem = self.settings.retries, ""
        for attempt in range(retries + 1):
            if attempt:
                seconds = self.delay(attempt - 1)
                log.warning("%s: %s; retry %d of %d in %.1f s", url, problem, attempt, retries, seconds)
                time.sleep(seconds)
            request = urllib.request.Request(url, data=data, headers=self.headers)
            try:
                with _OPENER.open(request, timeout=self.settings.timeout_seconds) as answer:
                    return read(answer.read())
            except urllib.error.HTTPError as err:
                err.close()
                problem = f"HTTP {err.code} {err.reason}"
                if err.code < 500 and err.code not in (408, 429):
                    raise _Failed(f"{url} answered {problem}") from None
            except (OSError, http.client.HTTPException, _Malformed) as err:
                problem = _describe(err)
        raise _Failed(f"{url}: {problem} (gave up after {retries} retries)")


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, BaseException) else err
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, _Malformed):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _read_status(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        raise _Malformed(f"not JSON: {body[:80]!r}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
        raise _Malformed(f"no status in {body[:80]!r}")
    return answer


def _read_archive(body: bytes, names: tuple[str, ...]) -> dict[str, dict[int, str]]:
    """The query blocks of each named A3M in a result tar.gz; a broken archive raises _Malformed."""
    texts: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            for member in archive:  # reads to the end, so a truncated archive raises here
                name = PurePosixPath(member.name).name
                handle = archive.extractfile(member) if member.isfile() and name in names else None
                if handle is not None:
                    texts[name] = handle.read().decode()
    except (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeDecodeError) as err:
        raise _Malformed(f"unreadable result archive ({type(err).__name__}: {err})") from None
    missing = [name for name in names if name not in texts]
    if missing:
        raise _Malformed(f"the result archive lacks {', '.join(missing)}")
    return {name: _query_blocks(name, text) for name, text in texts.items()}


def _query_blocks(name: str, text: str) -> dict[int, str]:
    """Split a server A3M into its per-query blocks (NUL-separated, each headed `>NUMBER`)."""
    blocks: dict[int, str] = {}
    for chunk in text.split("\x00"):
        chunk = chunk.lstrip("\n")
        if not chunk.strip():
            continue
        header = chunk.split("\n", 1)[0]
        fields = header[1:].split()
        if not (header.startswith(">") and fields and fields[0].isdigit()):
            raise _Malformed(f"{name}: a block starts with {header[:40]!r}, not a query number")
        blocks[int(fields[0])] = chunk if chunk.endswith("\n") else chunk + "\n"
    return blocks


def _query_row(text: str) -> str:
    """The first sequence of an A3M text, as written (lines joined)."""
    lines = text.split("\n>", 1)[0].split("\n")[1:]
    return "".join(line.strip() for line in lines)
