"""The NeurIPS 2023 unlearning challenge's epsilon and scores (umia.attacks.challenge): the scorer's own
outputs on twelve cases (data/challenge_epsilon_cases.json: google-deepmind/unlearning_evaluation
metric.py run on exactly these inputs), a literal threshold-by-threshold count of its rules on
random cases, and hand-computed scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from umia.attacks import challenge as C

CASES = json.loads((Path(__file__).parent / "data" / "challenge_epsilon_cases.json").read_text())


def test_epsilon_matches_the_scorer_on_its_known_answers():
    """Six kinds of populations (same, unlearned higher, overshoot, a narrow population inside a
    wide one: the double threshold, separated, peaky), twice: epsilon to float32 precision and
    the forget score exactly."""
    u, r = np.array(CASES["unlearned_confs"]), np.array(CASES["retrained_confs"])
    eps = C.epsilons(u, r)
    np.testing.assert_allclose(eps, CASES["expected_epsilon"], rtol=1e-6, atol=0)
    assert C.forget_score(eps, CASES["n_models"]) == pytest.approx(CASES["expected_forget_score"], abs=1e-12)


def _literal(pos, neg, delta=1e-5, cap=50.0):
    """The scorer's rules written out threshold by threshold (its grids, its float32 rates)."""
    pd_, nd_ = np.ptp(pos), np.ptp(neg)
    largest, smallest = (pd_, nd_) if pd_ > nd_ else (nd_, pd_)
    if largest > 0 and smallest / largest < 0.01:
        return cap
    p, q = (neg, pos) if pd_ >= nd_ else (pos, neg)
    lo, hi = p.min() + smallest - 2.0, p.max() + 2.0
    right = np.linspace(lo, hi, math.ceil((hi - lo) * 100))
    left = np.concatenate([np.linspace(t - smallest - 2, t - smallest + 2, 400) for t in right])
    right = np.repeat(right, 400)

    def inside(c):
        return ((left[None] <= c[:, None]) & (c[:, None] <= right[None])).astype(np.float32)

    rates = [(inside(p).mean(0), (1 - inside(p)).mean(0), inside(q).mean(0), (1 - inside(q)).mean(0))]
    both = np.concatenate([pos, neg])
    # torch.linspace's default dtype: the scorer's single thresholds are float32
    th = torch.linspace(torch.tensor(both.min()), torch.tensor(both.max()), math.ceil(np.ptp(both) * 100))
    th = th.numpy().astype(np.float64)

    def above(c):
        return (c[:, None] >= th[None]).astype(np.float32)

    rates.append((above(pos).mean(0), (1 - above(pos)).mean(0), above(neg).mean(0), (1 - above(neg)).mean(0)))
    tpr, fnr, fpr, tnr = (np.concatenate(x) for x in zip(*rates, strict=True))
    e = np.where((fpr + fnr == 0) & (tpr + tnr == 2), np.inf, 0.0)
    e = np.where((e == 0) & (fpr * fnr == 0), np.nan, e)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.log(np.float32(1 - delta) - fpr) - np.log(fnr)
        b = np.log(np.float32(1 - delta) - fnr) - np.log(fpr)
        v = np.clip(np.fmax(a, b), 0, None)
    e = np.where(e == 0, v, e)
    e = e[~np.isnan(e)]
    return float(np.clip(e.max(), 0, cap)) if len(e) else 0.0


@pytest.mark.parametrize("seed", range(4))
def test_epsilon_matches_a_literal_count_of_every_threshold(seed):
    """Random populations of 2-19 values, some rounded onto the thresholds' grid (ties, values
    on a threshold), some narrow: the gap-based count gives the literal count's epsilon."""
    rng = np.random.default_rng(seed)
    for trial in range(40):
        n_pos, n_neg = rng.integers(2, 20, 2)
        pos = rng.normal(rng.normal(0, 2), rng.uniform(0.1, 3), n_pos)
        neg = rng.normal(0, rng.uniform(0.1, 3), n_neg)
        if trial % 4 == 1:
            pos, neg = np.round(pos, 1), np.round(neg, 1)
        elif trial % 4 == 2:
            pos = 1 + 0.05 * pos
        elif trial % 4 == 3:
            pos, neg = np.round(pos, 2), np.round(neg, 2)
        assert C.epsilon(pos, neg) == pytest.approx(_literal(pos, neg), abs=1e-6), (seed, trial)


def test_single_thresholds_are_float32_as_the_scorer_makes_them():
    """A retrained value (6.03) sits on a float64 grid point but just below the float32 one
    (6.0300002): the scorer's rule does not count it, so epsilon is about log 2, not log 3 (the
    scorer, run on these inputs: 0.6931272)."""
    u, r = np.array([6.02, 8.6, 5.59, 6.0]), np.array([6.03, 5.76, 9.06, 7.04])
    assert C.epsilons(u[:, None], r[:, None])[0] == pytest.approx(0.6931272, abs=1e-6)


def test_epsilon_hand_made():
    """Separated populations: a threshold with FPR = FNR = 0 gives inf, clipped to the cap. A
    spike (range under 1% of the other's) gets the cap outright. Identical populations: every
    threshold has FPR = TPR, so log((1 - d - FPR) / FNR) = log(1 - d / FNR) <= 0: epsilon 0."""
    assert C.epsilon(np.array([10.0, 11.0, 12.0]), np.array([0.0, 1.0, 2.0])) == C.CAP
    assert C.epsilon(np.array([1.0, 1.001]), np.array([0.0, 3.0])) == C.CAP
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert C.epsilon(x, x.copy()) == pytest.approx(0.0, abs=1e-4)


def test_positive_population_is_the_one_with_the_larger_median():
    """Swapping which population is "unlearned" swaps nothing: per example the one with the
    larger median is the positive one, so the epsilon is the same both ways."""
    rng = np.random.default_rng(3)
    u, r = rng.normal(1.0, 1.0, (16, 5)), rng.normal(0.0, 1.0, (16, 5))
    np.testing.assert_array_equal(C.epsilons(u, r), C.epsilons(r, u))


def test_epsilons_takes_populations_of_any_size_and_drops_nonfinite():
    a, b = [np.array([0.0, 0.5, np.inf, 1.0])], [np.array([3.0, 4.0])]
    assert C.epsilons(a, b)[0] == C.epsilon(np.array([3.0, 4.0]), np.array([0.0, 0.5, 1.0]))
    assert np.isnan(C.epsilons([np.array([np.nan])], [np.array([1.0])])[0])


def test_forget_score_hand_made():
    """n = 32 models: max epsilon ceil(log 31) = 4, eight buckets of 0.5 worth 1, 1/2, ... 1/128.
    Four examples at epsilon 0.2 (1 point), 0.7 (1/2), 3.9 (1/128), 4.2 (none): (1 + 0.5 +
    1/128) / 4."""
    assert C.max_epsilon(32) == 4.0
    eps = np.array([0.2, 0.7, 3.9, 4.2])
    assert C.forget_score(eps, 32) == pytest.approx((1 + 0.5 + 1 / 128) / 4)
    assert C.forget_score(np.array([0.5, np.nan]), 32) == 0.5  # 0.5 opens the second bucket; nan left out
    assert C.forget_score(np.array([50.0]), 32) == 0.0


def test_final_score_hand_made():
    """forget 0.4, retain 0.9 against 1.0, test 0.8 against 0.85: 0.4 * 0.9 * 0.8 / 0.85."""
    assert C.final_score(0.4, 0.9, 1.0, 0.8, 0.85) == pytest.approx(0.4 * 0.9 * 0.8 / 0.85)
