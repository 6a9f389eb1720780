"""Atomic file writes: a file is complete under its final name or absent.

Files and folders are created with the permissions the umask gives (0644 and 0755 under a 022
umask), as `open` and `mkdir` create them, so that colleagues can read a screen; not with
`tempfile`'s private 0600 and 0700.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
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
