"""U-RMIA (umia.attacks.rmia): known answers, and the offline form checked against the authors'
code (ML Privacy Meter's ``run_rmia``, read at privacytrustlab/ml_privacy_meter e384af8): there,
per target model, ``mean_x = (1 + a) / 2 * mean_out_x + (1 - a) / 2`` over the OUT reference
models, the same for the population z, and the score ``mean over z of (p_x / mean_x) / (p_z /
mean_z) > 1``. The reference below recomputes that loop by loop, in its own words."""

import numpy as np
import pytest
from scipy.special import expit

from umia.attacks import Evidence, summarize
from umia.attacks.rmia import probability, relative_score, urmia, urmia_offline
from umia.attacks.trials import fold_of


def test_relative_score_is_the_share_of_the_population_beaten():
    z = np.array([1.0, 3.0, 1.5, 0.5])
    np.testing.assert_allclose(relative_score(np.array([2.0, 0.1, 4.0]), z), [0.75, 0.0, 1.0])
    np.testing.assert_allclose(relative_score(np.array([2.0]), z, gamma=2.0), [0.25])  # z < 1
    assert np.isnan(relative_score(np.array([np.nan]), z)[0])


def test_probability_is_the_views_mean_of_sigmoid_phi():
    phi = np.array([[[0.0, np.log(3.0)]]])  # p = 0.5 and 0.75
    assert probability(phi)[0, 0] == pytest.approx(0.625)


def _evidence(seed, c=30, n=16, v=2, nz=50, shift=1.5, a=0.3):
    rng = np.random.default_rng(seed)
    is_in = np.zeros((c, n), bool)
    for k in range(0, n, 2):  # pairs split each example: one model forgot it, its pair never saw it
        first = rng.random(c) < 0.5
        is_in[:, k], is_in[:, k + 1] = first, ~first
    mu = rng.normal(0, 1, (c, 1, 1))
    s_in = mu + shift * is_in[..., None] + rng.normal(0, 1, (c, n, v))
    s_out = mu + rng.normal(0, 1, (c, n, v))
    z_in, z_out = rng.normal(0, 1, (nz, n, v)), rng.normal(0, 1, (nz, n, v))
    return Evidence(s_in, s_out, is_in, ~is_in, n_folds=4, z_in=z_in, z_out=z_out, rmia_a=a)


def _reference_offline(x: Evidence) -> np.ndarray:
    """The authors' offline RMIA on each target model, loop by loop (gamma 1)."""
    c, n = x.is_in.shape
    p_in, p_out = expit(x.s_in).mean(-1), expit(x.s_out).mean(-1)
    z_in, z_out = expit(x.z_in).mean(-1), expit(x.z_out).mean(-1)
    folds = fold_of(n, x.n_folds)
    out = np.full((c, n), np.nan)
    for t in range(n):
        refs = [j for j in range(n) if folds[j] != folds[t]]
        for i in range(c):
            mean_out_x = np.mean([p_out[i, j] for j in refs])
            mean_x = (1 + x.rmia_a) / 2 * mean_out_x + (1 - x.rmia_a) / 2
            p_x = p_in[i, t] if x.is_in[i, t] else p_out[i, t]
            z_target = z_in[:, t] if x.is_in[i, t] else z_out[:, t]
            hits = 0
            for k in range(len(z_target)):
                mean_out_z = np.mean([z_out[k, j] for j in refs])
                mean_z = (1 + x.rmia_a) / 2 * mean_out_z + (1 - x.rmia_a) / 2
                hits += (p_x / mean_x) / (z_target[k] / mean_z) > 1.0
            out[i, t] = hits / len(z_target) - 0.5
    return out


@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
def test_offline_matches_the_authors_formula(a):
    x = _evidence(0, c=8, n=8, nz=20, a=a)
    np.testing.assert_allclose(urmia_offline(x).score, _reference_offline(x), atol=1e-12)


def test_online_averages_the_in_and_out_references():
    """One example, two folds of one pair each: the attacker on fold 0 has one IN reference (model
    2 forgot x) and one OUT reference (retrain 2 and 3); p(x) = (p_IN + p_OUT) / 2."""
    p = lambda q: np.log(q / (1 - q))  # noqa: E731  (phi of a probability)
    is_in = np.array([[True, False, True, False]])
    s_in = p(np.array([[0.9, 0.5, 0.8, 0.5]]))[..., None]
    s_out = p(np.array([[0.4, 0.4, 0.4, 0.2]]))[..., None]
    z = p(np.full((3, 4), 0.5))[..., None]
    x = Evidence(s_in, s_out, is_in, ~is_in, n_folds=2, z_in=z, z_out=z)
    t = urmia(x)
    # model 0 (IN): p(x|U_0) = 0.9; refs of fold 1 (models 2, 3): p_IN = 0.8, p_OUT = mean(0.4, 0.2) = 0.3
    # p(x) = 0.55, ratio 1.636 > every z's 0.5 / 0.5 = 1: score 1 - 0.5
    assert t.score[0, 0] == pytest.approx(0.5)
    # model 1 (OUT, the retrain): p(x|R_1) = 0.4 < 0.55: beats no z
    assert t.score[0, 1] == pytest.approx(-0.5)


def test_controls_chance_when_nothing_differs_and_strong_when_unlearning_leaves_a_trace():
    chance = urmia_offline(_evidence(1, c=200, n=16, shift=0.0))
    strong = urmia_offline(_evidence(1, c=200, n=16, shift=2.0))
    assert abs(summarize(*chance.flat(), chance.threshold)["accuracy"] - 0.5) < 0.04
    assert summarize(*strong.flat(), strong.threshold)["auc"] > 0.8
    online = urmia(_evidence(1, c=200, n=16, shift=2.0))
    assert summarize(*online.flat(), online.threshold)["auc"] > 0.8


def test_no_population_no_attack_and_a_out_of_range_is_refused():
    x = _evidence(2)
    assert urmia(Evidence(x.s_in, x.s_out, x.is_in, x.is_out)) is None
    with pytest.raises(ValueError, match=r"a must be in \[0, 1\], not 1.5"):
        urmia_offline(Evidence(x.s_in, x.s_out, x.is_in, x.is_out, z_in=x.z_in, z_out=x.z_out, rmia_a=1.5))
