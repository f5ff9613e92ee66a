"""U-LiRA, the per-example U-MIA, and the Gaussian likelihood-ratio test it shares with the
population Gaussian attack and with LiRA on the retained examples.

Each (example, model) pair is one trial: an IN trial targets the unlearned model U_i (x in F_i), an
OUT trial the retrain R_i (x not in D_i). The OUT distributions are fit on every retrain of the
training folds, not only those whose half lacked x: a retrain never sees any candidate (R_i is
trained on D_i minus F_i), so all N retrains are draws of "x never trained". The ``_half_out``
variant keeps the fit to the retrains with x not in D_i. Target models are held out by K-fold over
model ids (pairs 2k, 2k+1 stay together): the attacker for a fold is fit on the other folds only.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import gamma, norm

from umia.attacks.evidence import Evidence
from umia.attacks.trials import Trials, cross_fit

SD_FLOOR = 1e-6
LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
MODES = ("online", "offline", "fixed", "population")


def masked_moments(s: np.ndarray, mask: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation (ddof=0) and count of the finite ``s`` where ``mask``."""
    m = mask & np.isfinite(s)
    count = m.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m, s, 0.0).sum(axis=axis, keepdims=True) / count
        sd = np.sqrt((np.where(m, s - mean, 0.0) ** 2).sum(axis=axis, keepdims=True) / count)
    return mean, sd, count


def sd_with_fallback(sd: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Floor the spread, and give examples with fewer than two samples the median spread."""
    ok = (count >= 2) & np.isfinite(sd)
    fallback = np.median(sd[ok]) if ok.any() else 1.0
    return np.maximum(np.where(ok, sd, fallback), SD_FLOOR)


def pooled_sd(sd: np.ndarray, count: np.ndarray) -> np.ndarray:
    """One spread per view, pooled over examples: the root of the count-weighted mean of the
    within-example variances, shape (1, 1, V). (The LiRA reference code's fixed-variance branch
    takes the spread of all IN scores together, which mixes in the spread of the per-example
    means; we pool within-example variances instead, which is what a fixed variance models.)"""
    w = np.where(np.isfinite(sd) & (count >= 2), count, 0)
    var = (np.where(w > 0, sd, 0.0) ** 2 * w).sum(axis=(0, 1), keepdims=True) / np.maximum(
        w.sum(axis=(0, 1), keepdims=True), 1
    )
    return np.maximum(np.sqrt(var), SD_FLOOR)


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


class GaussianLRT:
    """The Gaussian likelihood-ratio test, as an estimator.

    mode: ``online`` (per-example IN and OUT Gaussians), ``offline`` (per-example OUT only, the
    two-sided ``offline_statistic``), ``fixed`` (per-example means, one spread per view pooled over
    examples and over IN/OUT), ``population`` (one IN and one OUT Gaussian per view over all
    examples). ``fit`` sets ``mu_in_``, ``sd_in_``, ``mu_out_``, ``sd_out_`` ((c, 1, V), or
    (1, 1, V) for ``population``; offline sets the OUT pair only); ``score`` maps any target's phi
    (c, n, V) to the statistic (c, n), larger meaning IN.
    """

    def __init__(self, mode: str = "online"):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = mode

    def fit(self, s_in: np.ndarray, s_out: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray) -> GaussianLRT:
        """s_in, s_out: (c, N, V); in_mask, out_mask: (c, N), the samples of each Gaussian."""
        axis = (0, 1) if self.mode == "population" else 1
        mu_o, sd_o, n_o = masked_moments(s_out, out_mask[..., None], axis)
        if self.mode == "offline":
            self.mu_out_, self.sd_out_ = mu_o, sd_with_fallback(sd_o, n_o)
            return self
        mu_i, sd_i, n_i = masked_moments(s_in, in_mask[..., None], axis)
        if self.mode == "fixed":
            sd_i = sd_o = pooled_sd(np.concatenate([sd_i, sd_o], 1), np.concatenate([n_i, n_o], 1))
        else:
            sd_i, sd_o = sd_with_fallback(sd_i, n_i), sd_with_fallback(sd_o, n_o)
        self.mu_in_, self.sd_in_, self.mu_out_, self.sd_out_ = mu_i, sd_i, mu_o, sd_o
        return self

    def score(self, target: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            if self.mode == "offline":
                return offline_statistic(target, self.mu_out_, self.sd_out_)
            return gaussian_llr(target, self.mu_in_, self.sd_in_, self.mu_out_, self.sd_out_)


def _every_retrain(x: Evidence) -> np.ndarray:
    return np.ones_like(x.is_out, dtype=bool)  # no retrain saw a candidate


def _lrt(x: Evidence, mode: str, every_retrain: bool = True) -> Trials:
    out_fit = _every_retrain(x) if every_retrain else None
    t = cross_fit(GaussianLRT(mode), x.s_in, x.s_out, x.is_in, x.is_out, x.n_folds, out_fit, x.shadows, x.shadow_seed)
    return Trials(t.score, t.label, t.valid, examples=x.candidates)


def ulira(x: Evidence) -> Trials:
    """U-LiRA, online: per example, N(mu_in, sd_in^2) fit to phi of the models that unlearned it
    and N(mu_out, sd_out^2) to phi of every retrain (none saw it); the statistic is the
    log-likelihood ratio on the target model, summed over views."""
    return _lrt(x, "online")


def ulira_half_out(x: Evidence) -> Trials:
    """U-LiRA, online, with the OUT Gaussian fit only on the retrains whose half lacked x (the
    design's original fit; half the OUT samples of ``ulira``)."""
    return _lrt(x, "online", every_retrain=False)


def ulira_offline(x: Evidence) -> Trials:
    """U-LiRA, offline: only the OUT Gaussian of each example (no unlearned shadow model needed);
    the statistic is two-sided (``offline_statistic``): how far into either tail of OUT the
    target's phi lies."""
    return _lrt(x, "offline")


def ulira_fixed_variance(x: Evidence) -> Trials:
    """U-LiRA, online with one spread per view pooled over examples and over IN/OUT: per-example
    means, a shared variance; steadier than per-example spreads when N is small."""
    return _lrt(x, "fixed")


def population_gaussian(x: Evidence) -> Trials:
    """The same likelihood-ratio test with one IN and one OUT Gaussian per view, pooled over C."""
    return _lrt(x, "population")


def lira_retained(x: Evidence) -> Trials | None:
    """Plain LiRA on the retained pool examples (outside C): members (D_i minus F_i) against
    non-members, on the method's own models, so the ``none`` row is the originals' vulnerability
    and each method's row shows how unlearning moved it. None without retained examples."""
    if x.kept is None or not len(x.kept):
        return None
    member = x.kept_member
    t = cross_fit(
        GaussianLRT("online"), x.kept_phi, x.kept_phi, member, ~member, x.n_folds, None, x.shadows, x.shadow_seed
    )
    return Trials(t.score, t.label, t.valid, examples=x.kept)
