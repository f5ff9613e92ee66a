"""Per-example privacy: epsilon as the NeurIPS 2023 unlearning challenge's scorer computes it
(``umia.attacks.challenge``) on an attack's statistic and on the challenge's own input, a stricter
single-threshold epsilon, and how finely the challenge's grid resolves a statistic."""

from __future__ import annotations

import numpy as np

from umia.attacks import challenge
from umia.attacks.trials import Trials

EPSILON_CAP = 10.0  # the single-threshold epsilon where both error rates are zero
CHALLENGE_MIN_THRESHOLDS = 10  # fewer in the median example's range: the challenge's own test is too coarse


def challenge_epsilon(t: Trials) -> np.ndarray:
    """Per-example epsilon of the NeurIPS 2023 unlearning challenge's scorer (umia.attacks.challenge) on
    the attack's statistic: per example, the held-out statistics of its IN trials against those
    of its OUT trials, the positive population being the one with the larger median. Shape (c,);
    nan where an example has no finite IN or OUT trial."""
    s = np.where(t.valid & np.isfinite(t.score), t.score, np.nan)
    ins = [row[m] for row, m in zip(s, t.label & t.valid, strict=True)]
    outs = [row[m] for row, m in zip(s, ~t.label & t.valid, strict=True)]
    return challenge.epsilons(ins, outs)


def population_size(t: Trials) -> int:
    """The models per population the forget score's top bucket assumes (the scorer's ``n``): the
    smaller of the IN and OUT trial counts, over examples."""
    n_in, n_out = (t.label & t.valid).sum(1), (~t.label & t.valid).sum(1)
    both = (n_in > 0) & (n_out > 0)
    return int(np.minimum(n_in, n_out)[both].min()) if both.any() else 0


def single_threshold_epsilon(t: Trials, delta: float = 1e-5, cap: float = EPSILON_CAP) -> np.ndarray:
    """A stricter per-example epsilon than the challenge's, kept under its own name: the single
    threshold rule "statistic > t: IN" only (IN always the positive population; no double
    threshold, no peaky rule), thresholds between the example's distinct trial values, max of
    log((1 - delta - FPR) / FNR) and log((1 - delta - FNR) / FPR). A threshold where exactly one
    error rate is zero is skipped, and one where both are zero counts as ``cap`` (10, the
    challenge caps at 50). Shape (c,); nan where an example has no IN or no OUT trial; 0 where
    no threshold counts."""
    s = np.where(t.valid, np.where(np.isfinite(t.score), t.score, t.threshold), -np.inf)  # (c, N)
    order = np.argsort(-s, axis=1, kind="stable")
    s = np.take_along_axis(s, order, 1)
    lab = np.take_along_axis(t.label & t.valid, order, 1)
    out_ = np.take_along_axis(~t.label & t.valid, order, 1)
    n_in, n_out = lab.sum(1, keepdims=True), out_.sum(1, keepdims=True)
    # the threshold after the k-th highest score (k = 0..N) predicts IN for the top k; it exists
    # only where the k-th and (k+1)-th scores differ (or at the ends)
    tp = np.c_[np.zeros((len(s), 1)), np.cumsum(lab, 1)]
    fp = np.c_[np.zeros((len(s), 1)), np.cumsum(out_, 1)]
    ends = np.c_[np.ones((len(s), 1), bool), s[:, 1:] != s[:, :-1], np.ones((len(s), 1), bool)]
    with np.errstate(divide="ignore", invalid="ignore"):
        fpr, fnr = fp / n_out, 1 - tp / n_in
        both = (fpr == 0) & (fnr == 0)
        usable = ends & (fpr > 0) & (fnr > 0)
        e = np.fmax(np.log(np.maximum(1 - delta - fpr, 0) / fnr), np.log(np.maximum(1 - delta - fnr, 0) / fpr))
        e = np.where(usable, np.minimum(e, cap), -np.inf)
        e = np.where(ends & both, cap, e)
    eps = np.maximum(e.max(axis=1), 0.0)
    return np.where((n_in[:, 0] > 0) & (n_out[:, 0] > 0), eps, np.nan)


def challenge_input_epsilon(s_in: np.ndarray, s_out: np.ndarray, is_in: np.ndarray, is_out: np.ndarray):
    """The challenge's own test: per example, the logit-scaled confidence (first view) of the
    models that unlearned it against the retrains whose half lacked it (disjoint models, as the
    challenge's two populations are), no folds. Returns (per-example epsilon (c,), models per
    population)."""
    u = [row[m] for row, m in zip(s_in[..., 0], is_in, strict=True)]
    r = [row[m] for row, m in zip(s_out[..., 0], is_out, strict=True)]
    n = int(min(is_in.sum(1).min(), is_out.sum(1).min())) if len(is_in) else 0
    return challenge.epsilons(u, r), n


def challenge_thresholds(s_out: np.ndarray, is_out: np.ndarray) -> float:
    """How many of the challenge scorer's single-threshold grid points (``challenge.PER_UNIT`` a
    unit of phi) the median example's range of phi across the retrains spans. ``s_out`` (c, N):
    the retrains' phi (first view); ``is_out`` (c, N): which count. nan where no example has two
    finite retrain values."""
    ok_trials = is_out & np.isfinite(s_out)
    ok = ok_trials.sum(1) > 1
    if not ok.any():
        return np.nan
    x = np.where(ok_trials, s_out, np.nan)[ok]
    return float(np.median(np.nanmax(x, 1) - np.nanmin(x, 1))) * challenge.PER_UNIT


def challenge_grid_warning(
    s_out: np.ndarray, is_out: np.ndarray, min_thresholds: int = CHALLENGE_MIN_THRESHOLDS
) -> str | None:
    """A warning when the challenge's own test is too coarse for the statistic: its
    single-threshold grid has ``challenge.PER_UNIT`` thresholds a unit of phi, made for
    classifiers' logit-scaled confidences, which vary across models by units; a language model's
    mean token log-probability varies by thousandths, so an example's range holds one or two
    thresholds, each at an extreme, which the scorer drops (one error rate 0): the single rule is
    empty, and the double rule's few cuts fall where its grid does, not where the populations
    differ. Shifts under about ten thresholds' width are not resolved (at 10x the spread they
    are). None when the median example's range (``challenge_thresholds``) spans at least
    ``min_thresholds`` thresholds."""
    k = challenge_thresholds(s_out, is_out)
    if not k < min_thresholds:  # nan: nothing to judge
        return None
    return (
        f"the challenge's own test (challenge_forget_score, challenge_score) is too coarse for phi here: "
        f"an example's phi spans a median {k / challenge.PER_UNIT:.3g} across the retrains, {k:.1f} "
        f"of its thresholds ({challenge.PER_UNIT} a unit), so shifts smaller than about "
        f"{min_thresholds / challenge.PER_UNIT:g} are not resolved; read U-LiRA's accuracy and TPR instead"
    )
