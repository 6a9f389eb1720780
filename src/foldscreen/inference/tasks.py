"""Task folders: `<predictions>/<query>/seed_<s>/` appears whole, by rename, or not at all.

A task is done when its folder holds `task.json` with the same settings digest as the current
run. Work happens in a hidden sibling folder; a killed job leaves only hidden folders, which no
later run mistakes for done and the next run of the task removes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..io import read_json

TASK_RECORD = "task.json"


def task_dir(predictions: Path, query_id: str, seed: int) -> Path:
    return Path(predictions) / query_id / f"seed_{seed}"


def completed_record(folder: Path, settings_digest: str) -> dict[str, Any] | None:
    """The task record of a finished task made with these settings, else None."""
    path = folder / TASK_RECORD
    if not path.is_file():
        return None
    record = read_json(path)
    return record if record.get("settings_digest") == settings_digest else None


def remove_stale(final: Path) -> None:
    """Remove the hidden folders a killed job left beside a task (done or not)."""
    for stale in final.parent.glob(f".{final.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)


def staging_dir(final: Path) -> Path:
    """A fresh hidden folder beside `final` to write the task into; stale ones are removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))


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
