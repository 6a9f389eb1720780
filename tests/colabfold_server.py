"""A ColabFold MMseqs2 server on loopback for tests: the real ticket protocol over real HTTP.

`with serve(prefix="/api") as server:` starts it on 127.0.0.1 (a free port) in a background
thread. Endpoints under the prefix: POST /ticket/msa and /ticket/pair (form fields q, mode),
GET /ticket/<id>, GET /result/download/<id> (a tar.gz in the server's layout, A3M blocks
separated by NUL characters). Alignments are derived deterministically from the query sequences
(`unpaired_block`, `paired_blocks`), so tests can say exactly what the client must return.

The server counts what it receives (`counts`: submit, msa, pair, status, download, sequences,
msa_sequences, pair_sequences), keeps every request's headers (`headers`), every posted sequence
(`received`), the modes asked for (`modes`) and the most tickets open at once (`max_open`; a
ticket is open from submission to its download). `script(answer, on=..., sequences=...,
times=..., endpoint=...)` makes it misbehave, `heal()` makes it behave again.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import secrets
import tarfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
UNPAIRED_MODES = ("env", "all", "env-nofilter", "nofilter")
PAIRED_MODES = ("pairgreedy", "paircomplete", "pairgreedy-env", "paircomplete-env")
ENV_A3M = "bfd.mgnify30.metaeuk30.smag30.a3m"
# What each answer does and where it applies by default.
ANSWERS = {
    "RATELIMIT": "submit", "UNKNOWN": "submit", "MAINTENANCE": "submit", "ERROR": "submit",
    "http500": "submit", "slow": "submit", "stuck": "status", "truncated": "download",
    "garbage": "download",
}


def _rng(*parts: str) -> random.Random:
    return random.Random(hashlib.sha256("\x00".join(parts).encode()).digest())


def homologue(sequence: str, rng: random.Random) -> str:
    """An A3M row of a mutated homologue: substitutions, deletions ('-'), insertions (lowercase)."""
    row = []
    start = rng.randrange(0, max(1, len(sequence) // 5))
    for index, residue in enumerate(sequence):
        roll = rng.random()
        if index < start or roll < 0.05:
            row.append("-")
        else:
            row.append(rng.choice(AMINO_ACIDS) if roll < 0.3 else residue)
        if rng.random() < 0.05:
            row.append(rng.choice(AMINO_ACIDS).lower())
    return "".join(row)


def unpaired_block(number: int, sequence: str, database: str) -> str:
    """One query's block of uniref.a3m ('uniref') or the environmental A3M ('env')."""
    rng = _rng(database, sequence)
    length = len(sequence)
    lines = [f">{number}", sequence]
    for _ in range(3 + rng.randrange(4)):
        accession = f"UniRef100_A0A{rng.randrange(16**6):06X}" if database == "uniref" else \
            f"MGYP{rng.randrange(10**12):012d}"
        scores = f"{rng.randrange(50, 400)}\t0.{rng.randrange(300, 990)}\t1.0E-10"
        lines += [f">{accession}\t{scores}\t0\t{length - 1}\t{length}\t0\t{length - 1}\t{length}",
                  homologue(sequence, rng)]
    return "\n".join(lines) + "\n"


def paired_blocks(sequences: list[str], mode: str) -> list[str]:
    """The pair.a3m blocks of a chain set: row k of every block comes from pseudo-species k."""
    rng = _rng(mode, *sequences)
    species = [f"{rng.randrange(10**5, 10**6)}" for _ in range(2 + rng.randrange(4))]
    blocks = []
    for chain, sequence in enumerate(sequences):
        lines = [f">{101 + chain}", sequence]
        for k, taxon in enumerate(species):
            present = mode.startswith("paircomplete") or (chain + k) % 3 != 2
            row_rng = _rng(taxon, sequence)
            lines += [f">UniRef100_{taxon}{chain:02d}\tspecies={taxon}",
                      homologue(sequence, row_rng) if present else "-" * len(sequence)]
        blocks.append("\n".join(lines) + "\n")
    return blocks


def archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def parse_fasta(text: str) -> list[tuple[int, str]]:
    entries: list[tuple[int, str]] = []
    for record in text.split(">")[1:]:
        header, _, body = record.partition("\n")
        entries.append((int(header.strip()), "".join(body.split())))
    return entries


@dataclass
class Rule:
    answer: str
    on: str
    sequences: frozenset[str] | None
    times: int | None
    endpoint: str | None = None


@dataclass
class Ticket:
    id: str
    endpoint: str
    mode: str
    entries: list[tuple[int, str]]
    created: float = field(default_factory=time.monotonic)
    polls: int = 0


class MockColabFold:
    """The server's state; see the module docstring."""

    def __init__(self, prefix: str = "", polls: int = 1, run_seconds: float = 0.0, slow_seconds: float = 1.0,
                 complete_on_submit: bool = False, redirect_host: str | None = None):
        self.prefix = prefix.rstrip("/")
        self.complete_on_submit = complete_on_submit  # a submission answers COMPLETE (a cached result)
        self.redirect_host = redirect_host  # downloads are redirected (302) to this host name
        self.polls = polls                  # status polls before a ticket is COMPLETE
        self.run_seconds = run_seconds      # and seconds after submission
        self.slow_seconds = slow_seconds    # how long a "slow" answer takes
        self.counts: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.received: list[str] = []
        self.modes: list[str] = []
        self.max_open = 0
        self.url = ""
        self._rules: list[Rule] = []
        self._tickets: dict[str, Ticket] = {}
        self._open: set[str] = set()
        self._lock = threading.Lock()

    def script(self, answer: str, *, on: str | None = None, sequences: list[str] | None = None,
               times: int | None = None, endpoint: str | None = None) -> None:
        """Answer `answer` (see ANSWERS) `times` times (None: always) to requests at `on`
        (submit / status / download) whose ticket holds any of `sequences` (None: any) and, if
        given, was sent to `endpoint` (msa or pair)."""
        if answer not in ANSWERS:
            raise ValueError(f"unknown answer {answer!r}")
        rule = Rule(answer, on or ANSWERS[answer], frozenset(sequences) if sequences else None, times,
                    endpoint)
        with self._lock:
            self._rules.append(rule)

    def heal(self) -> None:
        """Forget every scripted answer: the server behaves from now on."""
        with self._lock:
            self._rules.clear()

    def take(self, on: str, sequences: list[str], endpoint: str) -> str | None:
        """The scripted answer for this request, if any (used up once)."""
        with self._lock:
            for rule in self._rules:
                if rule.on != on or rule.times == 0 or rule.endpoint not in (None, endpoint):
                    continue
                if rule.sequences is not None and not rule.sequences & set(sequences):
                    continue
                if rule.times is not None:
                    rule.times -= 1
                return rule.answer
        return None

    def open_ticket(self, endpoint: str, mode: str, entries: list[tuple[int, str]]) -> Ticket:
        ticket = Ticket(secrets.token_urlsafe(12), endpoint, mode, entries)
        with self._lock:
            self._tickets[ticket.id] = ticket
            self._open.add(ticket.id)
            self.max_open = max(self.max_open, len(self._open))
        return ticket

    def close_ticket(self, ticket: Ticket) -> None:
        with self._lock:
            self._open.discard(ticket.id)

    def ticket(self, ticket_id: str) -> Ticket | None:
        with self._lock:
            return self._tickets.get(ticket_id)

    def result(self, ticket: Ticket) -> bytes:
        """The tar.gz of a finished ticket, in the server's layout."""
        if ticket.endpoint == "pair":
            blocks = paired_blocks([sequence for _, sequence in ticket.entries], ticket.mode)
            return archive({"pair.a3m": "".join(f"{block}\x00" for block in blocks)})
        files = {"uniref.a3m": "".join(f"{unpaired_block(n, s, 'uniref')}\x00" for n, s in ticket.entries)}
        if ticket.mode.startswith("env"):
            files[ENV_A3M] = "".join(f"{unpaired_block(n, s, 'env')}\x00" for n, s in ticket.entries)
        files["pdb70.m8"] = ""
        return archive(files)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (quiet)
        pass

    def _reply(self, code: int, body: bytes, kind: str = "application/json") -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout)

    def _json(self, answer: dict) -> None:
        self._reply(200, json.dumps(answer).encode())

    def _route(self) -> str | None:
        mock = self.server.mock
        mock.headers.append(dict(self.headers.items()))
        path = urllib.parse.urlsplit(self.path).path
        if mock.redirect_host and "/result/download/" in path and not self.path.endswith("?moved"):
            port = self.server.server_address[1]
            self.send_response(302)
            self.send_header("Location", f"http://{mock.redirect_host}:{port}{self.path}?moved")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if not path.startswith(mock.prefix + "/"):
            self._reply(404, b"not found", "text/plain")
            return None
        return path[len(mock.prefix):]

    def _misbehave(self, on: str, sequences: list[str], endpoint: str) -> str | None:
        """Apply a scripted answer; return it unless the request is answered already."""
        answer = self.server.mock.take(on, sequences, endpoint)
        if answer == "slow":
            time.sleep(self.server.mock.slow_seconds)
            return None
        if answer == "http500":
            self._reply(500, b"internal server error", "text/plain")
        return answer

    def do_POST(self) -> None:  # noqa: N802
        mock = self.server.mock
        path = self._route()
        if path is None:
            return
        endpoint = path.removeprefix("/ticket/")
        if endpoint not in ("msa", "pair"):
            self._reply(404, b"not found", "text/plain")
            return
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        entries = parse_fasta(form.get("q", [""])[0])
        mode = form.get("mode", [""])[0]
        sequences = [sequence for _, sequence in entries]
        with mock._lock:
            mock.counts.update(["submit", endpoint])
            mock.counts["sequences"] += len(sequences)
            mock.counts[f"{endpoint}_sequences"] += len(sequences)
            mock.received += sequences
            mock.modes.append(mode)
        answer = self._misbehave("submit", sequences, endpoint)
        if answer == "http500":
            return
        if answer in ("RATELIMIT", "UNKNOWN", "MAINTENANCE", "ERROR"):
            self._json({"status": answer})
            return
        modes = PAIRED_MODES if endpoint == "pair" else UNPAIRED_MODES
        if mode not in modes or not entries or not all(s.isalpha() for s in sequences):
            self._json({"status": "ERROR"})
            return
        ticket = mock.open_ticket(endpoint, mode, entries)
        self._json({"id": ticket.id, "status": "COMPLETE" if mock.complete_on_submit else "PENDING"})

    def do_GET(self) -> None:  # noqa: N802
        mock = self.server.mock
        path = self._route()
        if path is None:
            return
        kind, _, ticket_id = path.lstrip("/").rpartition("/")
        if kind not in ("ticket", "result/download"):
            self._reply(404, b"not found", "text/plain")
            return
        ticket = mock.ticket(ticket_id)
        on = "status" if kind == "ticket" else "download"
        with mock._lock:
            mock.counts[on] += 1
        if ticket is None:
            if on == "status":
                self._json({"id": ticket_id, "status": "UNKNOWN"})
            else:
                self._reply(400, b"unknown ticket", "text/plain")
            return
        answer = self._misbehave(on, [sequence for _, sequence in ticket.entries], ticket.endpoint)
        if answer == "http500":
            return
        if on == "status":
            self._status(ticket, answer)
        elif answer == "truncated":
            data = mock.result(ticket)
            self._reply(200, data[: len(data) // 2], "application/octet-stream")
        elif answer == "garbage":
            self._reply(200, b"<html>Bad gateway</html>", "text/html")
        else:
            self._reply(200, mock.result(ticket), "application/octet-stream")
            mock.close_ticket(ticket)

    def _status(self, ticket: Ticket, answer: str | None) -> None:
        mock = self.server.mock
        if answer in ("UNKNOWN", "MAINTENANCE", "ERROR"):
            if answer == "ERROR":
                mock.close_ticket(ticket)
            self._json({"id": ticket.id, "status": answer})
            return
        ticket.polls += 1
        done = ticket.polls > mock.polls and time.monotonic() - ticket.created >= mock.run_seconds
        status = "COMPLETE" if done and answer != "stuck" else ("PENDING" if ticket.polls == 1 else "RUNNING")
        self._json({"id": ticket.id, "status": status})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mock: MockColabFold


@contextmanager
def serve(prefix: str = "", **options: Any) -> Iterator[MockColabFold]:
    """A running loopback server; `options` go to MockColabFold."""
    mock = MockColabFold(prefix, **options)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.mock = mock
    mock.url = f"http://127.0.0.1:{httpd.server_address[1]}{mock.prefix}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield mock
    finally:
        httpd.shutdown()
        httpd.server_close()
