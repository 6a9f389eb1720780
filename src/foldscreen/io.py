"""Atomic file writes (a file is complete under its final name or absent) and slot locks.

Files and folders are created with the permissions the umask gives (0644 and 0755 under a 022
umask), as `open` and `mkdir` create them, so that colleagues can read a screen; not with
`tempfile`'s private 0600 and 0700.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path`, renamed to `path` when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create(lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)),
                  path.parent, f".{path.name}.")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_leftovers(paths: Iterable[str | Path]) -> None:
    """Delete the temporary files (`.<name>.<random>.tmp`) a killed writer of `paths` left.

    For files that one job alone writes (its declared outputs, and records such as a query's
    that only its chunk's job writes): a job killed in the middle of an atomic write leaves its
    temporary file, and its rerun removes it.
    """
    by_folder: dict[Path, set[str]] = {}
    for path in map(Path, paths):
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():  # one listing per folder, however many paths
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            name = entry.name
            if name.startswith(".") and name.endswith(".tmp") and entry.is_file() \
                    and name[1:].rsplit(".", 2)[0] in names:
                Path(entry.path).unlink(missing_ok=True)


def fresh_dir(parent: Path, prefix: str) -> Path:
    """A new empty folder `<parent>/<prefix><random>.tmp`, with the umask's permissions."""
    return _create(lambda p: os.mkdir(p, 0o777), parent, prefix)


def _create(make: Callable[[Path], None], folder: Path, prefix: str) -> Path:
    """Make (with `make`, which must fail if it exists) a file or folder of a new random name."""
    while True:
        candidate = folder / f"{prefix}{secrets.token_hex(8)}.tmp"
        try:
            make(candidate)
            return candidate
        except FileExistsError:
            continue


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write a table atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


@contextmanager
def hold_one_of(folder: Path, names: Sequence[str], wait: Callable[[], float]) -> Iterator[str]:
    """Hold one of the lock files `<folder>/<name>.lock` while the block runs: the name held.

    A limit on concurrent work shared by every process that sees `folder`: a process holds its
    lock with `flock` for as long as its work lasts; the kernel drops the lock when the file is
    closed or the process dies, so a killed job never keeps its slot. Sleeps `wait()` seconds
    between tries while all are held.
    """
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for name in names:
            fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield name
            finally:
                os.close(fd)  # closing the only descriptor releases the lock
            return
        time.sleep(wait())


@contextmanager
def hold_slot(folder: Path, count: int, wait: Callable[[], float]) -> Iterator[int]:
    """Hold one of `count` slots (`slot-<i>.lock`) in `folder` while the block runs: its index."""
    with hold_one_of(folder, [f"slot-{i}" for i in range(count)], wait) as name:
        yield int(name.removeprefix("slot-"))
