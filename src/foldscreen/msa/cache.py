"""The content-addressed MSA cache shared by every screen and run.

An entry is a folder `<root>/<source>/<key[:2]>/<key>/`. An unpaired entry holds the alignment
under the name OpenFold3's featurisation recognises (`colabfold_main.a3m`); a paired entry holds
one `<key[:16]>_<i>/colabfold_paired.a3m` per chain of its chain set (OpenFold3 tells alignments
apart by their folder's name, so every chain's folder is named uniquely). Entries are built in a
temporary folder and renamed into place, so an entry is whole or absent. A `<key>.lock` file
beside an entry lets one job at a time fetch it (`fill`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

MAIN_MSA_NAME = "colabfold_main.a3m"
PAIRED_MSA_NAME = "colabfold_paired.a3m"
LOCK_GROUP = 200  # lock files held open at once by one job (macOS allows 256 open files by default)

Item = TypeVar("Item")
Deliver = Callable[[str, Any], None]
Fetch = Callable[[dict[str, Item], Deliver], dict[str, Any]]
Save = Callable[[str, Any], object]


def entry_key(molecule_type: str, sequence: str, *parts: str) -> str:
    """Cache key of an alignment: the chain's type and sequence plus what else defines it."""
    return hashlib.sha256("\x00".join((molecule_type, sequence, *parts)).encode()).hexdigest()


def paired_key(sequences: Iterable[str], *parts: str) -> str:
    """Cache key of a paired alignment: its chains' sequences in order plus what else defines it."""
    return entry_key("paired", "\x01".join(sequences), *parts)


def entry_dir(root: Path, source: str, key: str) -> Path:
    return Path(root) / source / key[:2] / key


def main_path(root: Path, source: str, key: str) -> Path:
    return Path(main_path_str(root, source, key))


def main_path_str(root: Path | str, source: str, key: str) -> str:
    """`main_path` as a string (no Path objects: a screen asks for hundreds of thousands)."""
    return f"{root}/{source}/{key[:2]}/{key}/{MAIN_MSA_NAME}"


def paired_paths(root: Path, source: str, key: str, n_chains: int) -> list[Path]:
    """The per-chain files of a paired entry, in the order of its chain set."""
    return [Path(p) for p in paired_path_strs(root, source, key, n_chains)]


def paired_path_strs(root: Path | str, source: str, key: str, n_chains: int) -> list[str]:
    return [f"{root}/{source}/{key[:2]}/{key}/{key[:16]}_{i}/{PAIRED_MSA_NAME}" for i in range(n_chains)]


def present(root: Path, source: str, keys: Iterable[str]) -> set[str]:
    """The keys whose entries are in the cache: one folder listing per shard, not a stat per key."""
    by_shard: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        by_shard[key[:2]].add(key)
    found: set[str] = set()
    for shard, wanted in by_shard.items():
        with contextlib.suppress(FileNotFoundError):
            found.update(wanted.intersection(os.listdir(Path(root) / source / shard)))
    return found


def store(root: Path, source: str, key: str, a3m_text: str) -> Path:
    """Write an unpaired entry atomically and return its alignment file; an existing entry is kept."""
    _write_entry(root, source, key, {MAIN_MSA_NAME: a3m_text})
    return main_path(root, source, key)


def store_paired(root: Path, source: str, key: str, a3m_texts: list[str]) -> list[Path]:
    """Write a paired entry (one A3M per chain, rows aligned) atomically; return its files."""
    paths = paired_paths(root, source, key, len(a3m_texts))
    _write_entry(root, source, key, {f"{p.parent.name}/{p.name}": t for p, t in zip(paths, a3m_texts)})
    return paths


def _write_entry(root: Path, source: str, key: str, files: Mapping[str, str]) -> None:
    """Build the entry in a temporary folder beside it, then rename that into place."""
    final = entry_dir(root, source, key)
    tmp = final.parent / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        os.mkdir(tmp)
    except FileNotFoundError:  # the shard's first entry
        final.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(tmp)
    try:
        for name, text in files.items():
            if "/" in name:
                os.mkdir(tmp / name.split("/")[0])
            with open(tmp / name, "w") as handle:
                handle.write(text)
        os.rename(tmp, final)
    except OSError:
        # Another job renamed the same entry into place first: keep theirs.
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _lock(root: Path, source: str, key: str, wait: bool) -> int | None:
    """Hold the entry's lock file (released when the descriptor closes, or the process dies)."""
    path = f"{root}/{source}/{key[:2]}/{key}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the shard's first entry
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def fill(root: Path, source: str, wanted: Mapping[str, Item], fetch: Fetch, save: Save) -> dict[str, str]:
    """Fetch and save every entry of `wanted` (key -> what to fetch) that is not cached yet.

    No entry is fetched by two jobs at once: the missing keys that no other job holds are locked
    and fetched in one call (in groups of LOCK_GROUP keys, one open lock file each); then the
    others are waited for, and fetched only if the job holding them did not save them.
    `fetch(todo, deliver)` returns A3M text(s), or an object with a `reason`, per key; it may
    hand results over early with `deliver(key, result)`, to have them saved before the rest is
    done. Returns the reason of every key left without an entry.
    """
    missing = sorted(set(wanted) - present(root, source, wanted))
    failures: dict[str, str] = {}
    for start in range(0, len(missing), LOCK_GROUP):
        group = missing[start:start + LOCK_GROUP]
        held: dict[str, int | None] = {}
        others = []
        for key in group:
            fd = _lock(root, source, key, wait=False)
            if fd is None:
                others.append(key)
            else:
                held[key] = fd
        failures.update(_fetch_held(root, source, wanted, held, fetch, save))
        held = {key: _lock(root, source, key, wait=True) for key in others}  # in key order: no deadlock
        failures.update(_fetch_held(root, source, wanted, held, fetch, save))
    return failures


def _fetch_held(root: Path, source: str, wanted: Mapping[str, Item], held: dict[str, int | None],
                fetch: Fetch, save: Save) -> dict[str, str]:
    """Fetch the held keys that are still missing; each lock is let go once its key is settled."""
    failures: dict[str, str] = {}

    def release(key: str) -> None:
        fd = held.pop(key, None)
        if fd is not None:
            os.close(fd)

    def deliver(key: str, result: Any) -> None:
        if key not in held:
            return  # settled already
        if result is None or hasattr(result, "reason"):
            failures[key] = getattr(result, "reason", "no alignment was returned")
        else:
            save(key, result)
        release(key)

    try:
        done = present(root, source, held)
        for key in done:
            release(key)
        todo = {key: wanted[key] for key in held}
        results = fetch(todo, deliver) if todo else {}
        for key in todo:
            deliver(key, results.get(key))
        return failures
    finally:
        for key in list(held):
            release(key)
