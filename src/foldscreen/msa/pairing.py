"""Pairing of heteromer chains' alignments by species, read from UniProt / UniRef headers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .formats import format_a3m, parse_a3m

TAXID = re.compile(r"(?:^|\s)(?:OX|TaxID)=(\d+)")
MNEMONIC = re.compile(r"^[A-Z0-9]{1,10}_([A-Z0-9]{3,5})$")


def species(header: str) -> str | None:
    """The species of an alignment row: its NCBI taxonomy id (`OX=` or `TaxID=`), else the
    species suffix of its UniProt entry name (`sp|P69905|HBA_HUMAN` -> HUMAN), else None."""
    found = TAXID.search(header)
    if found:
        return f"taxid:{found.group(1)}"
    name = header.split(maxsplit=1)[0] if header.strip() else ""
    mnemonic = MNEMONIC.match(name.split("/")[0].split("|")[-1])
    return f"mnemonic:{mnemonic.group(1)}" if mnemonic else None


def best_hit_per_species(a3m_text: str) -> tuple[tuple[str, str], dict[str, tuple[str, str]]]:
    """The query row and, for each species, the first (best) hit row of an A3M."""
    query, *hits = parse_a3m(a3m_text)
    best: dict[str, tuple[str, str]] = {}
    for header, sequence in hits:
        key = species(header)
        if key is not None and key not in best:
            best[key] = (header, sequence)
    return query, best


def pair_by_species(chain_alignments: Sequence[str]) -> list[str]:
    """Unpaired A3M texts of the chains of one heteromer -> one paired A3M text per chain, in
    order: the query first, then one row per species found in every chain (best hit per species
    per chain, in the first chain's order), rows aligned across chains."""
    chains = [best_hit_per_species(text) for text in chain_alignments]
    if not chains:
        return []
    shared = [key for key in chains[0][1] if all(key in best for _, best in chains[1:])]
    return [format_a3m([query, *(best[key] for key in shared)]) for query, best in chains]
