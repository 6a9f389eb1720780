"""Interface scores of a chain pair from a sample's PAE, token pLDDT and token positions.

Definitions, parameters and citations: workflow/schemas/tables/chain_pairs.yaml. PAE[i, j] is
the error of token j when the prediction is aligned on token i; `ab` is the block with rows in
chain a and columns in chain b.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

IPSAE_PAE_CUTOFF = 10.0  # Å (Dunbrack 2025)
CONTACT_DISTANCE = 8.0  # Å between representative atoms (pDockQ2's interface)
PDOCKQ2_D0 = 10.0  # Å
LIS_PAE_CUTOFF = 12.0  # Å (Kim et al. 2024)


@dataclass(frozen=True)
class PairScores:
    pae_min: float
    pae_mean: float
    ipsae: float
    ipsae_ab: float
    ipsae_ba: float
    pdockq2: float
    lis: float
    n_contacts: int
    interface_plddt: float | None

    def as_row(self) -> dict[str, float | int | None]:
        return asdict(self)


def tm_term(pae: np.ndarray, d0: np.ndarray | float) -> np.ndarray:
    """The TM-score kernel 1 / (1 + (PAE / d0)^2)."""
    return 1.0 / (1.0 + (pae / d0) ** 2)


def ipsae_d0(n: np.ndarray, nucleic: bool) -> np.ndarray:
    """Dunbrack's d0 from the number of scored tokens: 1.24 (max(n, 27) - 15)^(1/3) - 1.8, floored."""
    d0 = 1.24 * np.cbrt(np.maximum(n, 27).astype(float) - 15.0) - 1.8
    return np.maximum(d0, 2.0 if nucleic else 1.0)


def ipsae_directed(pae_ab: np.ndarray, nucleic: bool = False, cutoff: float = IPSAE_PAE_CUTOFF) -> float:
    """ipSAE aligned on chain a, scoring chain b: the best per-token score of a."""
    close = pae_ab < cutoff
    n = close.sum(axis=1)
    if not n.any():
        return 0.0
    d0 = ipsae_d0(n, nucleic)[:, None]
    per_token = np.where(close, tm_term(pae_ab, d0), 0.0).sum(axis=1) / np.maximum(n, 1)
    return float(per_token.max())


def pdockq2_directed(pae_ab: np.ndarray, contacts: np.ndarray, plddt_a: np.ndarray,
                     plddt_b: np.ndarray) -> float:
    """pDockQ2 aligned on chain a over the contact pairs (i in a, j in b)."""
    if not contacts.any():
        return 0.0
    interface = np.concatenate([plddt_a[contacts.any(axis=1)], plddt_b[contacts.any(axis=0)]])
    x = interface.mean() * tm_term(pae_ab[contacts], PDOCKQ2_D0).mean()
    return float(1.31 / (1.0 + np.exp(-0.075 * (x - 84.733))) + 0.005)


def lis_directed(pae_ab: np.ndarray, cutoff: float = LIS_PAE_CUTOFF) -> float:
    """Mean of (cutoff - PAE) / cutoff over the entries with PAE <= cutoff (0 if none)."""
    local = pae_ab[pae_ab <= cutoff]
    return float(((cutoff - local) / cutoff).mean()) if local.size else 0.0


def pair_scores(pae: np.ndarray, plddt: np.ndarray, positions: np.ndarray, a: np.ndarray,
                b: np.ndarray, nucleic: bool = False) -> PairScores:
    """Every interface score of chains a and b (index arrays into the token axis)."""
    pae_ab, pae_ba = pae[np.ix_(a, b)], pae[np.ix_(b, a)]
    distance = np.linalg.norm(positions[a][:, None, :] - positions[b][None, :, :], axis=-1)
    contacts = distance <= CONTACT_DISTANCE
    ipsae_ab, ipsae_ba = ipsae_directed(pae_ab, nucleic), ipsae_directed(pae_ba, nucleic)
    in_contact = np.concatenate([plddt[a][contacts.any(axis=1)], plddt[b][contacts.any(axis=0)]])
    return PairScores(
        pae_min=float(min(pae_ab.min(), pae_ba.min())),
        pae_mean=float((pae_ab.sum() + pae_ba.sum()) / (2 * pae_ab.size)),
        ipsae=max(ipsae_ab, ipsae_ba), ipsae_ab=ipsae_ab, ipsae_ba=ipsae_ba,
        pdockq2=max(pdockq2_directed(pae_ab, contacts, plddt[a], plddt[b]),
                    pdockq2_directed(pae_ba, contacts.T, plddt[b], plddt[a])),
        lis=(lis_directed(pae_ab) + lis_directed(pae_ba)) / 2,
        n_contacts=int(contacts.sum()),
        interface_plddt=float(in_contact.mean()) if in_contact.size else None,
    )
