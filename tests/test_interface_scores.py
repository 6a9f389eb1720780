"""Interface scores on constructed chain pairs whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foldscreen.reports.interface import ipsae_d0, ipsae_directed, lis_directed, pair_scores

A, B = np.arange(3), np.arange(3, 5)  # chain a: tokens 0-2, chain b: tokens 3-4
# tokens on a line (Å): a at 0, 5, 20; b at 3, 100 -> contacts (a0, b0) at 3 Å and (a1, b0) at 2 Å
POSITIONS = np.array([[0, 0, 0], [5, 0, 0], [20, 0, 0], [3, 0, 0], [100, 0, 0]], dtype=float)
PLDDT = np.array([90.0, 70.0, 10.0, 50.0, 30.0])
D0_MIN_LENGTH = 1.24 * 12 ** (1 / 3) - 1.8  # Dunbrack's d0 at its floor length of 27 residues: 1.0389 Å


def blocks(ab: float, ba: float, intra: float = 1.0) -> np.ndarray:
    pae = np.full((5, 5), intra)
    pae[np.ix_(A, B)] = ab
    pae[np.ix_(B, A)] = ba
    return pae


def pdockq2(x: float) -> float:
    return 1.31 / (1 + math.exp(-0.075 * (x - 84.733))) + 0.005


def test_constant_pae_below_every_cutoff():
    scores = pair_scores(blocks(ab=5.0, ba=6.0), PLDDT, POSITIONS, A, B)
    # ipSAE: every token of a sees both b tokens under 10 Å, so n = 2 -> d0 at its 27-residue floor
    assert scores.ipsae_ab == pytest.approx(1 / (1 + (5 / D0_MIN_LENGTH) ** 2))
    assert scores.ipsae_ba == pytest.approx(1 / (1 + (6 / D0_MIN_LENGTH) ** 2))
    assert scores.ipsae == scores.ipsae_ab
    # LIS: (12 - 5) / 12 one way, (12 - 6) / 12 the other, averaged
    assert scores.lis == pytest.approx((7 / 12 + 6 / 12) / 2)
    assert (scores.pae_min, scores.pae_mean) == (5.0, 5.5)
    # contacts within 8 Å: (a0, b0) and (a1, b0); interface tokens a0, a1, b0
    assert scores.n_contacts == 2
    assert scores.interface_plddt == pytest.approx((90 + 70 + 50) / 3)
    # pDockQ2 (d0 = 10 Å): x = mean interface pLDDT x mean 1 / (1 + (PAE / 10)^2) over the contacts
    expected_ab = pdockq2(70 * 1 / (1 + 0.5 ** 2))
    expected_ba = pdockq2(70 * 1 / (1 + 0.6 ** 2))
    assert scores.pdockq2 == pytest.approx(max(expected_ab, expected_ba))


def test_pae_at_or_above_the_cutoffs_scores_zero():
    scores = pair_scores(blocks(ab=12.0, ba=30.0), PLDDT, POSITIONS, A, B)
    assert scores.ipsae == 0.0  # no PAE under 10 Å
    assert scores.lis == 0.0  # PAE 12 is inside LIS's cutoff but contributes (12 - 12) / 12 = 0
    assert scores.pdockq2 == pytest.approx(pdockq2(70 / (1 + 1.2 ** 2)))  # contacts exist; a->b wins


def test_no_contacts():
    far = POSITIONS.copy()
    far[B] += 1000.0
    scores = pair_scores(blocks(ab=2.0, ba=2.0), PLDDT, far, A, B)
    assert scores.n_contacts == 0 and scores.interface_plddt is None and scores.pdockq2 == 0.0
    assert scores.ipsae > 0  # ipSAE needs no contact, only low PAE


def test_ipsae_counts_only_tokens_under_the_cutoff():
    # token a0 sees b0 at 4 Å and b1 at 20 Å: only b0 counts (n = 1); a1, a2 see nothing under 10 Å
    pae_ab = np.array([[4.0, 20.0], [15.0, 15.0], [11.0, 11.0]])
    assert ipsae_directed(pae_ab) == pytest.approx(1 / (1 + (4 / D0_MIN_LENGTH) ** 2))
    assert lis_directed(pae_ab) == pytest.approx(((12 - 4) / 12 + (12 - 11) / 12 * 2) / 3)


def test_d0_grows_with_the_number_of_scored_tokens():
    assert ipsae_d0(np.array([1, 27, 40]), nucleic=False) == pytest.approx(
        [D0_MIN_LENGTH, D0_MIN_LENGTH, 1.24 * 25 ** (1 / 3) - 1.8])
    assert ipsae_d0(np.array([27]), nucleic=True) == pytest.approx([2.0])  # floor for nucleic acids
    pae_ab = np.full((1, 40), 3.0)  # 40 scored tokens: d0 = 1.24 * 25^(1/3) - 1.8 = 1.826 Å
    assert ipsae_directed(pae_ab) == pytest.approx(1 / (1 + (3 / (1.24 * 25 ** (1 / 3) - 1.8)) ** 2))
