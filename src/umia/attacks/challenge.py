"""The NeurIPS 2023 machine-unlearning challenge's per-example epsilon, forget score and final score,
computed as its scorer computes them (google-deepmind/unlearning_evaluation, ``metric.py`` and
``main.py``), without a GPU and in a fraction of its time.

Per forget example the scorer compares two populations of one statistic (its own input is the
logit-scaled confidence phi): the unlearned models' and the retrained models'. The positive one
is the population with the larger median. Over two families of decision rules it takes the largest

    eps = max( log(1 - delta - FPR) - log(FNR),  log(1 - delta - FNR) - log(FPR) )

- single threshold: ``x >= t`` predicts positive, for ``ceil(100 * range)`` thresholds evenly
  spaced over the range of both populations;
- double threshold: ``l <= x <= r`` predicts the peakier population (the one of smaller range),
  for 400 (about) right thresholds ``r`` from its min + width - 2 to its max + 2 and, for each, 400
  left ones from ``r - width - 2`` to ``r - width + 2`` (``width`` is the smaller range).

A threshold where both error rates are 0 gives eps = inf (perfect separation); one where exactly
one is 0 bounds nothing and is dropped; rates are float32 means, as there. When the smaller range
is under 1% of the larger the example gets the cap outright ("peaky"). eps is clipped to
[0, 50]. Where every threshold is dropped the scorer stops with an assertion; we give 0. (The
published scorer's ``assert thr_eps`` on an array would stop on every example with more than one
threshold left; its known answers come from a copy with that line fixed.) The single-threshold
grid is float32, as ``torch.linspace`` makes it there. Rates are ``count / n`` in float32: the
scorer's ``torch.mean`` on a GPU computes ``sum * (1/n)``, which for some n that are not powers of
two (41, 47, ...) misses 1.0 for "all" and so drops perfectly separating thresholds; the
challenge's n = 512 and the known answers' 32 are not affected, and we do not copy the artefact.
Populations may differ in size here (the scorer's tiling needs equal ones).

Only the rates at the thresholds matter, and they change only where a threshold crosses a value,
so instead of counting every value against every one of the ~160,000 thresholds we find, per
right threshold, which gaps between consecutive values hold a left threshold (the grids are
arithmetic), and read epsilon from a table of every (true-positive, false-positive) count pair.
The known-answer tests check this against the scorer's outputs and against a literal
threshold-by-threshold count.

The forget score buckets the per-example epsilons in steps of 0.5 up to ``ceil(log(n - 1))``
(``n``: models per population) and gives 1, 1/2, 1/4, ... points by bucket, averaged over the
examples; the final score multiplies it by the unlearned models' retain and test accuracy, each
over the retrained models'.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

DELTA = 1e-5
CAP = 50.0
PER_UNIT = 100  # thresholds per unit of the statistic
BUFFER = 2.0  # the double-threshold rule's search margin
N_LEFT = math.ceil(2 * BUFFER * PER_UNIT)  # left thresholds per right threshold (400)
SINGLE_GRID_MAX = 4_000_000  # single-threshold grids up to this many points are made as the scorer makes them


@functools.lru_cache(maxsize=256)
def _eps_table(n_pos: int, n_neg: int, delta: float) -> np.ndarray:
    """Epsilon of every count pair: table[tp, fp] for tp of n_pos positives and fp of n_neg
    negatives predicted positive; -inf where the threshold bounds nothing (exactly one error rate
    0), inf where it separates perfectly. float64 holding the scorer's float32 values."""
    tp = np.arange(n_pos + 1, dtype=np.float32)[:, None]
    fp = np.arange(n_neg + 1, dtype=np.float32)[None, :]
    npos, nneg = np.float32(n_pos), np.float32(n_neg)
    tpr, fnr = tp / npos, (npos - tp) / npos
    fpr, tnr = fp / nneg, (nneg - fp) / nneg
    one = np.float32(1 - delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(one - fpr) - np.log(fnr)
        b = np.log(one - fnr) - np.log(fpr)
        e = np.clip(np.fmax(a, b), 0, None).astype(np.float64)  # fmax: nan only where both are
    both = (fpr + fnr == 0) & (tpr + tnr == 2)
    e = np.where(both, np.inf, np.where(fpr * fnr == 0, -np.inf, e))
    return np.where(np.isnan(e), -np.inf, e)


def _counts_le(sorted_x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """How many of ``sorted_x`` are <= each of ``u``."""
    return np.searchsorted(sorted_x, u, side="right")


def _grid_le(u: np.ndarray, start: np.ndarray, stop: np.ndarray, num: int) -> np.ndarray:
    """How many points of ``np.linspace(start, stop, num)`` are <= u, per row: start, stop (R,),
    u (K,); returns (R, K). Arithmetic; where a value lies within rounding of a grid point it is
    checked against that point as np.linspace computes it (so the count is exact)."""
    if num == 1:
        return (u[None, :] >= start[:, None]).astype(np.int64)
    step = ((stop - start) / (num - 1))[:, None]  # (R, 1)
    pos = (u[None, :] - start[:, None]) / step  # (R, K): grid index of each value, fractional
    k = np.floor(pos)
    near = np.abs(pos - np.rint(pos)) < 1e-6
    if near.any():  # on (or next to) a grid point: compare with the point itself
        r, c = np.nonzero(near)
        i = np.rint(pos[r, c])
        inside = (i >= 0) & (i <= num - 1)
        point = np.where(i == num - 1, stop[r], i * step[r, 0] + start[r])
        k[r, c] = np.where(inside & (point <= u[c]), i, i - 1)
    return np.clip(k + 1, 0, num).astype(np.int64)


def _cells(values: np.ndarray, le: np.ndarray, num: int) -> np.ndarray:
    """Which gaps of the sorted distinct ``values`` (K) hold a grid point, per row of ``le``
    (R, K: grid points <= each value): (R, K + 1) bool, column m the gap below values[m]
    (column 0 below all, column K above all)."""
    first = le[:, :1] > 0
    inner = le[:, 1:] > le[:, :-1]
    last = le[:, -1:] < num
    return np.concatenate([first, inner, last], axis=1)


def _single_grid_le(u: np.ndarray, lo: float, hi: float, num: int) -> np.ndarray:
    """How many of the single-threshold rule's thresholds are <= each of ``u`` (K,). The scorer
    makes them with ``torch.linspace`` of the float64 range, whose default dtype is float32: the
    thresholds are float32 values, compared with the float64 statistics; so are ours. Past
    ``SINGLE_GRID_MAX`` thresholds (a statistic spread over 40,000 units) they are not
    materialised and the float64 grid stands in (a value within float32 rounding of a threshold
    may then count on the other side)."""
    if num > SINGLE_GRID_MAX:
        return _grid_le(u, np.array([lo]), np.array([hi]), num)[0]
    import torch  # the scorer's own grid (torch is a dependency; imported on first use)

    grid = torch.linspace(torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64), num)
    grid = np.sort(grid.numpy().astype(np.float64))
    return np.searchsorted(grid, u, side="right")


def _single(p: np.ndarray, q: np.ndarray, table: np.ndarray) -> float:
    """Best epsilon of the rule ``x >= t`` (positive p, negative q, both sorted)."""
    lo, hi = min(p[0], q[0]), max(p[-1], q[-1])
    num = math.ceil((hi - lo) * PER_UNIT)
    if num == 0:
        return -np.inf
    u = np.unique(np.concatenate([p, q]))
    le = _single_grid_le(u, lo, hi, num)[None, :]  # (1, K)
    has = _cells(u, le, num)[0]  # (K + 1,)
    # a threshold in the gap below u[m] predicts positive for every value >= u[m]
    ge_p = len(p) - np.r_[0, _counts_le(p, u)]  # values >= a threshold in gap m, (K + 1,)
    ge_q = len(q) - np.r_[0, _counts_le(q, u)]
    return float(table[ge_p[has], ge_q[has]].max()) if has.any() else -np.inf


def _double(p: np.ndarray, q: np.ndarray, table: np.ndarray) -> float:
    """Best epsilon of the rule ``l <= x <= r`` predicting p, the peakier population (sorted)."""
    width = p[-1] - p[0]
    lo, hi = p[0] + width - BUFFER, p[-1] + BUFFER
    n_right = math.ceil((hi - lo) * PER_UNIT)
    if n_right == 0:
        return -np.inf
    right = np.linspace(lo, hi, n_right)  # (R,)
    u = np.unique(np.concatenate([p, q]))  # (K,)
    le = _grid_le(u, right - width - BUFFER, right - width + BUFFER, N_LEFT)  # (R, K)
    has = _cells(u, le, N_LEFT)  # (R, K + 1)
    below_p = np.r_[0, _counts_le(p, u)]  # values < a left threshold in gap m, (K + 1,)
    below_q = np.r_[0, _counts_le(q, u)]
    in_p, in_q = _counts_le(p, right), _counts_le(q, right)  # values <= r, (R,)
    # right thresholds with the same counts below them differ only in which gaps hold a left
    # threshold: merge them (they are consecutive, the counts being monotone in r)
    new = np.r_[True, (in_p[1:] != in_p[:-1]) | (in_q[1:] != in_q[:-1])]
    starts = np.flatnonzero(new)
    has = np.logical_or.reduceat(has, starts, axis=0)  # (G, K + 1)
    tp = np.maximum(in_p[starts, None] - below_p[None, :], 0)  # (G, K + 1)
    fp = np.maximum(in_q[starts, None] - below_q[None, :], 0)
    return float(np.where(has, table[tp, fp], -np.inf).max())


def epsilon(pos: np.ndarray, neg: np.ndarray, delta: float = DELTA, cap: float = CAP) -> float:
    """The scorer's epsilon of one example, ``pos`` being the positive population (the one with
    the larger median, see ``epsilons``) and ``neg`` the other (1-d, any lengths >= 1). Non-finite
    values are left out; nan where a population is then empty."""
    pos = np.sort(np.asarray(pos, np.float64)[np.isfinite(pos)])
    neg = np.sort(np.asarray(neg, np.float64)[np.isfinite(neg)])
    if not len(pos) or not len(neg):
        return float("nan")
    pos_diff, neg_diff = pos[-1] - pos[0], neg[-1] - neg[0]
    largest, smallest = (pos_diff, neg_diff) if pos_diff > neg_diff else (neg_diff, pos_diff)
    if largest > 0 and smallest / largest < 0.01:
        return float(cap)  # one population is a spike: the scorer calls that the worst case
    peaky, other = (neg, pos) if pos_diff >= neg_diff else (pos, neg)
    best = max(
        _double(peaky, other, _eps_table(len(peaky), len(other), delta)),
        _single(pos, neg, _eps_table(len(pos), len(neg), delta)),
    )
    return float(np.clip(best, 0.0, cap)) if best > -np.inf else 0.0


def epsilons(
    unlearned: Sequence[np.ndarray] | np.ndarray,
    retrained: Sequence[np.ndarray] | np.ndarray,
    delta: float = DELTA,
    cap: float = CAP,
) -> np.ndarray:
    """Per-example epsilon of the unlearned against the retrained population, the positive one
    per example being whichever has the larger median. Arrays of shape (n_models, n_examples), as
    the scorer takes them, or sequences of per-example 1-d arrays (populations of any size)."""
    if isinstance(unlearned, np.ndarray) and unlearned.ndim == 2:
        unlearned, retrained = list(unlearned.T), list(np.asarray(retrained).T)
    out = np.full(len(unlearned), np.nan)
    for i, (u, r) in enumerate(zip(unlearned, retrained, strict=True)):
        u, r = np.asarray(u, np.float64), np.asarray(r, np.float64)
        u, r = u[np.isfinite(u)], r[np.isfinite(r)]
        if len(u) and len(r):
            pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
            out[i] = epsilon(pos, neg, delta, cap)
    return out


def max_epsilon(n_models: int) -> float:
    """The largest epsilon the forget score gives points for: ceil(log(n - 1))."""
    return float(math.ceil(math.log(n_models - 1))) if n_models > 2 else 0.0


def forget_score(eps: np.ndarray, n_models: int) -> float:
    """The scorer's forgetting quality: 1 point for an example with eps < 0.5, 1/2 below 1.0, 1/4
    below 1.5, ... up to ``max_epsilon(n_models)``, none above; the mean over the examples (nan
    epsilons, examples without both populations, are left out)."""
    eps = np.asarray(eps, np.float64)
    eps = eps[~np.isnan(eps)]
    if not len(eps):
        return float("nan")
    n_buckets = int(math.floor(max_epsilon(n_models) / 0.5 + 1e-9))
    bucket = np.floor(eps / 0.5)  # eps < 0.5 (k + 1) falls in bucket k
    points = np.where(bucket < n_buckets, 0.5 ** np.minimum(bucket, 60), 0.0)
    return float(points.sum() / len(eps))


def final_score(
    forget: float, retain_unlearned: float, retain_retrained: float, test_unlearned: float, test_retrained: float
) -> float:
    """The challenge's final score: the forget score times the retain- and test-accuracy ratios
    of the unlearned models (means over models) to the retrained ones."""
    return float(forget * (retain_unlearned / retain_retrained) * (test_unlearned / test_retrained))
