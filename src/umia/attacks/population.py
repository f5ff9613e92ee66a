"""Population U-MIAs: one attacker for every example. The loss attack of the unlearning literature,
and the threshold test the language-model statistics (zlib ratio, Min-K%) are attacked with. (The
population Gaussian attack is the Gaussian test of ``umia.attacks.ulira`` pooled over examples.)
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from umia.attacks.evidence import Evidence
from umia.attacks.trials import Trials, cross_fit


def _loss_trials(x: Evidence, rng: np.random.Generator, permute: bool):
    """The loss attack's held-out predictions, model by model: (score (c, N), [(y, proba - 0.5,
    model id) per model]); with ``permute``, each model's forget/test labels shuffled first (the
    attack's null: the same procedure where there is nothing to find)."""
    loss_forget, is_in, forget_labels = x.loss_in, x.is_in, x.candidate_labels
    loss_test, test_labels = x.loss_test, x.test_labels
    c, n = is_in.shape
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
        feats = np.concatenate([loss_forget[pos, i], loss_test[neg, i]])
        y = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
        if permute:
            y = rng.permutation(y)
        folds = min(x.loss_cv_folds, len(pos))
        if folds < 2:
            continue
        feat = np.log(np.clip(np.nan_to_num(feats, nan=np.inf), 1e-12, 1e12))[:, None]  # log-loss spreads the tail
        cv = StratifiedKFold(folds, shuffle=True, random_state=int(rng.integers(2**31)))
        proba = cross_val_predict(LogisticRegression(), feat, y, cv=cv, method="predict_proba")[:, 1]
        if not permute:
            score[pos, i] = proba[: len(pos)] - 0.5
        preds.append((y, proba - 0.5, np.full(len(y), i)))
    flat = (
        tuple(np.concatenate([p[k] for p in preds]) for k in range(3))
        if preds
        else (np.zeros(0, bool), np.zeros(0), np.zeros(0, int))
    )
    return score, flat


def population_loss(x: Evidence) -> Trials:
    """The population loss U-MIA of the unlearning literature (SCRUB; NeurIPS 2023 challenge).

    For each unlearned model i: a logistic regression on the loss of its forget examples (label 1)
    against the loss of test examples of the same classes (label 0), class-balanced by sampling,
    cross-validated; every prediction is made by a model that did not see that example. It is fit
    on the target model itself (no shadow models), so fitting and scoring are one step here.

    Reads ``loss_in`` (c, N), ``is_in`` (c, N), ``candidate_labels`` (c,), ``loss_test``
    (n_test, N), ``test_labels`` (n_test,), ``loss_cv_folds`` and ``seed``. The trials are the
    forget examples (IN only), scored by the held-out probability of "forgotten" minus 0.5;
    ``pooled`` holds every held-out prediction (forget and test examples) for the summary metrics.
    Cross-validation on a few dozen examples a model falls below 0.5 where there is nothing to
    find (a held-out example's own class is the one the training folds lack), so ``null`` holds
    the same procedure on permuted labels (its own random stream): the level the controls are
    judged against.
    """
    score, pooled = _loss_trials(x, np.random.default_rng(x.seed), permute=False)
    _, null = _loss_trials(x, np.random.default_rng([x.seed, 1]), permute=True)
    is_in = x.is_in
    return Trials(score, is_in, is_in & np.isfinite(score), pooled=pooled, examples=x.candidates, null=null)


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


class BestThreshold:
    """One threshold for every example, as an estimator: ``fit`` sets ``threshold_``, the one with
    the best accuracy on the IN samples against the OUT samples; ``score`` is a target's statistic
    minus it, so the attack's own threshold is 0."""

    def fit(self, s_in: np.ndarray, s_out: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray) -> BestThreshold:
        self.threshold_ = best_threshold(s_in[in_mask], s_out[out_mask])
        return self

    def score(self, target: np.ndarray) -> np.ndarray:
        return target - self.threshold_


def population_threshold(s_in, s_out, is_in, is_out, n_folds: int = 4, shadows=None, seed: int = 0) -> Trials:
    """A population U-MIA on one per-sequence statistic (larger means "trained, then unlearned"):
    one threshold for every example, the one with the best accuracy on the IN trials (the method's
    models that unlearned x) and every retrain (none saw x) of the other folds' models; the
    statistic of a held-out target minus that threshold.

    s_in, s_out: (c, N) (no view axis: text has one); is_in, is_out: (c, N) boolean. Non-finite
    statistics are left out of the fit and are undecided on a target."""
    return cross_fit(
        BestThreshold(), s_in, s_out, is_in, is_out, n_folds, np.ones_like(is_out, dtype=bool), shadows, seed
    )


def _lm_attack(x: Evidence, statistic: str, sign: float) -> Trials | None:
    if statistic not in x.lm_in or statistic not in x.lm_out:
        return None
    s_in, s_out = sign * x.lm_in[statistic], sign * x.lm_out[statistic]
    t = population_threshold(s_in, s_out, x.is_in, x.is_out, x.n_folds, x.shadows, x.shadow_seed)
    return Trials(t.score, t.label, t.valid, examples=x.candidates)


def population_zlib(x: Evidence) -> Trials | None:
    """The zlib-ratio attack on language models (Carlini et al., USENIX Security 2021) as a population U-MIA: a low
    ratio of the model's loss to the text's zlib length leans IN. None without LM statistics."""
    return _lm_attack(x, "zlib_ratio", -1.0)


def population_min_k(x: Evidence) -> Trials | None:
    """The Min-K% probability attack (Shi et al., ICLR 2024) as a population U-MIA: a high mean of the
    lowest k% token log-probabilities leans IN. None without LM statistics."""
    return _lm_attack(x, "min_k", 1.0)
