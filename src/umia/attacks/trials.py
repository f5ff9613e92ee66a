"""What every attack returns, and the K-fold loop that keeps an attacker from seeing its target.

An attack on one method is a statistic per (example, model) trial (``Trials``). The attackers that
are fit from shadow models are estimators in scikit-learn's habit: ``fit`` on the scores of some
models sets trailing-underscore attributes and returns the estimator, ``score`` takes any target's
scores, so an attacker fit on shadow models can score a model from outside the study.
``cross_fit`` is the K-fold loop over model ids, written once: each fold's models are scored by an
estimator fit on the other folds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Trials:
    """The outcome of one attack on one method: a statistic per (example, model) trial.

    score: (c, N) float, larger means "was trained and unlearned"; nan where no trial.
    label: (c, N) bool, the truth (x in F_i); valid: (c, N) bool, where a trial exists.
    threshold: the decision threshold of the attack's own rule (0 for a likelihood ratio).
    pooled: for attacks that also classify non-candidates (the loss attack's test examples), the
    flat (labels, scores, model ids) of every held-out prediction, which the summary uses instead.
    examples: (c,) the example ids of the rows (None: the rows are the forget candidates).
    null: for an attack whose chance level is not 0.5 (the loss attack's cross-validation on small
    samples falls below it), the flat (labels, scores, model ids) of the same attack on permuted
    labels: its null, which the controls are judged against.
    """

    score: np.ndarray
    label: np.ndarray
    valid: np.ndarray
    threshold: float = 0.0
    pooled: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    examples: np.ndarray | None = None
    null: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

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


class Estimator(Protocol):
    """An attacker fit from shadow models' scores: ``fit`` returns itself, ``score`` any target's."""

    def fit(self, s_in: np.ndarray, s_out: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray) -> Estimator: ...

    def score(self, target: np.ndarray) -> np.ndarray: ...


def fold_of(n_models: int, n_folds: int) -> np.ndarray:
    """Fold of each model id, shape (N,): pairs (2k, 2k+1) share a fold."""
    return (np.arange(n_models) // 2) % n_folds


def shadow_models(folds: np.ndarray, fold: int, shadows: int | None, rng: np.random.Generator | None) -> np.ndarray:
    """The models an attacker on ``fold`` may fit on, (N,) boolean: every model of the other folds,
    or ``shadows`` of them drawn at random in whole pairs (2k, 2k+1), for the efficiency analysis
    (how many shadow models an attack needs). ValueError where there are not that many."""
    fit = folds != fold
    if shadows is None:
        return fit
    if shadows < 2 or shadows % 2:
        raise ValueError(f"shadow models come in pairs: {shadows} is not an even number of at least 2")
    pairs = np.unique(np.flatnonzero(fit) // 2)
    if shadows // 2 > len(pairs):
        raise ValueError(f"{shadows} shadow models asked for, but the other folds hold {2 * len(pairs)}")
    chosen = rng.choice(pairs, shadows // 2, replace=False)
    return fit & np.isin(np.arange(len(folds)) // 2, chosen)


def cross_fit(
    estimator: Estimator,
    s_in: np.ndarray,
    s_out: np.ndarray,
    is_in: np.ndarray,
    is_out: np.ndarray,
    n_folds: int,
    out_fit: np.ndarray | None = None,
    shadows: int | None = None,
    seed: int = 0,
) -> Trials:
    """Every model a target once, scored by a copy of ``estimator`` fit on the other folds' models.

    s_in, s_out: (c, N) or (c, N, V), the statistic of the method's models and of the retrains;
    is_in, is_out: (c, N) boolean, the trials (a target is ``s_in`` where ``is_in``, else
    ``s_out``); ``out_fit`` (c, N): the models whose ``s_out`` the OUT fit may use (default
    ``is_out``); ``shadows``: fit each fold's attacker on that many models of the other folds,
    drawn in pairs with ``seed`` (``shadow_models``), not on all of them.
    """
    n = s_in.shape[1]
    out_fit = is_out if out_fit is None else out_fit
    folds = fold_of(n, n_folds)
    pick = is_in.reshape(is_in.shape + (1,) * (s_in.ndim - 2))
    target = np.where(pick, s_in, s_out)  # the model the adversary sees
    score = np.full(is_in.shape, np.nan)
    rng = np.random.default_rng(seed) if shadows is not None else None
    for f in range(n_folds):
        fit = shadow_models(folds, f, shadows, rng)[None, :]  # (1, N)
        held_out = folds == f
        fitted = copy.copy(estimator).fit(s_in, s_out, is_in & fit, out_fit & fit)
        score[:, held_out] = fitted.score(target[:, held_out])
    valid = is_in | is_out
    return Trials(np.where(valid, score, np.nan), is_in, valid)
