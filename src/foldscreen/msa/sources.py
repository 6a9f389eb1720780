"""Where alignments come from: the query alone, a ColabFold server, or a local search.

A source aligns many unique sequences in one call and pairs heteromer chain sets; its `name` is
its cache folder and its `version` what else defines its results (server URL and mode, search
tool, parameters and databases), so both are part of every cache key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .results import NoAlignment

Result = str | NoAlignment
PairedResult = list[str] | NoAlignment
OnResult = Callable[[str, Result], None]  # called as results arrive, before the whole set is done
OnPaired = Callable[[tuple[str, ...], PairedResult], None]
MODES = ("single_sequence", "precomputed", "server", "local")


@dataclass(frozen=True)
class MsaSettings:
    """The `msa:` section of the config."""

    mode: str = "single_sequence"
    cache: Path = Path("resources/msa_cache")
    folder: Path | None = None  # precomputed alignments named by query and chain
    server: Mapping[str, Any] = field(default_factory=dict)
    local: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown msa mode {self.mode!r} (use one of {', '.join(MODES)})")
        object.__setattr__(self, "cache", Path(self.cache))
        if self.folder is not None:
            object.__setattr__(self, "folder", Path(self.folder))

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> MsaSettings:
        return cls(**{f.name: section[f.name] for f in dataclasses.fields(cls) if f.name in section})


class Source(Protocol):
    name: str
    version: str
    pairs: bool  # whether it makes paired alignments for heteromers

    def align(self, sequences: Sequence[str], workdir: Path,
              on_result: OnResult | None = None) -> dict[str, Result]: ...

    def pair(self, chain_sets: Sequence[tuple[str, ...]],
             unpaired: Mapping[tuple[str, ...], Sequence[Path]],
             on_result: OnPaired | None = None) -> dict[tuple[str, ...], PairedResult]: ...


class SingleSequence:
    """The query alone: no search, no pairing."""

    name, version, pairs = "single_sequence", "", False

    def align(self, sequences: Sequence[str], workdir: Path,
              on_result: OnResult | None = None) -> dict[str, Result]:
        return {sequence: f">query\n{sequence}\n" for sequence in sequences}

    def pair(self, chain_sets: Sequence[tuple[str, ...]],
             unpaired: Mapping[tuple[str, ...], Sequence[Path]],
             on_result: OnPaired | None = None) -> dict[tuple[str, ...], PairedResult]:
        return {}


class Server:
    """A ColabFold MMseqs2 server: unpaired and paired modes of its ticket API."""

    name, pairs = "server", True

    def __init__(self, options: Mapping[str, Any], cache: Path) -> None:
        from .colabfold import ServerSettings

        known = {f.name for f in dataclasses.fields(ServerSettings)}
        given = {key: value for key, value in options.items() if key in known and value is not None}
        given.setdefault("slots_dir", str(cache / ".server_slots"))
        self.settings = ServerSettings(**given)
        self.version = self.settings.database_version

    def align(self, sequences: Sequence[str], workdir: Path,
              on_result: OnResult | None = None) -> dict[str, Result]:
        from .colabfold import fetch_unpaired

        return fetch_unpaired(self.settings, list(sequences), on_result)

    def pair(self, chain_sets: Sequence[tuple[str, ...]],
             unpaired: Mapping[tuple[str, ...], Sequence[Path]],
             on_result: OnPaired | None = None) -> dict[tuple[str, ...], PairedResult]:
        from .colabfold import fetch_paired

        return fetch_paired(self.settings, list(chain_sets), on_result)


class Local:
    """MMseqs2 or jackhmmer against the user's databases; heteromers paired by species."""

    name, pairs = "local", True

    def __init__(self, options: Mapping[str, Any]) -> None:
        from .local import LocalSettings

        known = {f.name for f in dataclasses.fields(LocalSettings)}
        self.settings = LocalSettings(**{k: v for k, v in options.items() if k in known and v is not None})
        self.version = self.settings.database_version

    def align(self, sequences: Sequence[str], workdir: Path,
              on_result: OnResult | None = None) -> dict[str, Result]:
        from .local import search_unpaired

        return search_unpaired(self.settings, list(sequences), workdir)

    def pair(self, chain_sets: Sequence[tuple[str, ...]],
             unpaired: Mapping[tuple[str, ...], Sequence[Path]],
             on_result: OnPaired | None = None) -> dict[tuple[str, ...], PairedResult]:
        from .pairing import pair_by_species

        results: dict[tuple[str, ...], PairedResult] = {}
        for chain_set in chain_sets:
            try:
                results[chain_set] = pair_by_species([p.read_text() for p in unpaired[chain_set]])
            except (OSError, ValueError) as err:
                results[chain_set] = NoAlignment(f"pairing by species failed: {err}")
        return results


def make_source(settings: MsaSettings) -> Source:
    """The source that aligns chains without a precomputed file in this mode."""
    if settings.mode == "server":
        return Server(settings.server, settings.cache)
    if settings.mode == "local":
        return Local(settings.local)
    return SingleSequence()
