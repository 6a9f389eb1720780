"""What an alignment source answers for one sequence or chain set: the alignment, or why not."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NoAlignment:
    """Why a sequence (or chain set) got no alignment; never cached. It fails the chain's query
    (or leaves it unpaired); the reason goes to the MSA table."""

    reason: str
