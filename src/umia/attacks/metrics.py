"""How strong an attack is: accuracy, AUC and TPR at low FPR over its trials, their intervals
from resampling target models, each example's accuracy, and the ROC curve as drawn."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from umia.attacks.trials import Trials


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


def roc_points(labels: np.ndarray, score: np.ndarray, threshold: float = 0.0, n: int = 400) -> pd.DataFrame:
    """The ROC curve, thinned to about ``n`` points spaced evenly in log FPR (for log-log plots)."""
    if labels.all() or not labels.any():
        return pd.DataFrame({"fpr": [], "tpr": []})
    fpr, tpr, _ = roc_curve(labels, np.where(np.isfinite(score), score, threshold))
    grid = np.r_[0.0, np.logspace(np.log10(max(fpr[fpr > 0].min(), 1e-6)), 0, n)]
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    return pd.DataFrame({"fpr": fpr[idx], "tpr": tpr[idx]})
