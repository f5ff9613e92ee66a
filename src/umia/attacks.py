"""U-MIAs fit from the score table: per-example U-LiRA, the population Gaussian U-MIA and the
population loss U-MIA.

Notation, for one unlearning method m over the forget candidates C (c examples), N models and
V views:

- ``s_in``  (c, N, V): phi of method m's models (originals for ``none``, retrains for ``retrain``);
  meaningful where ``is_in`` (x in F_i: trained, then unlearned);
- ``s_out`` (c, N, V): phi of the retrain models; meaningful where ``is_out`` (x not in D_i: never
  trained);
- ``is_in``, ``is_out`` (c, N) boolean. For a candidate every model is one or the other.

Each (example, model) pair is one trial. Target models are held out by K-fold over model ids
(pairs 2k, 2k+1 stay together): the attacker for a fold is fit on the other folds only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_predict

log = logging.getLogger(__name__)

SD_FLOOR = 1e-6


@dataclass(frozen=True)
class Trials:
    """The outcome of one attack on one method: a statistic per (example, model) trial.

    score: (c, N) float, larger means "was trained and unlearned"; nan where no trial.
    label: (c, N) bool, the truth (x in F_i); valid: (c, N) bool, where a trial exists.
    threshold: the decision threshold of the attack's own rule (0 for a likelihood ratio).
    pooled: for attacks that also classify non-candidates (the loss attack's test examples), the
    flat (labels, scores) of every held-out prediction, which the summary metrics use instead.
    """

    score: np.ndarray
    label: np.ndarray
    valid: np.ndarray
    threshold: float = 0.0
    pooled: tuple[np.ndarray, np.ndarray] | None = None

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) of every trial, for the summary metrics."""
        if self.pooled is not None:
            return self.pooled
        return self.label[self.valid], self.score[self.valid]


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


def gaussian_llr(t: np.ndarray, mu_in, sd_in, mu_out, sd_out) -> np.ndarray:
    """Log-likelihood ratio of IN vs OUT Gaussians, summed over the last (view) axis."""
    return (norm.logpdf(t, mu_in, sd_in) - norm.logpdf(t, mu_out, sd_out)).sum(axis=-1)


def _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds: int, per_example: bool) -> Trials:
    c, n, _ = s_in.shape
    folds = fold_of(n, n_folds)
    target = np.where(is_in[..., None], s_in, s_out)  # (c, N, V): the model the adversary sees
    score = np.full((c, n), np.nan)
    for f in range(n_folds):
        fit = (folds != f)[None, :]  # (1, N)
        axis = 1 if per_example else (0, 1)  # moments of shape (c, 1, V), or (1, 1, V) pooled
        mu_i, sd_i, n_i = _masked_moments(s_in, (is_in & fit)[..., None], axis)
        mu_o, sd_o, n_o = _masked_moments(s_out, (is_out & fit)[..., None], axis)
        sd_i, sd_o = _sd_with_fallback(sd_i, n_i), _sd_with_fallback(sd_o, n_o)
        tgt = folds == f
        with np.errstate(invalid="ignore"):
            score[:, tgt] = gaussian_llr(target[:, tgt], mu_i, sd_i, mu_o, sd_o)
    valid = is_in | is_out
    return Trials(np.where(valid, score, np.nan), is_in, valid)


def ulira(s_in, s_out, is_in, is_out, n_folds: int = 4) -> Trials:
    """U-LiRA, online: per example, N(mu_in, sd_in^2) fit to phi of the models that unlearned it
    and N(mu_out, sd_out^2) to phi of the retrains that never saw it; the statistic is the
    log-likelihood ratio on the target model, summed over views."""
    return _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds, per_example=True)


def population_gaussian(s_in, s_out, is_in, is_out, n_folds: int = 4) -> Trials:
    """The same likelihood-ratio test with one IN and one OUT Gaussian per view, pooled over C."""
    return _kfold_gaussian(s_in, s_out, is_in, is_out, n_folds, per_example=False)


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
        preds.append((y, proba - 0.5))
    pooled = (
        (np.concatenate([p[0] for p in preds]), np.concatenate([p[1] for p in preds]))
        if preds
        else (np.zeros(0, bool), np.zeros(0))
    )
    return Trials(score, is_in, is_in & np.isfinite(score), pooled=pooled)


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    ok = fpr <= target
    return float(tpr[ok].max()) if ok.any() else 0.0


def summarize(labels: np.ndarray, score: np.ndarray, threshold: float = 0.0) -> dict:
    """Accuracy at the attack's threshold, AUC and TPR at 1% FPR over a flat set of trials."""
    finite = np.isfinite(score)
    s = np.where(finite, score, threshold)  # a non-finite statistic decides nothing: at the threshold
    acc = float(np.mean((s > threshold) == labels))
    if labels.all() or not labels.any():
        auc, tpr1 = float("nan"), float("nan")
    else:
        fpr, tpr, _ = roc_curve(labels, s)
        auc, tpr1 = float(roc_auc_score(labels, s)), tpr_at_fpr(fpr, tpr, 0.01)
    return {
        "accuracy": acc,
        "auc": auc,
        "tpr_at_1pct_fpr": tpr1,
        "n_trials": int(len(s)),
        "n_nonfinite": int((~finite).sum()),
    }


def per_example_accuracy(t: Trials) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy over each example's trials, and their number; shapes (c,)."""
    s = np.where(np.isfinite(t.score), t.score, t.threshold)
    correct = ((s > t.threshold) == t.label) & t.valid
    n = t.valid.sum(axis=1)
    with np.errstate(invalid="ignore"):
        return correct.sum(axis=1) / n, n


ATTACKS: dict[str, Callable] = {"ulira": ulira, "population_gaussian": population_gaussian}


@dataclass
class ScoreCube:
    """phi and loss of every model of one (stage, method): arrays (N, V, n_examples)."""

    phi: np.ndarray
    loss: np.ndarray


def cubes(scores: pd.DataFrame, n_models: int, views: Sequence[str], n_examples: int) -> dict[str, ScoreCube]:
    """Split the long score table into a cube per method (``none`` = originals, ``retrain``)."""
    out = {}
    vidx = {v: i for i, v in enumerate(views)}
    for method, df in scores.groupby("method", sort=False, observed=True):
        shape = (n_models, len(views), n_examples)
        phi, loss = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
        ix = (df["model_id"].to_numpy(), df["view"].map(vidx).to_numpy(), df["example_id"].to_numpy())
        phi[ix], loss[ix] = df["phi"].to_numpy(), df["loss"].to_numpy()
        out[str(method)] = ScoreCube(phi, loss)
    return out


def run(
    scores: pd.DataFrame,
    membership: pd.DataFrame,
    methods: Sequence[str],
    n_folds: int = 4,
    loss_cv_folds: int = 5,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every attack on every method (controls included). Returns (summary, per_example)."""
    n_models = int(membership["model_id"].max()) + 1
    n_pool = int(membership["example_id"].max()) + 1
    views = list(dict.fromkeys(scores["view"]))
    n_examples = int(scores["example_id"].max()) + 1
    labels = np.zeros(n_examples, np.int64)
    first = scores.drop_duplicates("example_id")
    labels[first["example_id"].to_numpy()] = first["label"].to_numpy()

    in_train = np.zeros((n_models, n_pool), bool)
    in_forget = np.zeros((n_models, n_pool), bool)
    ix = (membership["model_id"].to_numpy(), membership["example_id"].to_numpy())
    in_train[ix], in_forget[ix] = membership["in_train"].to_numpy(), membership["in_forget"].to_numpy()
    cand = np.flatnonzero(in_forget.any(axis=0))  # (c,)
    is_in, is_out = in_forget[:, cand].T, ~in_train[:, cand].T  # (c, N)
    test_ids = np.arange(n_pool, n_examples)

    cube = cubes(scores, n_models, views, n_examples)
    if "retrain" not in cube:
        raise ValueError("the score table has no retrain models; the OUT distributions come from them")
    s_out = cube["retrain"].phi[:, :, cand].transpose(2, 0, 1)  # (c, N, V)
    rows, per_ex = [], []
    for m in ["none", "retrain", *methods]:
        if m not in cube:
            log.warning("method %s has no scores; left out of the tables", m)
            continue
        s_in = cube[m].phi[:, :, cand].transpose(2, 0, 1)
        results = {name: fn(s_in, s_out, is_in, is_out, n_folds) for name, fn in ATTACKS.items()}
        loss = cube[m].loss[:, 0, :]  # (N, n_examples): first view
        results["population_loss"] = population_loss(
            loss[:, cand].T, is_in, labels[cand], loss[:, test_ids].T, labels[test_ids], loss_cv_folds, seed
        )
        for name, t in results.items():
            row = summarize(*t.flat(), t.threshold)
            rows.append({"method": m, "attack": name, **row, "n_targets": n_models})
            acc, n = per_example_accuracy(t)
            per_ex.append(
                pd.DataFrame(
                    {
                        "method": m,
                        "attack": name,
                        "example_id": cand,
                        "label": labels[cand],
                        "accuracy": acc,
                        "n_trials": n,
                    }
                )
            )
    summary = pd.DataFrame(rows)[
        ["method", "attack", "accuracy", "auc", "tpr_at_1pct_fpr", "n_targets", "n_trials", "n_nonfinite"]
    ]
    return summary, pd.concat(per_ex, ignore_index=True)
