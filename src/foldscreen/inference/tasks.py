"""Task folders: `<predictions>/<query>/seed_<s>/` appears whole, by rename, or not at all.

A task is done when its folder holds `task.json` with the same digest (settings and alignments)
as the current run. Work happens in a hidden sibling folder; a killed job leaves only hidden
folders, which no later run mistakes for done and the next run of the task removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..io import fresh_dir, read_json

TASK_RECORD = "task.json"


def task_digest(settings_digest: str, *alignments: dict[str, str]) -> str:
    """What a task's files depend on: the settings and the alignments it reads.

    Alignments live in a content-addressed cache, so an entry's folder name identifies its
    content: a different MSA source, database or file gives another digest, and the task is redone.
    """
    keys = [sorted((chain, Path(path).parent.name) for chain, path in paths.items())
            for paths in alignments]
    return hashlib.sha256(json.dumps([settings_digest, keys]).encode()).hexdigest()[:16]


def task_dir(predictions: Path, query_id: str, seed: int) -> Path:
    return Path(predictions) / query_id / f"seed_{seed}"


def completed_record(folder: Path, digest: str) -> dict[str, Any] | None:
    """The task record of a finished task made with this task digest, else None (a task from
    before token layouts were recorded is not finished)."""
    path = folder / TASK_RECORD
    if not path.is_file():
        return None
    record = read_json(path)
    return record if record.get("task_digest") == digest and "tokens" in record else None


def remove_stale(final: Path) -> None:
    """Remove the hidden folders a killed job left beside a task (done or not)."""
    for stale in final.parent.glob(f".{final.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)


def staging_dir(final: Path) -> Path:
    """A fresh hidden folder beside `final` to write the task into; stale ones are removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    return fresh_dir(final.parent, f".{final.name}.")


def commit(staging: Path, final: Path) -> None:
    """Move a finished staging folder into place, replacing an outdated one."""
    if final.exists():
        old = final.parent / f".{final.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, final)
