"""U-MIAs fit from the score table: per-example U-LiRA, the population Gaussian U-MIA and the
population loss U-MIA.

Notation, for one unlearning method m over the forget candidates C (c examples), N models and
V views:

- ``s_in``  (c, N, V): phi of method m's models (originals for ``none``, retrains for ``retrain``);
  meaningful where ``is_in`` (x in F_i: trained, then unlearned);
- ``s_out`` (c, N, V): phi of the retrain models; meaningful where ``is_out`` (x not in D_i: never
  trained);
- ``is_in``, ``is_out`` (c, N) boolean. For a candidate every model is one or the other.

Each (example, model) pair is one trial: an IN trial targets the unlearned model U_i (x in F_i), an
OUT trial the retrain R_i (x not in D_i). The OUT distributions are fit on every retrain of the
training folds, not only those whose half lacked x: a retrain never sees any candidate (R_i is
trained on D_i minus F_i), so all N retrains are draws of "x never trained". The ``_half_out``
variant keeps the fit to the retrains with x not in D_i. Target models are held out by K-fold over model ids
(pairs 2k, 2k+1 stay together): the attacker for a fold is fit on the other folds only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import gamma, norm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from umia import challenge

log = logging.getLogger(__name__)

SD_FLOOR = 1e-6
EPSILON_CAP = 10.0  # the single-threshold epsilon where both error rates are zero


@dataclass(frozen=True)
class Trials:
    """The outcome of one attack on one method: a statistic per (example, model) trial.

    score: (c, N) float, larger means "was trained and unlearned"; nan where no trial.
    label: (c, N) bool, the truth (x in F_i); valid: (c, N) bool, where a trial exists.
    threshold: the decision threshold of the attack's own rule (0 for a likelihood ratio).
    pooled: for attacks that also classify non-candidates (the loss attack's test examples), the
    flat (labels, scores, model ids) of every held-out prediction, which the summary uses instead.
    """

    score: np.ndarray
    label: np.ndarray
    valid: np.ndarray
    threshold: float = 0.0
    pooled: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) of every trial, for the summary metrics."""
        if self.pooled is not None:
            return self.pooled[0], self.pooled[1]
        return self.label[self.valid], self.score[self.valid]

    def models(self) -> np.ndarray:
        """The target model of every trial, in the order of ``flat()``."""
        if self.pooled is not None:
            return self.pooled[2]
        return np.broadcast_to(np.arange(self.score.shape[1]), self.score.shape)[self.valid]


def fold_of(n_models: int, n_folds: int) -> np.ndarray:
    """Fold of each model id, shape (N,): pairs (2k, 2k+1) share a fold."""
    return (np.arange(n_models) // 2) % n_folds


def _masked_moments(s: np.ndarray, mask: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation (ddof=0) and count of the finite ``s`` where ``mask``."""
    m = mask & np.isfinite(s)
    count = m.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m, s, 0.0).sum(axis=axis, keepdims=True) / count
        sd = np.sqrt((np.where(m, s - mean, 0.0) ** 2).sum(axis=axis, keepdims=True) / count)
    return mean, sd, count


def _sd_with_fallback(sd: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Floor the spread, and give examples with fewer than two samples the median spread."""
    ok = (count >= 2) & np.isfinite(sd)
    fallback = np.median(sd[ok]) if ok.any() else 1.0
    return np.maximum(np.where(ok, sd, fallback), SD_FLOOR)


LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _logpdf(t, mu, sd):
    z = (t - mu) / sd
    return -0.5 * z * z - np.log(sd) - LOG_SQRT_2PI


def gaussian_llr(t: np.ndarray, mu_in, sd_in, mu_out, sd_out) -> np.ndarray:
    """Log-likelihood ratio of IN vs OUT Gaussians, summed over the last (view) axis."""
    return (_logpdf(t, mu_in, sd_in) - _logpdf(t, mu_out, sd_out)).sum(axis=-1)


def offline_statistic(t: np.ndarray, mu_out, sd_out) -> np.ndarray:
    """LiRA offline, two-sided (OUT only): how improbable t is under Z ~ N(mu_out, sd_out^2) in
    either tail, -log Pr[|Z - mu| >= |t - mu|] summed over the V views, minus its median under OUT
    (Gamma(V, 1)), so that half the OUT trials fall below 0. Far from the OUT mean on either side
    leans IN: unlearning can leave phi too high (not forgotten) or push it too low (over-unlearned),
    and both tell the models apart from retrains. Per example it ranks targets as the LiRA
    reference's offline test (-log N(t; mu, sd)) does; pooled over examples it is a p-value, free
    of the example's spread."""
    z = np.abs((t - mu_out) / sd_out)
    p = -(np.log(2.0) + norm.logsf(z))  # -log of the two-sided p-value, per view
    return p.sum(axis=-1) - gamma.median(t.shape[-1])


def _pooled_sd(sd: np.ndarray, count: np.ndarray) -> np.ndarray:
    """One spread per view, pooled over examples: the root of the count-weighted mean of the
    within-example variances, shape (1, 1, V). (The LiRA reference code's fixed-variance branch
    takes the spread of all IN scores together, which mixes in the spread of the per-example
    means; we pool within-example variances instead, which is what a fixed variance models.)"""
    w = np.where(np.isfinite(sd) & (count >= 2), count, 0)
    var = (np.where(w > 0, sd, 0.0) ** 2 * w).sum(axis=(0, 1), keepdims=True) / np.maximum(
        w.sum(axis=(0, 1), keepdims=True), 1
    )
    return np.maximum(np.sqrt(var), SD_FLOOR)


def _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds: int, mode: str, out_fit=None) -> Trials:
    """Fit per fold and score the held-out models. mode: online (per-example IN and OUT),
    offline (per-example OUT only), fixed (per-example means, one pooled spread), population
    (one IN and one OUT Gaussian per view over all examples). ``out_fit`` (c, N): the models
    whose ``s_out`` the OUT fit may use (default ``is_out``); targets are always ``is_in`` or
    ``is_out``."""
    c, n, _ = s_in.shape
    out_fit = is_out if out_fit is None else out_fit
    folds = fold_of(n, n_folds)
    target = np.where(is_in[..., None], s_in, s_out)  # (c, N, V): the model the adversary sees
    score = np.full((c, n), np.nan)
    axis = (0, 1) if mode == "population" else 1  # moments of shape (1, 1, V), or (c, 1, V)
    for f in range(n_folds):
        fit = (folds != f)[None, :]  # (1, N)
        mu_o, sd_o, n_o = _masked_moments(s_out, (out_fit & fit)[..., None], axis)
        tgt = folds == f
        if mode == "offline":
            with np.errstate(invalid="ignore"):
                score[:, tgt] = offline_statistic(target[:, tgt], mu_o, _sd_with_fallback(sd_o, n_o))
            continue
        mu_i, sd_i, n_i = _masked_moments(s_in, (is_in & fit)[..., None], axis)
        if mode == "fixed":
            sd_i = sd_o = _pooled_sd(np.concatenate([sd_i, sd_o], 1), np.concatenate([n_i, n_o], 1))
        else:
            sd_i, sd_o = _sd_with_fallback(sd_i, n_i), _sd_with_fallback(sd_o, n_o)
        with np.errstate(invalid="ignore"):
            score[:, tgt] = gaussian_llr(target[:, tgt], mu_i, sd_i, mu_o, sd_o)
    valid = is_in | is_out
    return Trials(np.where(valid, score, np.nan), is_in, valid)


def _every_retrain(is_out: np.ndarray) -> np.ndarray:
    return np.ones_like(is_out, dtype=bool)  # no retrain saw a candidate


def ulira(s_in, s_out, is_in, is_out, n_folds: int = 4) -> Trials:
    """U-LiRA, online: per example, N(mu_in, sd_in^2) fit to phi of the models that unlearned it
    and N(mu_out, sd_out^2) to phi of every retrain (none saw it); the statistic is the
    log-likelihood ratio on the target model, summed over views."""
    return _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds, "online", _every_retrain(is_out))


def ulira_half_out(s_in, s_out, is_in, is_out, n_folds: int = 4) -> Trials:
    """U-LiRA, online, with the OUT Gaussian fit only on the retrains whose half lacked x (the
    design's original fit; half the OUT samples of ``ulira``)."""
    return _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds, "online")


def ulira_offline(s_in, s_out, is_in, is_out, n_folds: int = 4) -> Trials:
    """U-LiRA, offline: only the OUT Gaussian of each example (no unlearned shadow model needed);
    the statistic is two-sided (``offline_statistic``): how far into either tail of OUT the
    target's phi lies."""
    return _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds, "offline", _every_retrain(is_out))


def ulira_fixed_variance(s_in, s_out, is_in, is_out, n_folds: int = 4) -> Trials:
    """U-LiRA, online with one spread per view pooled over examples and over IN/OUT: per-example
    means, a shared variance; steadier than per-example spreads when N is small."""
    return _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds, "fixed", _every_retrain(is_out))


def population_gaussian(s_in, s_out, is_in, is_out, n_folds: int = 4) -> Trials:
    """The same likelihood-ratio test with one IN and one OUT Gaussian per view, pooled over C."""
    return _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds, "population", _every_retrain(is_out))


def population_loss(
    loss_forget: np.ndarray,
    is_in: np.ndarray,
    forget_labels: np.ndarray,
    loss_test: np.ndarray,
    test_labels: np.ndarray,
    cv_folds: int = 5,
    seed: int = 0,
) -> Trials:
    """The population loss U-MIA of the unlearning literature (SCRUB; NeurIPS 2023 challenge).

    For each unlearned model i: a logistic regression on the loss of its forget examples (label 1)
    against the loss of test examples of the same classes (label 0), class-balanced by sampling,
    cross-validated; every prediction is made by a model that did not see that example.

    loss_forget: (c, N) losses of the candidates under model i; is_in: (c, N); forget_labels: (c,);
    loss_test: (n_test, N); test_labels: (n_test,). The trials are the forget examples (IN only),
    scored by the held-out probability of "forgotten" minus 0.5; ``pooled`` holds every held-out
    prediction (forget and test examples) for the summary metrics.
    """
    c, n = is_in.shape
    rng = np.random.default_rng(seed)
    score = np.full((c, n), np.nan)
    preds = []  # (y_true, proba) per model, both classes, for the summary metrics
    for i in range(n):
        f_idx = np.flatnonzero(is_in[:, i])
        pos, neg = [], []
        for k in np.unique(forget_labels[f_idx]):
            fk = f_idx[forget_labels[f_idx] == k]
            tk = np.flatnonzero(test_labels == k)
            m = min(len(fk), len(tk))
            pos.append(rng.choice(fk, m, replace=False))
            neg.append(rng.choice(tk, m, replace=False))
        if not pos:
            continue  # this model forgot nothing: no trial
        pos, neg = np.concatenate(pos), np.concatenate(neg)
        x = np.concatenate([loss_forget[pos, i], loss_test[neg, i]])
        y = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
        folds = min(cv_folds, len(pos))
        if folds < 2:
            continue
        feat = np.log(np.clip(np.nan_to_num(x, nan=np.inf), 1e-12, 1e12))[:, None]  # log-loss spreads the tail
        cv = StratifiedKFold(folds, shuffle=True, random_state=int(rng.integers(2**31)))
        proba = cross_val_predict(LogisticRegression(), feat, y, cv=cv, method="predict_proba")[:, 1]
        score[pos, i] = proba[: len(pos)] - 0.5
        preds.append((y, proba - 0.5, np.full(len(y), i)))
    pooled = (
        tuple(np.concatenate([p[k] for p in preds]) for k in range(3))
        if preds
        else (np.zeros(0, bool), np.zeros(0), np.zeros(0, int))
    )
    return Trials(score, is_in, is_in & np.isfinite(score), pooled=pooled)


def best_threshold(pos: np.ndarray, neg: np.ndarray) -> float:
    """The threshold t that maximises the accuracy of the rule "statistic > t: IN" over the
    finite values of ``pos`` (IN trials) and ``neg`` (OUT trials): the midpoint between the two
    neighbouring distinct values where the best cut lies (the lowest such cut on ties; below the
    smallest value or above the largest where all trials go one way). nan without both sides."""
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not len(pos) or not len(neg):
        return float("nan")
    v = np.concatenate([pos, neg])
    order = np.argsort(v, kind="stable")
    v, lab = v[order], np.r_[np.ones(len(pos)), np.zeros(len(neg))][order]
    # cut k predicts OUT for the k smallest values: right = IN above the cut + OUT at or below it
    right = (len(pos) - np.r_[0, np.cumsum(lab)]) + np.r_[0, np.cumsum(1 - lab)]  # (n + 1,)
    allowed = np.r_[True, v[1:] != v[:-1], True]  # a cut between equal values does not exist
    k = int(np.argmax(np.where(allowed, right, -1)))
    if k == 0:
        return float(v[0] - 1.0)
    if k == len(v):
        return float(v[-1] + 1.0)
    return float((v[k - 1] + v[k]) / 2)


def population_threshold(s_in, s_out, is_in, is_out, n_folds: int = 4) -> Trials:
    """A population U-MIA on one per-sequence statistic (larger means "trained, then unlearned"):
    one threshold for every example, the one with the best accuracy on the IN trials (the method's
    models that unlearned x) and every retrain (none saw x) of the other folds' models;
    the statistic of a held-out target minus that threshold, so the attack's own threshold is 0.

    s_in, s_out: (c, N) (no view axis: text has one); is_in, is_out: (c, N) boolean. Non-finite
    statistics are left out of the fit and are undecided on a target. The LM population attacks
    (zlib ratio, Min-K%) are this test on their statistic."""
    c, n = s_in.shape
    folds = fold_of(n, n_folds)
    target = np.where(is_in, s_in, s_out)  # (c, N): the model the adversary sees
    score = np.full((c, n), np.nan)
    for f in range(n_folds):
        fit = (folds != f)[None, :]  # (1, N)
        t = best_threshold(s_in[is_in & fit], s_out[np.broadcast_to(fit, is_out.shape)])
        score[:, folds == f] = target[:, folds == f] - t
    valid = is_in | is_out
    return Trials(np.where(valid, score, np.nan), is_in, valid)


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    ok = fpr <= target
    return float(tpr[ok].max()) if ok.any() else 0.0


def summarize(labels: np.ndarray, score: np.ndarray, threshold: float = 0.0) -> dict:
    """Accuracy at the attack's threshold and at the best threshold, AUC, and TPR at 0.1% and 1%
    FPR over a flat set of trials. A non-finite statistic decides nothing: it sits at the
    threshold (predicted OUT) and is counted in ``n_nonfinite``."""
    finite = np.isfinite(score)
    s = np.where(finite, score, threshold)
    acc = float(np.mean((s > threshold) == labels)) if len(s) else float("nan")
    out = {
        "accuracy": acc,
        "accuracy_best": float("nan"),
        "auc": float("nan"),
        "tpr_at_0.1pct_fpr": float("nan"),
        "tpr_at_1pct_fpr": float("nan"),
    }
    if labels.any() and not labels.all():
        fpr, tpr, _ = roc_curve(labels, s)
        pos = labels.mean()
        out.update(
            {
                "accuracy_best": float(np.max(tpr * pos + (1 - fpr) * (1 - pos))),
                "auc": float(roc_auc_score(labels, s)),
                "tpr_at_0.1pct_fpr": tpr_at_fpr(fpr, tpr, 0.001),
                "tpr_at_1pct_fpr": tpr_at_fpr(fpr, tpr, 0.01),
            }
        )
    return {**out, "n_trials": int(len(s)), "n_nonfinite": int((~finite).sum())}


def bootstrap(
    labels: np.ndarray,
    score: np.ndarray,
    models: np.ndarray,
    threshold: float = 0.0,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of accuracy, AUC and TPR at 0.1% and 1% FPR, resampling target
    models with replacement (trials of one model move together).

    Vectorised: a resample is a weight per trial (how often its model was drawn), and every
    metric is a weighted cumulative sum over the trials sorted once by score.
    """
    keys = ("accuracy", "auc", "tpr_at_0.1pct_fpr", "tpr_at_1pct_fpr")
    if len(score) == 0 or labels.all() or not labels.any():
        return {k: (float("nan"), float("nan")) for k in keys}
    s = np.where(np.isfinite(score), score, threshold)
    order = np.argsort(-s, kind="stable")
    s, lab, mod = s[order], labels[order].astype(float), models[order]
    model_ids, mod = np.unique(mod, return_inverse=True)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(model_ids), np.full(len(model_ids), 1 / len(model_ids)), size=n_boot)
    correct = ((s > threshold) == (lab > 0)).astype(float)
    last = np.r_[s[1:] != s[:-1], True]  # the last trial of each run of tied scores
    res = {k: [] for k in keys}
    for chunk in np.array_split(counts, max(1, n_boot * len(s) // 20_000_000 + 1)):
        w = chunk[:, mod].astype(float)  # (b, trials)
        res["accuracy"].append((w * correct).sum(1) / w.sum(1))
        tp, fp = np.cumsum(w * lab, 1)[:, last], np.cumsum(w * (1 - lab), 1)[:, last]
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr, fpr = tp / tp[:, -1:], fp / fp[:, -1:]
        tpr, fpr = np.c_[np.zeros(len(w)), tpr], np.c_[np.zeros(len(w)), fpr]
        res["auc"].append(np.trapezoid(tpr, fpr, axis=1))
        for k, x in (("tpr_at_0.1pct_fpr", 0.001), ("tpr_at_1pct_fpr", 0.01)):
            res[k].append(np.where(fpr <= x, tpr, 0.0).max(1))
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    for k, v in res.items():
        v = np.concatenate(v)
        v = v[np.isfinite(v)]
        out[k] = (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if len(v) else (np.nan, np.nan)
    return out


def per_example_accuracy(t: Trials) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy over each example's trials, and their number; shapes (c,)."""
    s = np.where(np.isfinite(t.score), t.score, t.threshold)
    correct = ((s > t.threshold) == t.label) & t.valid
    n = t.valid.sum(axis=1)
    with np.errstate(invalid="ignore"):
        return correct.sum(axis=1) / n, n


def challenge_epsilon(t: Trials) -> np.ndarray:
    """Per-example epsilon of the NeurIPS 2023 unlearning challenge's scorer (umia.challenge) on
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


def roc_points(labels: np.ndarray, score: np.ndarray, threshold: float = 0.0, n: int = 400) -> pd.DataFrame:
    """The ROC curve, thinned to about ``n`` points spaced evenly in log FPR (for log-log plots)."""
    if labels.all() or not labels.any():
        return pd.DataFrame({"fpr": [], "tpr": []})
    fpr, tpr, _ = roc_curve(labels, np.where(np.isfinite(score), score, threshold))
    grid = np.r_[0.0, np.logspace(np.log10(max(fpr[fpr > 0].min(), 1e-6)), 0, n)]
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    return pd.DataFrame({"fpr": fpr[idx], "tpr": tpr[idx]})


ATTACKS: dict[str, Callable] = {
    "ulira": ulira,
    "ulira_half_out": ulira_half_out,
    "ulira_offline": ulira_offline,
    "ulira_fixed_variance": ulira_fixed_variance,
    "population_gaussian": population_gaussian,
}


@dataclass
class ScoreCube:
    """phi and loss of every model of one (stage, method): arrays (N, V, n_examples)."""

    phi: np.ndarray
    loss: np.ndarray


SCORE_COLUMNS = ["model_id", "method", "example_id", "label", "view", "phi", "loss"]  # what the attacks read
LM_COLUMNS = ["model_id", "method", "example_id", "min_k", "zlib_ratio"]  # of the text task's LM statistics
# The LM population attacks of the text task: attack -> (statistic, sign that makes larger mean IN).
LM_ATTACKS = {"population_zlib": ("zlib_ratio", -1.0), "population_min_k": ("min_k", 1.0)}


def _codes(column, order: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a string column (plain or dictionary-encoded) and the names they stand for."""
    cat = pd.Categorical(column.to_pandas() if hasattr(column, "to_pandas") else column)
    if order is not None:
        cat = cat.set_categories(list(order))
    return np.asarray(cat.codes), [str(c) for c in cat.categories]


def cubes(
    scores: pd.DataFrame | pa.Table, n_models: int, views: Sequence[str], n_examples: int
) -> dict[str, ScoreCube]:
    """Split the long score table into a cube per method (``none`` = originals, ``retrain``)."""
    get = (lambda c: scores[c]) if isinstance(scores, pa.Table) else (lambda c: scores[c].to_numpy())
    method, names = _codes(get("method"))
    view, _ = _codes(get("view"), views)
    model = np.asarray(get("model_id"))
    example = np.asarray(get("example_id"))
    phi_all, loss_all = np.asarray(get("phi")), np.asarray(get("loss"))
    out = {}
    for k, name in enumerate(names):
        rows = np.flatnonzero(method == k)
        shape = (n_models, len(views), n_examples)
        phi, loss = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
        ix = (model[rows], view[rows], example[rows])
        phi[ix], loss[ix] = phi_all[rows], loss_all[rows]
        out[name] = ScoreCube(phi, loss)
    return out


def lm_cubes(lm_stats: pd.DataFrame | pa.Table, n_models: int, n_examples: int) -> dict[str, dict[str, np.ndarray]]:
    """The LM statistics (``LM_ATTACKS``' columns) of every model of each method: method ->
    statistic -> (N, n_examples) float32, nan where no row."""
    get = (lambda c: lm_stats[c]) if isinstance(lm_stats, pa.Table) else (lambda c: lm_stats[c].to_numpy())
    method, names = _codes(get("method"))
    model, example = np.asarray(get("model_id")), np.asarray(get("example_id"))
    out: dict[str, dict[str, np.ndarray]] = {}
    for k, name in enumerate(names):
        rows = np.flatnonzero(method == k)
        out[name] = {}
        for stat, _ in LM_ATTACKS.values():
            cube = np.full((n_models, n_examples), np.nan, np.float32)
            cube[model[rows], example[rows]] = np.asarray(get(stat))[rows]
            out[name][stat] = cube
    return out


SUMMARY_COLUMNS = [
    "method",
    "attack",
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "accuracy_best",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "tpr_at_0.1pct_fpr",
    "tpr_at_0.1pct_fpr_ci_low",
    "tpr_at_0.1pct_fpr_ci_high",
    "tpr_at_1pct_fpr",
    "tpr_at_1pct_fpr_ci_low",
    "tpr_at_1pct_fpr_ci_high",
    "epsilon_median",
    "epsilon_single_threshold_median",
    "forget_score",
    "score",
    "challenge_forget_score",
    "challenge_score",
    "challenge_thresholds",
    "n_targets",
    "n_trials",
    "n_nonfinite",
    "diverged_models",
]
BOOTSTRAP_TRIALS = 200_000  # the intervals resample models; trials past this are subsampled


def _median(x: np.ndarray) -> float:
    return float(np.nanmedian(x)) if np.isfinite(x).any() else float("nan")


def _row(t: Trials, n_boot: int, seed: int, eps: np.ndarray, eps_single: np.ndarray, ratio: float) -> dict:
    labels, score = t.flat()
    row = summarize(labels, score, t.threshold)
    models = t.models()
    if len(score) > BOOTSTRAP_TRIALS:
        keep = np.random.default_rng(seed).choice(len(score), BOOTSTRAP_TRIALS, replace=False)
        labels, score, models = labels[keep], score[keep], models[keep]
    for k, (lo, hi) in bootstrap(labels, score, models, t.threshold, n_boot, seed).items():
        row[f"{k}_ci_low"], row[f"{k}_ci_high"] = lo, hi
    row["epsilon_median"] = _median(eps)
    row["epsilon_single_threshold_median"] = _median(eps_single)
    row["forget_score"] = challenge.forget_score(eps, population_size(t)) if np.isfinite(eps).any() else np.nan
    row["score"] = row["forget_score"] * ratio
    return row


def challenge_input_epsilon(s_in: np.ndarray, s_out: np.ndarray, is_in: np.ndarray, is_out: np.ndarray):
    """The challenge's own test: per example, the logit-scaled confidence (first view) of the
    models that unlearned it against the retrains whose half lacked it (disjoint models, as the
    challenge's two populations are), no folds. Returns (per-example epsilon (c,), models per
    population)."""
    u = [row[m] for row, m in zip(s_in[..., 0], is_in, strict=True)]
    r = [row[m] for row, m in zip(s_out[..., 0], is_out, strict=True)]
    n = int(min(is_in.sum(1).min(), is_out.sum(1).min())) if len(is_in) else 0
    return challenge.epsilons(u, r), n


CHALLENGE_MIN_THRESHOLDS = 10  # fewer in the median example's range: the challenge's own test is too coarse


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


def run(
    scores: pd.DataFrame | pa.Table,
    membership: pd.DataFrame,
    methods: Sequence[str],
    n_folds: int = 4,
    loss_cv_folds: int = 5,
    seed: int = 0,
    n_bootstrap: int = 100,
    lm_stats: pd.DataFrame | pa.Table | None = None,
    threads: int = 0,
    utility_ratio: Mapping[str, float] | None = None,
    attack_epsilons: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every attack on every method (controls included), the methods on up to ``threads``
    threads (0: one a CPU core). Returns (summary, per_example, roc).

    On the forget candidates: U-LiRA (online, offline, fixed variance), the population Gaussian
    and the population loss U-MIA; with ``lm_stats`` (the text task's io.LM_STATS rows, columns
    ``LM_COLUMNS``) also the LM population attacks ``population_zlib`` and ``population_min_k``
    (``population_threshold`` on the zlib ratio and the Min-K% probability). On the retained
    pool examples (outside C): plain LiRA (``lira_retained``: members D_i minus F_i vs
    non-members) on the method's own models, so its ``none`` row is the originals' vulnerability
    and each method's row shows how unlearning moved it.

    Every row carries the challenge's forget score of the attack's per-example epsilons
    (``forget_score``) and of its own input (``challenge_forget_score``: phi of the method's models
    against the retrains', umia.challenge), and, with ``utility_ratio`` (method -> retain ratio x
    test ratio, umia.utility), the final scores ``score`` and ``challenge_score``, and
    ``challenge_thresholds``, how many of that test's thresholds the median example's range of phi
    spans (under ``CHALLENGE_MIN_THRESHOLDS`` it is too coarse: ``challenge_grid_warning``). Without
    ``attack_epsilons`` the attacks' challenge epsilons (about 1 ms an example and attack, most of
    the time here) are left NaN, and with them ``epsilon``, ``forget_score`` and ``score``: the
    tuning stage, which reads none of them, runs so; the challenge's own test is always computed.
    """
    n_models = int(membership["model_id"].max()) + 1
    n_pool = int(membership["example_id"].max()) + 1
    table = scores if isinstance(scores, pa.Table) else pa.Table.from_pandas(scores, preserve_index=False)
    views = [v for v in ("identity", "mirror") if v in set(_codes(table["view"])[1])]
    views += sorted(set(_codes(table["view"])[1]) - set(views))
    n_examples = int(pc.max(table["example_id"]).as_py()) + 1
    labels = np.zeros(n_examples, np.int64)
    labels[np.asarray(table["example_id"])] = np.asarray(table["label"])

    in_train = np.zeros((n_models, n_pool), bool)
    in_forget = np.zeros((n_models, n_pool), bool)
    ix = (membership["model_id"].to_numpy(), membership["example_id"].to_numpy())
    in_train[ix], in_forget[ix] = membership["in_train"].to_numpy(), membership["in_forget"].to_numpy()
    cand = np.flatnonzero(in_forget.any(axis=0))  # (c,)
    kept = np.setdiff1d(np.arange(n_pool), cand)  # retained examples: never in a forget set
    is_in, is_out = in_forget[:, cand].T, ~in_train[:, cand].T  # (c, N)
    test_ids = np.arange(n_pool, n_examples)

    cube = cubes(table, n_models, views, n_examples)
    del table
    lm = None if lm_stats is None else lm_cubes(lm_stats, n_models, n_examples)
    if "retrain" not in cube:
        raise ValueError("the score table has no retrain models; the OUT distributions come from them")
    s_out = cube["retrain"].phi[:, :, cand].transpose(2, 0, 1)  # (c, N, V)
    grid = challenge_thresholds(s_out[..., 0], is_out)
    if warning := challenge_grid_warning(s_out[..., 0], is_out):
        log.warning(warning)

    def one_method(m: str) -> tuple[list, list, list]:
        rows, per_ex, rocs = [], [], []
        phi = cube[m].phi
        diverged = int((~np.isfinite(phi).all(axis=(1, 2))).sum())
        if diverged:
            log.warning("method %s: %d of %d models have non-finite scores (diverged)", m, diverged, n_models)
        s_in = phi[:, :, cand].transpose(2, 0, 1)
        results = {name: fn(s_in, s_out, is_in, is_out, n_folds) for name, fn in ATTACKS.items()}
        loss = cube[m].loss[:, 0, :]  # (N, n_examples): first view
        results["population_loss"] = population_loss(
            loss[:, cand].T, is_in, labels[cand], loss[:, test_ids].T, labels[test_ids], loss_cv_folds, seed
        )
        if lm is not None and m in lm and "retrain" in lm:
            for name, (stat, sign) in LM_ATTACKS.items():
                lm_in, lm_out = sign * lm[m][stat][:, cand].T, sign * lm["retrain"][stat][:, cand].T  # (c, N)
                results[name] = population_threshold(lm_in, lm_out, is_in, is_out, n_folds)
        examples = dict.fromkeys(results, cand)
        if len(kept):
            s_kept = phi[:, :, kept].transpose(2, 0, 1)  # (kept, N, V)
            member = in_train[:, kept].T
            results["lira_retained"] = _kfold_gaussian(s_kept, s_kept, member, ~member, n_folds, "online")
            examples["lira_retained"] = kept
        ratio = (utility_ratio or {}).get(m, np.nan)
        eps_input, n_pop = challenge_input_epsilon(s_in, s_out, is_in, is_out)
        input_score = challenge.forget_score(eps_input, n_pop)
        for name, t in results.items():
            # the challenge's epsilon costs about 1 ms an example: on the candidates, not on the
            # thousands of retained examples (lira_retained keeps the single-threshold one only)
            on = attack_epsilons and name != "lira_retained"
            eps = challenge_epsilon(t) if on else np.full(len(examples[name]), np.nan)
            eps_single = single_threshold_epsilon(t)
            rows.append(
                {
                    "method": m,
                    "attack": name,
                    **_row(t, n_bootstrap, seed, eps, eps_single, ratio),
                    "challenge_forget_score": input_score,
                    "challenge_score": input_score * ratio,
                    "challenge_thresholds": grid,
                    "n_targets": n_models,
                    "diverged_models": diverged,
                }
            )
            acc, n = per_example_accuracy(t)
            ids = examples[name]
            per_ex.append(
                pd.DataFrame(
                    {
                        "method": m,
                        "attack": name,
                        "example_id": ids,
                        "label": labels[ids],
                        "accuracy": acc,
                        "epsilon": eps,
                        "epsilon_single_threshold": eps_single,
                        "n_trials": n,
                    }
                )
            )
            rocs.append(roc_points(*t.flat(), t.threshold).assign(method=m, attack=name))
        return rows, per_ex, rocs

    todo = []
    for m in ["none", "retrain", *methods]:
        if m not in cube:
            log.warning("method %s has no scores; left out of the tables", m)
        else:
            todo.append(m)
    # methods are independent: threads (numpy, scipy and scikit-learn release the GIL in their
    # heavy parts) share the score cube; the tables keep the method order
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(len(todo), threads or cores))
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one_method, todo))
    rows = [r for d in done for r in d[0]]
    per_ex = [p for d in done for p in d[1]]
    rocs = [r for d in done for r in d[2]]
    summary = pd.DataFrame(rows)[SUMMARY_COLUMNS]
    roc = pd.concat(rocs, ignore_index=True)[["method", "attack", "fpr", "tpr"]]
    return summary, pd.concat(per_ex, ignore_index=True), roc
