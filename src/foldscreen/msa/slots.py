"""A limit on concurrent work shared by every process that sees one folder: N lock files, one held per job.

A process holds `slot-<i>.lock` with `flock` for as long as its work lasts; the kernel drops the lock
when the file is closed or the process dies, so a killed job never keeps a slot.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def hold_slot(folder: Path, count: int, wait: Callable[[], float]) -> Iterator[int]:
    """Hold one of `count` slots in `folder` while the block runs; sleep `wait()` s between tries."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(count):
            fd = os.open(folder / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield index
            finally:
                os.close(fd)  # closing the only descriptor releases the lock
            return
        time.sleep(wait())
