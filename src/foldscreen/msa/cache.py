"""The content-addressed MSA cache shared by every screen and run.

An entry is a folder `<root>/<source>/<key[:2]>/<key>/` holding the alignment under the file
name OpenFold3's featurisation recognises (`colabfold_main.a3m`). Entries are built in a
temporary folder and renamed into place, so an entry is whole or absent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

MAIN_MSA_NAME = "colabfold_main.a3m"


def entry_key(molecule_type: str, sequence: str, *parts: str) -> str:
    """Cache key of an alignment: the chain's type and sequence plus what else defines it."""
    return hashlib.sha256("\x00".join((molecule_type, sequence, *parts)).encode()).hexdigest()


def entry_dir(root: Path, source: str, key: str) -> Path:
    return Path(root) / source / key[:2] / key


def lookup(root: Path, source: str, key: str) -> Path | None:
    """The main alignment file of a complete entry, or None."""
    path = entry_dir(root, source, key) / MAIN_MSA_NAME
    return path if path.is_file() else None


def store(root: Path, source: str, key: str, a3m_text: str) -> Path:
    """Write an entry atomically and return its alignment file; an existing entry is kept."""
    final = entry_dir(root, source, key)
    if (final / MAIN_MSA_NAME).is_file():
        return final / MAIN_MSA_NAME
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}.", suffix=".tmp"))
    try:
        (tmp / MAIN_MSA_NAME).write_text(a3m_text)
        os.rename(tmp, final)
    except OSError:
        # Another job renamed the same entry into place first: keep theirs.
        if not (final / MAIN_MSA_NAME).is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / MAIN_MSA_NAME
