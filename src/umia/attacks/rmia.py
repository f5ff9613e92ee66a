"""U-RMIA: RMIA (Zarifzadeh et al., ICML 2024, "Low-Cost High-Power Membership Inference
Attacks") adapted to unlearning.

RMIA compares the target model's probability of an example with the reference models', relative to
a population of non-members z: with ``p(x|t)`` the target's probability of x's true label and
``p(x)`` its average over reference models, the score of x is the share of population examples z
for which ``(p(x|t) / p(x)) / (p(z|t) / p(z)) > gamma``. Adapted to unlearning (umia), the target is
the model a trial shows the attacker (the unlearned model, or the retrain), the population is the
test split (never trained on by any model), and the reference models are the shadow models of the
other folds (K-fold over model ids, as every attack here):

- **online** (``urmia``): the retrains (none saw x: OUT) and the unlearned shadows whose forget set
  held x (IN); ``p(x) = (p_IN(x) + p_OUT(x)) / 2``, as the paper's online form; ``p(z)`` the mean
  over both kinds of reference model (all OUT for z);
- **offline** (``urmia_offline``): the retrains only; ``p(x) = (1 + a) / 2 p_OUT(x) + (1 - a) / 2``
  and likewise ``p(z)``, the offline approximation of the authors' code (ML Privacy Meter,
  ``run_rmia``: ``mean_x = (1 + offline_a) / 2 * mean_out_x + (1 - offline_a) / 2``, ``gamma`` 1).

The probability of the true label is read from the score table's phi, the logit-scaled
confidence: ``p = sigmoid(phi)``, averaged over the views (RMIA averages it over augmentations).
The statistic is the score minus 0.5 (the target is more likely than half the population), so the
attack's own threshold is 0.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from umia.attacks.evidence import Evidence
from umia.attacks.trials import Trials, fold_of, shadow_models

GAMMA = 1.0


def probability(phi: np.ndarray) -> np.ndarray:
    """p(true label) from phi = log p - log(1 - p), averaged over the last (view) axis."""
    return expit(np.asarray(phi, np.float64)).mean(axis=-1)


def _masked_mean(p: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of p (rows, N) over the columns where ``mask`` (rows, N) and p is finite; nan where none."""
    m = mask & np.isfinite(p)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m, p, 0.0).sum(1) / m.sum(1)


def relative_score(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """The share of the population ratios ``ratio_z`` (n_z,) that ``ratio_x`` (c,) beats by more than
    ``gamma``: mean over z of 1[ratio_x / ratio_z > gamma], for positive ratios; nan where
    ``ratio_x`` is not finite."""
    z = np.sort(ratio_z[np.isfinite(ratio_z) & (ratio_z > 0)])
    if not len(z):
        return np.full(len(ratio_x), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        counts = np.searchsorted(z, ratio_x / gamma, side="left")  # z < x / gamma
    return np.where(np.isfinite(ratio_x), counts / len(z), np.nan)


def _urmia(x: Evidence, online: bool) -> Trials | None:
    if x.z_in is None or x.z_out is None:
        return None  # no population in this study
    if not 0 <= x.rmia_a <= 1:
        raise ValueError(f"U-RMIA's a must be in [0, 1], not {x.rmia_a}")
    c, n = x.is_in.shape
    p_in, p_out = probability(x.s_in), probability(x.s_out)  # (c, N)
    z_in, z_out = probability(x.z_in), probability(x.z_out)  # (n_z, N)
    target_x = np.where(x.is_in, p_in, p_out)  # what the attacker sees of each trial's model
    folds = fold_of(n, x.n_folds)
    rng = np.random.default_rng(x.shadow_seed) if x.shadows is not None else None
    score = np.full((c, n), np.nan)
    for f in range(x.n_folds):
        refs = shadow_models(folds, f, x.shadows, rng)  # (N,)
        out_x = _masked_mean(p_out, np.broadcast_to(refs, p_out.shape))  # every reference retrain: OUT
        out_z = _masked_mean(z_out, np.broadcast_to(refs, z_out.shape))
        if online:
            in_x = _masked_mean(p_in, x.is_in & refs)  # the unlearned shadows that forgot x: IN
            mean_x = (in_x + out_x) / 2
            mean_z = (_masked_mean(z_in, np.broadcast_to(refs, z_in.shape)) + out_z) / 2
        else:
            mean_x = (1 + x.rmia_a) / 2 * out_x + (1 - x.rmia_a) / 2
            mean_z = (1 + x.rmia_a) / 2 * out_z + (1 - x.rmia_a) / 2
        for t in np.flatnonzero(folds == f):
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio_x = target_x[:, t] / mean_x
            # the population under the target: the unlearned model of an IN trial, the retrain of an
            # OUT trial; the two differ per trial, so each kind is scored against its own population
            for kind, z_t in ((True, z_in[:, t]), (False, z_out[:, t])):
                rows = x.is_in[:, t] == kind
                if rows.any():
                    with np.errstate(invalid="ignore", divide="ignore"):
                        ratio_z = z_t / mean_z
                    score[rows, t] = relative_score(ratio_x[rows], ratio_z) - 0.5
    valid = x.is_in | x.is_out
    return Trials(np.where(valid, score, np.nan), x.is_in, valid, examples=x.candidates)


def urmia(x: Evidence) -> Trials | None:
    """U-RMIA, online: the retrains and the unlearned shadows as reference models."""
    return _urmia(x, online=True)


def urmia_offline(x: Evidence) -> Trials | None:
    """U-RMIA, offline: the retrains only, with the offline approximation's ``a`` (``rmia_a``)."""
    return _urmia(x, online=False)
