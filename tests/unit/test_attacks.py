"""umia.attacks: U-LiRA against the analytic Bayes accuracy, against a slow reference, and the
population attacks and summary metrics.

Tolerances: accuracy over n independent trials with success probability p has binomial
standard error sqrt(p (1 - p) / n). The U-LiRA tests below use 50 examples x 400 models =
20,000 trials, so SE <= 0.0035; we allow 5 SE (0.018). The fitted Gaussians rest on ~150 models
per side per example, which costs well under 0.005 of accuracy against the true-parameter Bayes
rule (checked by simulation over 30 seeds: mean 0.6915 vs Phi(0.5) = 0.6915, spread 0.0027).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.stats import gamma, norm

from umia import attacks as A
from umia import registry
from umia.attacks import Evidence, Trials, challenge, population_gaussian, summarize, ulira
from umia.attacks.ulira import SD_FLOOR, masked_moments, pooled_sd


def population_loss(loss_forget, is_in, forget_labels, loss_test, test_labels, cv_folds=5, seed=0) -> Trials:
    """The loss attack on its arrays (the registered function reads them from an Evidence)."""
    x = Evidence(
        None,
        None,
        is_in,
        ~is_in,
        loss_in=loss_forget,
        candidate_labels=forget_labels,
        loss_test=loss_test,
        test_labels=test_labels,
        loss_cv_folds=cv_folds,
        seed=seed,
    )
    return A.population_loss(x)


def _balanced_membership(rng, c: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """is_in (c, N) like the plan: models 2k and 2k+1 complementary; is_out its complement."""
    half = rng.random((c, n // 2)) < 0.5
    is_in = np.empty((c, n), bool)
    is_in[:, 0::2], is_in[:, 1::2] = half, ~half
    return is_in, ~is_in


def _gaussian_scores(seed, c=50, n=400, v=1, d=1.0, spread=10.0):
    """Per example c: IN ~ N(mu_c + d, 1), OUT ~ N(mu_c, 1), mu_c ~ U(-spread, spread); views are
    independent draws around the same means."""
    rng = np.random.default_rng(seed)
    is_in, is_out = _balanced_membership(rng, c, n)
    mu = rng.uniform(-spread, spread, (c, 1, 1))
    s_in = mu + d + rng.standard_normal((c, n, v))
    s_out = mu + rng.standard_normal((c, n, v))
    return s_in, s_out, is_in, is_out


def _accuracy(t: Trials) -> float:
    return summarize(*t.flat(), t.threshold)["accuracy"]


def _se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


# --- U-LiRA: known answers ------------------------------------------------------------------


def test_ulira_reaches_bayes_accuracy():
    """Equal-variance Gaussians a distance d apart: the Bayes accuracy is Phi(d / 2)."""
    d, n_trials = 1.0, 50 * 400
    t = ulira(Evidence.of(*_gaussian_scores(0, d=d)))
    assert t.valid.sum() == n_trials and np.isfinite(t.score[t.valid]).all()
    bayes = norm.cdf(d / 2)  # 0.691
    assert abs(_accuracy(t) - bayes) < 5 * _se(bayes, n_trials)


def test_ulira_two_views_add_evidence():
    """Two views with independent noise: summed LLRs act like one test at distance d*sqrt(2), so
    the accuracy rises to Phi(d*sqrt(2)/2) = 0.760 (from 0.691 with one view)."""
    d, n_trials = 1.0, 50 * 400
    acc = _accuracy(ulira(Evidence.of(*_gaussian_scores(1, v=2, d=d))))
    target = norm.cdf(d * math.sqrt(2) / 2)
    assert abs(acc - target) < 5 * _se(target, n_trials)
    assert acc > norm.cdf(d / 2) + 0.04  # clearly above the one-view accuracy


def test_ulira_at_chance_when_in_equals_out():
    """Identical IN and OUT distributions: accuracy 0.5 within 5 binomial SE (0.018). Trials of
    one example share a fitted rule, which inflates the spread a little (simulated SD 0.0046, so
    the bound is still ~4 simulated SD)."""
    t = ulira(Evidence.of(*_gaussian_scores(2, d=0.0)))
    assert abs(_accuracy(t) - 0.5) < 5 * _se(0.5, 50 * 400)


def test_per_example_beats_population_when_means_vary():
    """With mu_c spread over [-10, 10] the pooled Gaussians (SD ~5.8) barely see a shift of 1
    (simulated accuracy 0.52), while per-example U-LiRA gets Phi(0.5) = 0.69: claim 1 of the
    design."""
    scores = _gaussian_scores(3, d=1.0, spread=10.0)
    per_example = _accuracy(ulira(Evidence.of(*scores)))
    pooled = _accuracy(population_gaussian(Evidence.of(*scores)))
    assert per_example > pooled + 0.12
    assert pooled < 0.56


def test_population_gaussian_matches_ulira_when_means_equal():
    """If every example has the same distributions the pooled fit is as good as per-example."""
    scores = _gaussian_scores(4, d=1.0, spread=0.0)
    bayes = norm.cdf(0.5)
    assert abs(_accuracy(population_gaussian(Evidence.of(*scores))) - bayes) < 5 * _se(bayes, 50 * 400)


def test_fold_of_keeps_pairs_together():
    f = A.fold_of(12, 4)
    assert f.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1]


# --- U-LiRA: against a slow reference -------------------------------------------------------


def _reference(s_in, s_out, is_in, is_out, n_folds, per_example=True, out_all=True):
    """Loops over folds, examples and views, as the design states it: the OUT fit on every
    retrain of the other folds (``out_all``) or only on those with x not in D_i. Each example
    needs >= 2 fitting samples per side here (the fallback for fewer is checked separately)."""
    c, n, v = s_in.shape
    folds = (np.arange(n) // 2) % n_folds
    out = np.full((c, n), np.nan)
    for f in range(n_folds):
        fit = folds != f
        for e in range(c):
            rows = [e] if per_example else list(range(c))
            llr = np.zeros(n)
            for k in range(v):
                ins = np.concatenate([s_in[r, fit & is_in[r], k] for r in rows])
                outs = np.concatenate([s_out[r, fit & (is_out[r] | out_all), k] for r in rows])
                assert len(ins) >= 2 and len(outs) >= 2
                mu_i, sd_i = ins.mean(), max(ins.std(ddof=0), SD_FLOOR)
                mu_o, sd_o = outs.mean(), max(outs.std(ddof=0), SD_FLOOR)
                for m in np.flatnonzero(folds == f):
                    x = s_in[e, m, k] if is_in[e, m] else s_out[e, m, k]
                    llr[m] += norm.logpdf(x, mu_i, sd_i) - norm.logpdf(x, mu_o, sd_o)
            out[e, folds == f] = llr[folds == f]
    return out


def _small_random(seed, c=7, n=16, v=2):
    rng = np.random.default_rng(seed)
    is_in, is_out = _balanced_membership(rng, c, n)
    scale = rng.uniform(0.2, 3.0, (c, 1, 1))
    s_in = rng.normal(0, 2, (c, 1, 1)) + 0.7 + scale * rng.standard_normal((c, n, v))
    s_out = rng.normal(0, 2, (c, 1, 1)) + scale * rng.standard_normal((c, n, v))
    return s_in, s_out, is_in, is_out


@pytest.mark.parametrize("seed, n_folds", [(0, 4), (1, 2), (2, 3)])
def test_ulira_matches_reference(seed, n_folds):
    """Vectorised held-out LLRs equal the looped reference to 1e-8: right folds (a target never
    in its own attacker's fit), right samples per side, ddof=0, target from s_in iff is_in, and
    the sum over views."""
    data = _small_random(seed)
    t = ulira(Evidence.of(*data, n_folds=n_folds))
    ref = _reference(*data, n_folds=n_folds)
    np.testing.assert_allclose(t.score, ref, rtol=0, atol=1e-8)
    assert np.array_equal(t.label, data[2])
    assert t.valid.all() and t.threshold == 0.0
    half = A.ulira_half_out(Evidence.of(*data, n_folds=n_folds))
    np.testing.assert_allclose(half.score, _reference(*data, n_folds=n_folds, out_all=False), rtol=0, atol=1e-8)
    assert not np.allclose(half.score, t.score)  # the two fits differ


@pytest.mark.parametrize("seed", [0, 1])
def test_population_gaussian_matches_reference(seed):
    data = _small_random(seed)
    t = population_gaussian(Evidence.of(*data, n_folds=4))
    np.testing.assert_allclose(t.score, _reference(*data, n_folds=4, per_example=False), rtol=0, atol=1e-8)


def _reference_variant(s_in, s_out, is_in, is_out, n_folds, mode):
    """Loops, as the design states the two variants, OUT fit on every retrain of the other folds.
    offline: sum over views of -log(2 Phi(-|x - mu_out| / sd_out)), minus the median of Gamma(V).
    fixed: per-example means, one sd per view from the count-weighted within-example variances
    of both sides over all examples."""
    c, n, v = s_in.shape
    folds = (np.arange(n) // 2) % n_folds
    out = np.full((c, n), np.nan)
    for f in range(n_folds):
        fit = folds != f
        sd_fixed = []
        for k in range(v):
            ss, cnt = 0.0, 0
            for e in range(c):
                for side, mask in ((s_in[e, :, k], fit & is_in[e]), (s_out[e, :, k], fit)):
                    ss += ((side[mask] - side[mask].mean()) ** 2).sum()
                    cnt += mask.sum()
            sd_fixed.append(np.sqrt(ss / cnt))
        for e in range(c):
            for m in np.flatnonzero(folds == f):
                total = 0.0
                for k in range(v):
                    ins, outs = s_in[e, fit & is_in[e], k], s_out[e, fit, k]
                    x = s_in[e, m, k] if is_in[e, m] else s_out[e, m, k]
                    if mode == "offline":
                        total += -np.log(2 * norm.cdf(-abs(x - outs.mean()) / outs.std()))
                    else:
                        sd = sd_fixed[k]
                        total += norm.logpdf(x, ins.mean(), sd) - norm.logpdf(x, outs.mean(), sd)
                out[e, m] = total - (gamma.median(v) if mode == "offline" else 0.0)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_offline_and_fixed_variance_match_reference(seed):
    data = _small_random(seed)
    off = A.ulira_offline(Evidence.of(*data, n_folds=4))
    np.testing.assert_allclose(off.score, _reference_variant(*data, 4, "offline"), rtol=0, atol=1e-8)
    fixed = A.ulira_fixed_variance(Evidence.of(*data, n_folds=4))
    np.testing.assert_allclose(fixed.score, _reference_variant(*data, 4, "fixed"), rtol=0, atol=1e-8)


def test_target_score_never_enters_its_own_attacker():
    """Moving one target's score (example e, model m in fold 0) changes no other fold-0
    statistic (their attacker is fit on folds 1-3 only), but changes example e's statistics in
    the other folds (whose attackers fit on model m)."""
    s_in, s_out, is_in, is_out = _small_random(5)
    folds = A.fold_of(s_in.shape[1], 4)
    e = 2
    m = int(np.flatnonzero(is_in[e] & (folds == 0))[0])
    base = ulira(Evidence.of(s_in, s_out, is_in, is_out)).score
    moved = s_in.copy()
    moved[e, m] += 50.0
    new = ulira(Evidence.of(moved, s_out, is_in, is_out)).score
    others_in_fold = (folds == 0) & (np.arange(len(folds)) != m)
    assert np.array_equal(new[:, others_in_fold], base[:, others_in_fold])
    assert new[e, m] != base[e, m]
    assert not np.allclose(new[e, folds != 0], base[e, folds != 0])
    other_examples = np.arange(s_in.shape[0]) != e
    assert np.array_equal(new[other_examples], base[other_examples])  # per example: no spill


def test_sd_fallback_for_examples_with_one_sample():
    """An example with < 2 IN samples in a fit gets the median spread, not a zero or nan spread:
    its statistics stay finite."""
    s_in, s_out, is_in, is_out = _small_random(6, c=5, n=8, v=1)
    is_in, is_out = is_in.copy(), is_out.copy()
    is_in[0, :], is_out[0, :] = False, True
    is_in[0, 0], is_out[0, 0] = True, False  # one IN model only (fold 0)
    t = ulira(Evidence.of(s_in, s_out, is_in, is_out, n_folds=2))
    folds = A.fold_of(8, 2)
    # fold 1 is attacked by a fit on fold 0, holding exactly one IN sample of example 0
    assert np.isfinite(t.score[0, folds == 1]).all()


# --- non-finite scores ----------------------------------------------------------------------


def test_nonfinite_scores_do_not_crash_and_are_counted():
    """A NaN or inf in the score table: the attack runs, non-finite targets give non-finite
    statistics (NaN target; inf target gives -inf - -inf), they are left out of every fit (the
    other statistics of those examples stay finite), and summarize counts them."""
    s_in, s_out, is_in, is_out = _small_random(7)
    s_in, s_out = s_in.copy(), s_out.copy()
    e1, m1 = 1, int(np.flatnonzero(is_in[1])[0])
    e2, m2 = 2, int(np.flatnonzero(is_out[2])[0])
    e3, m3 = 3, int(np.flatnonzero(is_out[3])[0])
    s_in[e1, m1, 0] = np.nan
    s_out[e2, m2, 1] = np.inf
    s_in[e3, m3, 0] = -np.inf  # s_in where the model is OUT: not the target, not fit: no effect
    t = ulira(Evidence.of(s_in, s_out, is_in, is_out))
    bad = ~np.isfinite(t.score) & t.valid
    assert set(zip(*np.nonzero(bad), strict=True)) == {(e1, m1), (e2, m2)}
    s = summarize(*t.flat(), t.threshold)
    assert s["n_nonfinite"] == 2 and s["n_trials"] == t.valid.sum()
    assert np.isfinite(s["accuracy"]) and np.isfinite(s["auc"])
    acc, n = A.per_example_accuracy(t)
    assert np.isfinite(acc).all() and (n == t.valid.sum(axis=1)).all()
    pg = population_gaussian(Evidence.of(s_in, s_out, is_in, is_out))
    assert summarize(*pg.flat(), pg.threshold)["n_nonfinite"] == 2


# --- summarize ------------------------------------------------------------------------------


def test_summarize_hand_made():
    """labels 1,1,0,0; scores 2,-1,1,-2; threshold 0 -> predictions 1,0,1,0: accuracy 0.5.
    AUC: of the 4 (pos, neg) pairs, 3 are ordered right -> 0.75. At FPR 0 the top score (a
    positive) is caught: TPR at 1% FPR = 0.5."""
    s = summarize(np.array([True, True, False, False]), np.array([2.0, -1.0, 1.0, -2.0]), 0.0)
    # best threshold: above 2 only -> IN for 2: right on 2, 1, -2 -> 3/4 correct
    assert s == {
        "accuracy": 0.5,
        "accuracy_best": 0.75,
        "auc": 0.75,
        "tpr_at_0.1pct_fpr": 0.5,
        "tpr_at_1pct_fpr": 0.5,
        "n_trials": 4,
        "n_nonfinite": 0,
    }


def test_summarize_threshold_and_nonfinite():
    """A non-finite statistic sits at the threshold: predicted OUT. Threshold 1.5 moves the
    decisions: 2 -> IN, 1 -> OUT."""
    labels = np.array([True, True, False, False, True])
    score = np.array([2.0, -1.0, 1.0, -2.0, np.nan])
    s = summarize(labels, score, 1.5)
    assert s["accuracy"] == pytest.approx(3 / 5)  # right: 2 (IN), 1 (OUT), -2 (OUT)
    assert s["n_nonfinite"] == 1 and s["n_trials"] == 5
    s0 = summarize(labels, np.array([2.0, -1.0, 1.0, -2.0, np.inf]), 0.0)
    assert s0["accuracy"] == pytest.approx(2 / 5) and s0["n_nonfinite"] == 1


def test_summarize_perfect_and_single_class():
    s = summarize(np.array([True, False, True, False]), np.array([3.0, -3.0, 0.5, -0.1]))
    assert s["accuracy"] == 1.0 and s["auc"] == 1.0 and s["tpr_at_1pct_fpr"] == 1.0
    one = summarize(np.array([True, True]), np.array([1.0, -1.0]))
    assert one["accuracy"] == 0.5 and math.isnan(one["auc"])


def test_per_example_accuracy_hand_made():
    t = Trials(
        score=np.array([[1.0, -1.0, np.nan], [0.5, 0.5, 0.5]]),
        label=np.array([[True, False, True], [False, False, True]]),
        valid=np.array([[True, True, False], [True, True, True]]),
    )
    acc, n = A.per_example_accuracy(t)
    assert n.tolist() == [2, 3]
    np.testing.assert_allclose(acc, [1.0, 1 / 3])


# --- population loss U-MIA ------------------------------------------------------------------


def _loss_data(seed, shift, c=200, n=8, n_test=400):
    """log-loss of forget examples ~ N(-shift, 1), of test examples ~ N(0, 1), ten classes."""
    rng = np.random.default_rng(seed)
    is_in, _ = _balanced_membership(rng, c, n)
    forget_labels, test_labels = np.arange(c) % 10, np.arange(n_test) % 10
    loss_forget = np.exp(rng.normal(-shift, 1.0, (c, n)))
    loss_test = np.exp(rng.normal(0.0, 1.0, (n_test, n)))
    return loss_forget, is_in, forget_labels, loss_test, test_labels


def test_population_loss_at_chance_for_identical_losses():
    """Same loss distribution for forget and test: accuracy 0.5. ~1,600 pooled predictions
    (8 models x ~100 forget + as many test), SE 0.0125; cross-validated fits on pure noise
    scatter a bit more (simulated SD 0.008-0.010 at this size), so 0.05 is > 4 SE."""
    t = population_loss(*_loss_data(0, shift=0.0), cv_folds=5, seed=0)
    s = summarize(*t.flat(), t.threshold)
    assert s["n_trials"] > 1500
    assert abs(s["accuracy"] - 0.5) < 0.05


def test_population_loss_near_one_when_separated():
    """log-loss 6 SD apart: Bayes accuracy Phi(3) = 0.9987. 4 models give ~800 pooled predictions;
    at p = 0.9987 even 0.98 is > 10 SE (0.0013) below, so > 0.98 leaves room for the fit."""
    t = population_loss(*_loss_data(1, shift=6.0, n=4), cv_folds=5, seed=0)
    s = summarize(*t.flat(), t.threshold)
    assert s["n_trials"] > 700 and s["accuracy"] > 0.98


def test_population_loss_known_answer_and_balance():
    """log-loss 2 SD apart: Bayes accuracy Phi(1) = 0.841 (5 SE of 1,600 trials = 0.046). The
    pooled predictions are class-balanced (as many test as forget examples), each model's trials
    are its forget examples only, and their scores are held-out probabilities minus 0.5."""
    data = _loss_data(2, shift=2.0)
    t = population_loss(*data, cv_folds=5, seed=0)
    labels, score = t.flat()
    assert labels.sum() * 2 == len(labels)
    assert np.all(np.abs(score) <= 0.5)
    assert abs(summarize(labels, score, t.threshold)["accuracy"] - norm.cdf(1.0)) < 5 * _se(0.84, len(labels))
    assert np.array_equal(t.valid, data[1])  # ~10 forget vs 40 test per class and model: all used
    assert np.isnan(t.score[~data[1]]).all()
    # the per-trial scores are the forget examples' own: TPR at threshold 0 is Phi(1) = 0.84;
    # ~800 forget trials, SE 0.013, bound 0.05 ~ 4 SE
    assert abs((t.score[t.valid] > 0).mean() - norm.cdf(1.0)) < 0.05


def test_population_loss_tolerates_nonfinite_losses():
    lf, is_in, fl, lt, tl = _loss_data(3, shift=2.0, n=4)
    lf[np.flatnonzero(is_in[:, 0])[:2], 0] = [np.nan, np.inf]
    t = population_loss(lf, is_in, fl, lt, tl, cv_folds=3, seed=0)
    assert np.isfinite(t.flat()[1]).all()


def test_population_loss_skips_model_without_forget_examples():
    lf, is_in, fl, lt, tl = _loss_data(4, shift=2.0, c=40, n=4, n_test=80)
    is_in = is_in.copy()
    is_in[:, 0] = False  # model 0 forgets nothing
    t = population_loss(lf, is_in, fl, lt, tl, cv_folds=3, seed=0)
    assert np.isnan(t.score[:, 0]).all() and t.valid[:, 1:].sum() == is_in[:, 1:].sum()


# --- the whole attack step on a synthetic score table ----------------------------------------


def _tables(seed=0, n_models=8, n_pool=60, n_test=40, n_cand=20, views=("identity", "mirror")):
    """Score and membership tables as the workflow writes them: originals (method none) score
    phi = mu_x + 3 on their training set, retrains on theirs (D_i minus F_i); else phi = mu_x."""
    import pandas as pd

    from umia import plan

    rng = np.random.default_rng(seed)
    cand = np.sort(rng.choice(n_pool, n_cand, replace=False))
    member = plan.membership(seed, n_models, n_pool, cand)
    train = member.in_train.to_numpy().reshape(n_models, n_pool)
    forget = member.in_forget.to_numpy().reshape(n_models, n_pool)
    n = n_pool + n_test
    labels = rng.integers(0, 10, n)
    mu = rng.normal(0, 3, n)
    frames = []
    for method, trained in (("none", train), ("retrain", train & ~forget)):
        for i in range(n_models):
            for v in views:
                boost = np.r_[trained[i], np.zeros(n_test, bool)] * 3.0
                phi = mu + boost + rng.standard_normal(n)
                frames.append(
                    pd.DataFrame(
                        {
                            "model_id": i,
                            "stage": "original" if method == "none" else "retrain",
                            "method": method,
                            "example_id": np.arange(n),
                            "split": ["pool"] * n_pool + ["test"] * n_test,
                            "label": labels,
                            "view": v,
                            "phi": phi,
                            "loss": np.log1p(np.exp(-phi)),
                            "correct": phi > 0,
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True), member, cand


def test_run_controls_behave():
    """attacks.run wires the tables into the attacks: the control `none` (nothing unlearned) is
    strongly attacked, `retrain` (the ideal) sits near chance. 20 candidates x 8 models = 160
    trials: SE 0.04, so 'near chance' is |acc - 0.5| < 0.2 (5 SE), and `none` (Bayes accuracy
    Phi(3 sqrt(2) / 2) = 0.98 with two views) must exceed 0.8."""
    scores, member, cand = _tables()
    summary, per_ex, roc = A.run(scores, member, methods=[], n_folds=4, loss_cv_folds=3)
    assert list(summary.columns) == A.SUMMARY_COLUMNS
    acc = summary.set_index(["method", "attack"]).accuracy
    attacks = (
        "ulira",
        "ulira_half_out",
        "ulira_offline",
        "ulira_fixed_variance",
        "urmia",
        "urmia_offline",
        "population_gaussian",
        "population_loss",
    )
    assert set(acc.index) == {(m, a) for m in ("none", "retrain") for a in (*attacks, "lira_retained")}
    s = summary.set_index(["method", "attack"])
    assert (s.accuracy_ci_low <= s.accuracy + 1e-9).all() and (s.accuracy <= s.accuracy_ci_high + 1e-9).all()
    assert set(zip(roc.method, roc.attack, strict=True)) == set(acc.index)
    assert acc["none", "ulira"] > 0.8
    assert abs(acc["retrain", "ulira"] - 0.5) < 0.2
    ul = summary[summary.attack == "ulira"]
    assert (ul.n_trials == len(cand) * 8).all() and (ul.n_targets == 8).all()
    pe = per_ex[(per_ex.method == "none") & (per_ex.attack == "ulira")]
    assert np.array_equal(pe.example_id.to_numpy(), cand)
    assert pe.epsilon.between(0, challenge.CAP).all()
    assert pe.epsilon_single_threshold.between(0, A.EPSILON_CAP).all()
    assert (pe.n_trials == 8).all()
    # the forget score of a strong attack is low, of a chance one high (here n = 4 a side:
    # buckets up to ceil(log 3) = 2)
    assert s.forget_score["none", "ulira"] < s.forget_score["retrain", "ulira"]


def test_run_on_threads_gives_the_tables_of_one_thread():
    """Methods attacked on several threads: the same tables, in the method order asked for."""
    import pandas as pd

    scores, member, _ = _tables()
    extra = []
    for name, shift in (("m_a", 0.5), ("m_b", -0.5)):
        s = scores[scores.method == "none"].copy()
        s["method"], s["stage"], s["phi"] = name, "unlearned", s["phi"] + shift
        extra.append(s)
    scores = pd.concat([scores, *extra], ignore_index=True)
    one = A.run(scores, member, methods=["m_b", "m_a"], n_folds=4, loss_cv_folds=3, n_bootstrap=20, threads=1)
    many = A.run(scores, member, methods=["m_b", "m_a"], n_folds=4, loss_cv_folds=3, n_bootstrap=20, threads=4)
    assert list(one[0].method.unique()) == ["none", "retrain", "m_b", "m_a"]
    for a, b in zip(one, many, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_run_without_attack_epsilons_changes_only_the_epsilon_columns():
    """The tuning stage's attacks: the attacks' challenge epsilons (and what is made of them) NaN,
    every other number, the challenge's own test included, as with them."""
    import pandas as pd

    scores, member, _ = _tables()
    full = A.run(scores, member, methods=[], n_folds=4, loss_cv_folds=3, n_bootstrap=20)
    fast = A.run(scores, member, methods=[], n_folds=4, loss_cv_folds=3, n_bootstrap=20, attack_epsilons=False)
    skipped = ["epsilon_median", "forget_score", "score"]
    assert full[0][skipped[:2]].notna().any().all() and fast[0][skipped].isna().all().all()  # score: no ratio here
    pd.testing.assert_frame_equal(full[0].drop(columns=skipped), fast[0].drop(columns=skipped))
    assert fast[0].challenge_forget_score.notna().all()
    assert fast[1].epsilon.isna().all() and full[1].epsilon.notna().any()
    pd.testing.assert_frame_equal(full[1].drop(columns="epsilon"), fast[1].drop(columns="epsilon"))
    pd.testing.assert_frame_equal(full[2], fast[2])


def test_population_loss_compares_within_classes():
    """Forget examples are compared with test examples of their own classes only: test examples
    of classes 5-9 (no candidate has them) carry huge losses; if they entered the comparison the
    regression would separate them (accuracy ~0.75), while class-matched it sits at chance
    (~1,600 predictions, same 0.05 bound as the identical-loss test)."""
    lf, is_in, _, lt, _ = _loss_data(5, shift=0.0)
    forget_labels = np.arange(len(lf)) % 5
    test_labels = np.arange(len(lt)) % 10
    lt = np.where((test_labels >= 5)[:, None], lt * 1e6, lt)
    t = population_loss(lf, is_in, forget_labels, lt, test_labels, cv_folds=5, seed=0)
    labels, score = t.flat()
    assert labels.sum() * 2 == len(labels)
    assert abs(summarize(labels, score, t.threshold)["accuracy"] - 0.5) < 0.05


# --- variants, epsilon, bootstrap, ROC --------------------------------------------------------


def _two_sided_auc(d: float) -> float:
    """P(|Z_in| > |Z_out|) for Z_in ~ N(d, 1), Z_out ~ N(0, 1): the AUC of a test on |z|."""
    tail = lambda a: norm.sf(a - d) + norm.cdf(-a - d)  # noqa: E731  P(|Z_in| > a)
    return quad(lambda a: tail(a) * 2 * norm.pdf(a), 0, np.inf)[0]


def test_offline_and_fixed_variance_recover_known_accuracy():
    """Equal unit variances everywhere: fixed variance is the Bayes rule, Phi(d/2). Offline
    (two-sided) predicts IN iff |z| exceeds the OUT median of |z| (0.674): accuracy
    (1/2 + P(|Z_in| > 0.674)) / 2, and its AUC is P(|Z_in| > |Z_out|)."""
    s_in, s_out, is_in, is_out = _gaussian_scores(3, d=1.0)
    fixed = A.ulira_fixed_variance(Evidence.of(s_in, s_out, is_in, is_out))
    assert summarize(*fixed.flat())["accuracy"] == pytest.approx(norm.cdf(0.5), abs=0.018)
    off = A.ulira_offline(Evidence.of(s_in, s_out, is_in, is_out))
    q = norm.ppf(0.75)  # median of |Z|
    p_in = norm.sf(q - 1.0) + norm.cdf(-q - 1.0)
    assert summarize(*off.flat(), off.threshold)["accuracy"] == pytest.approx((0.5 + p_in) / 2, abs=0.018)
    assert summarize(*off.flat())["auc"] == pytest.approx(_two_sided_auc(1.0), abs=0.02)


def test_offline_catches_over_unlearning():
    """Unlearning that pushes phi below the retrains' (IN mean d = -1.5) is caught as strongly as
    one that leaves it above (d = +1.5): the test is two-sided, so both AUCs are
    P(|Z_in| > |Z_out|) = 0.75, where a one-sided test would read Phi(-1.5 / sqrt 2) = 0.14 for the first."""
    expected = _two_sided_auc(1.5)
    for d in (-1.5, 1.5):
        off = A.ulira_offline(Evidence.of(*_gaussian_scores(5, d=d)))
        assert summarize(*off.flat())["auc"] == pytest.approx(expected, abs=0.02)
    assert expected == pytest.approx(0.753, abs=0.001)


def test_fixed_variance_pools_within_example_spread_only():
    """Per-example means spread over [-10, 10]; the pooled spread must still be ~1 (the spread
    of the residuals), not ~6 (the spread of everything together)."""
    s_in, s_out, is_in, is_out = _gaussian_scores(4, d=0.0, spread=10.0)
    mu, sd, n = masked_moments(s_out, is_out[..., None], 1)
    assert pooled_sd(sd, n).ravel()[0] == pytest.approx(1.0, abs=0.03)


def test_epsilon_hand_made():
    """One example, 4 IN trials scoring above 4 OUT trials: a threshold separates them, FPR =
    FNR = 0, so epsilon hits the cap. Interleaved scores 1..8 (IN odd, OUT even): every threshold
    has FPR + FNR >= 1/4 + ...; the best is between 7 and 6 (predict IN for {8, 7}: FPR 1/4,
    FNR 3/4): log((1 - d - 3/4) / (1/4)) = log(1 - 4d) ~ 0."""
    label = np.array([[True] * 4 + [False] * 4])
    t = Trials(np.array([[5.0, 6, 7, 8, 1, 2, 3, 4]]), label, np.ones_like(label))
    assert A.single_threshold_epsilon(t)[0] == A.EPSILON_CAP
    t2 = Trials(np.array([[1.0, 3, 5, 7, 2, 4, 6, 8]]), label, np.ones_like(label))
    assert A.single_threshold_epsilon(t2)[0] == pytest.approx(0.0, abs=1e-4)


def test_epsilon_skips_thresholds_with_one_zero_error_rate():
    """IN on top, then a mix: the threshold above the single top IN trial has FPR 0 and FNR 3/4;
    it bounds nothing and is skipped, so epsilon stays small."""
    label = np.array([[True, False, True, False, True, False, True, False]])
    t = Trials(np.array([[8.0, 7, 6, 5, 4, 3, 2, 1]]), label, np.ones_like(label))
    assert A.single_threshold_epsilon(t)[0] < 1.0


def test_epsilon_of_a_chance_attack_is_small():
    """Scores unrelated to membership (32 trials an example, 2,000 examples): the per-example
    epsilons stay far below the cap; the median is about 1 with 32 trials of noise."""
    rng = np.random.default_rng(0)
    label = np.zeros((2000, 32), bool)
    label[:, ::2] = True
    t = Trials(rng.standard_normal((2000, 32)), label, np.ones_like(label))
    eps = A.single_threshold_epsilon(t)
    assert np.median(eps) < 2.0 and (eps >= A.EPSILON_CAP).mean() < 0.01


def test_epsilon_reference_loop():
    """Vectorised single-threshold epsilon against a loop over examples and thresholds."""
    rng = np.random.default_rng(5)
    score = np.round(rng.standard_normal((6, 20)), 1)  # some ties
    label = rng.random((6, 20)) < 0.5
    label[:, 0], label[:, 1] = True, False
    t = Trials(score + label, label, np.ones_like(label))
    ref = []
    for c in range(6):
        best = 0.0
        for thr in np.r_[np.inf, np.unique(t.score[c])]:
            pred = t.score[c] >= thr
            fpr = (pred & ~label[c]).sum() / (~label[c]).sum()
            fnr = (~pred & label[c]).sum() / label[c].sum()
            if fpr == 0 and fnr == 0:
                e = A.EPSILON_CAP
            elif fpr == 0 or fnr == 0:
                continue
            else:
                e = min(max(np.log((1 - 1e-5 - fpr) / fnr), np.log((1 - 1e-5 - fnr) / fpr)), A.EPSILON_CAP)
            best = max(best, e)
        ref.append(best)
    np.testing.assert_allclose(A.single_threshold_epsilon(t), ref, atol=1e-9)


def test_bootstrap_interval_covers_and_narrows():
    """The interval contains the point estimate, and with 16x the models it is ~4x narrower
    (it resamples models)."""
    widths = []
    for n_models in (16, 256):
        rng = np.random.default_rng(n_models)
        models = np.repeat(np.arange(n_models), 100)
        labels = rng.random(len(models)) < 0.5
        score = labels + rng.standard_normal(len(models))
        ci = A.bootstrap(labels, score - 0.5, models, 0.0, n_boot=200, seed=1)
        point = summarize(labels, score - 0.5)
        for k in ("accuracy", "auc", "tpr_at_1pct_fpr"):
            assert ci[k][0] - 1e-9 <= point[k] <= ci[k][1] + 1e-9, k
        widths.append(ci["auc"][1] - ci["auc"][0])
    assert 2.5 < widths[0] / widths[1] < 6.5


def test_bootstrap_auc_matches_sklearn_without_resampling():
    """With every model drawn once (n_boot weights of 1) the weighted AUC is the plain AUC."""
    rng = np.random.default_rng(2)
    labels = rng.random(500) < 0.4
    score = labels * 0.7 + rng.standard_normal(500)
    models = np.arange(500)  # one trial per model: any resample is a reweighting of trials
    ci = A.bootstrap(labels, score, models, n_boot=400, seed=0)
    auc = summarize(labels, score)["auc"]
    assert ci["auc"][0] < auc < ci["auc"][1] and ci["auc"][1] - ci["auc"][0] < 0.12


def test_roc_points_are_monotone_and_span_log_range():
    rng = np.random.default_rng(0)
    labels = rng.random(20_000) < 0.5
    roc = A.roc_points(labels, labels + rng.standard_normal(20_000))
    assert roc.fpr.is_monotonic_increasing and roc.tpr.is_monotonic_increasing
    assert roc.fpr.iloc[-1] == 1.0 and (roc.fpr > 0).any() and roc.fpr[roc.fpr > 0].min() < 1e-3
    assert len(roc) <= 401


# --- the LM population attacks (text task): one threshold fit on the other folds ------------


def test_best_threshold_hand_made():
    assert A.best_threshold(np.array([3.0, 4, 5]), np.array([0.0, 1, 2])) == 2.5
    # 4 of 5 right at the cut between 1 and 2 (the OUT value 3 stays wrong); non-finite ignored
    assert A.best_threshold(np.array([2.0, 4, 5, np.nan]), np.array([0.0, 1, 3, np.inf])) == 1.5
    # all equal: no cut between equal values; the lowest of the equally good cuts (all IN)
    assert A.best_threshold(np.ones(2), np.ones(2)) == 0.0
    # IN below OUT: no cut beats calling everything one way
    assert A.best_threshold(np.array([0.0, 1]), np.array([5.0, 6])) == -1.0
    assert np.isnan(A.best_threshold(np.array([1.0]), np.array([np.nan])))


def test_population_threshold_fits_on_the_other_folds_only():
    """Two examples, four models in two folds (pairs 0,1 and 2,3). On fold 1 the IN trials score
    10 and the OUT ones 0 (threshold 5); on fold 0, 4 and 3 (threshold 3.5). Each fold is scored
    with the other's threshold: fold 0's IN trials (4 < 5) are missed, so the accuracy is 6/8."""
    is_in = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], bool)
    fold1 = np.array([False, False, True, True])
    s_in = np.where(fold1, 10.0, 4.0) * np.ones((2, 1))
    s_out = np.where(fold1, 0.0, 3.0) * np.ones((2, 1))
    t = A.population_threshold(s_in, s_out, is_in, ~is_in, n_folds=2)
    expected = np.where(is_in, s_in, s_out) - np.where(fold1, 3.5, 5.0)
    np.testing.assert_allclose(t.score, expected)
    assert t.threshold == 0 and t.valid.all() and np.array_equal(t.label, is_in)
    assert _accuracy(t) == 0.75


def test_population_threshold_separable_and_null():
    rng = np.random.default_rng(0)
    is_in, is_out = _balanced_membership(rng, 40, 16)
    s_in, s_out = 1 + rng.random((40, 16)), -rng.random((40, 16))
    assert _accuracy(A.population_threshold(s_in, s_out, is_in, is_out)) == 1.0
    # IN and OUT from one distribution: 40 x 400 = 16,000 trials, chance within 5 SE
    is_in, is_out = _balanced_membership(rng, 40, 400)
    same = rng.standard_normal((40, 400))
    acc = _accuracy(A.population_threshold(same, same, is_in, is_out))
    assert abs(acc - 0.5) < 5 * _se(0.5, 16_000)


def test_population_threshold_counts_nonfinite_targets():
    rng = np.random.default_rng(1)
    is_in, is_out = _balanced_membership(rng, 10, 8)
    s_in, s_out = 1 + rng.random((10, 8)), -rng.random((10, 8))
    s_in[0, :] = np.nan  # a diverged statistic: left out of the fits, undecided on the targets
    t = A.population_threshold(s_in, s_out, is_in, is_out)
    row = summarize(*t.flat(), t.threshold)
    assert row["n_nonfinite"] == is_in[0].sum()
    assert row["accuracy"] == pytest.approx(1 - is_in[0].sum() / 80)


def test_run_adds_the_lm_attacks_only_with_lm_stats():
    """With the text task's LM statistics, attacks.run adds population_zlib and population_min_k
    rows: population_threshold on the Min-K% and on minus the zlib ratio (lower means member) of
    the method's models (IN) and the retrains (OUT). Here Min-K% = phi and zlib ratio = -phi / 100,
    so both equal the threshold attack on phi itself; retrain sits near chance (160 trials, SE
    0.04, within 5 SE). Without the statistics the summary is as before."""
    import pandas as pd

    scores, member, cand = _tables(views=("identity",))
    base, _, _ = A.run(scores, member, methods=[], n_folds=4, loss_cv_folds=3, n_bootstrap=10)
    assert not {"population_zlib", "population_min_k"} & set(base.attack)
    stats = pd.DataFrame(
        {
            "model_id": scores.model_id,
            "method": scores.method,
            "example_id": scores.example_id,
            "min_k": scores.phi,
            "zlib_ratio": -scores.phi / 100,
        }
    )
    summary, per_ex, roc = A.run(scores, member, methods=[], n_folds=4, loss_cv_folds=3, n_bootstrap=10, lm_stats=stats)
    acc = summary.set_index(["method", "attack"]).accuracy
    cube = A.cubes(scores, 8, ["identity"], int(scores.example_id.max()) + 1)
    m = member.pivot(index="model_id", columns="example_id")
    is_in, is_out = m.in_forget.to_numpy()[:, cand].T, ~m.in_train.to_numpy()[:, cand].T
    s_out = cube["retrain"].phi[:, 0, cand].T
    expected = _accuracy(A.population_threshold(cube["none"].phi[:, 0, cand].T, s_out, is_in, is_out))
    assert expected > 0.6  # members score phi + 3 over a between-example spread of 3
    for attack in ("population_zlib", "population_min_k"):
        assert acc["none", attack] == pytest.approx(expected), attack
        assert abs(acc["retrain", attack] - 0.5) < 0.2, attack
        pe = per_ex[(per_ex.attack == attack) & (per_ex.method == "none")]
        assert np.array_equal(pe.example_id.to_numpy(), cand) and (pe.n_trials == 8).all()
    assert set(roc.attack) >= {"population_zlib", "population_min_k"}
    same = summary[~summary.attack.isin(["population_zlib", "population_min_k"])].reset_index(drop=True)
    assert same.equals(base)  # the other rows do not change


def test_challenge_grid_warning_names_a_statistic_too_fine_for_the_scorer():
    rng = np.random.default_rng(0)
    is_out = np.ones((50, 32), bool)
    # a language model's mean token log-probability: a spread of thousandths across models
    text = -4.3 + 0.0016 * rng.standard_normal((50, 32))
    msg = A.challenge_grid_warning(text, is_out)
    assert msg is not None and "too coarse" in msg and "100 a unit" in msg and "smaller than about 0.1" in msg
    # classifiers' logit-scaled confidences vary by units: no warning
    assert A.challenge_grid_warning(3.0 + rng.standard_normal((50, 32)), is_out) is None
    # only the OUT trials count, non-finite values drop out, examples with one trial are skipped
    wide_in = np.where(np.arange(32) % 2, text, 100.0 * np.arange(32))
    assert A.challenge_grid_warning(wide_in, (np.arange(32) % 2 == 1) & is_out) is not None
    assert A.challenge_grid_warning(np.where(is_out, np.nan, 0.0), is_out) is None
    # the count itself: ranges 0.02 and 0.04 and 0.06 across the retrains, median 0.04: 4 thresholds
    three = np.array([[0.0, 0.02, 0.01], [1.0, 1.04, 1.02], [5.0, 5.06, 5.03]])
    assert A.challenge_thresholds(three, np.ones((3, 3), bool)) == pytest.approx(4.0)
    assert np.isnan(A.challenge_thresholds(three, np.eye(3, dtype=bool)))  # one retrain each: nothing to span


# --- one table of attacks; estimators fit on shadows, scoring any model -------------------------


@pytest.mark.parametrize("name", list(registry.ATTACKS))
def test_every_registered_attack_is_a_function_of_evidence(name):
    """Each registry entry names a function in umia.attacks that takes one method's Evidence."""
    fn = A.attack(name)
    assert callable(fn) and fn.__module__.startswith("umia.attacks.")
    assert list(inspect.signature(fn).parameters) == ["x"]


def test_a_new_attack_is_one_function_and_one_registry_entry(monkeypatch):
    """run() knows no attack by name: an entry added to the registry (a function of the evidence)
    gets its rows in every table, in the registry's order, and an attack that returns None
    (its inputs missing) gets none."""

    def oracle(x: A.Evidence) -> A.Trials:  # knows the truth: a perfect attack
        return A.Trials(np.where(x.is_in, 1.0, -1.0), x.is_in, x.is_in | x.is_out, examples=x.candidates)

    monkeypatch.setitem(registry.ATTACKS, "oracle", registry.AttackSpec(f"{__name__}:_oracle", "oracle", "#000001"))
    monkeypatch.setitem(registry.ATTACKS, "absent", registry.AttackSpec(f"{__name__}:_absent", "absent", "#000002"))
    monkeypatch.setitem(globals(), "_oracle", oracle)
    monkeypatch.setitem(globals(), "_absent", lambda x: None)
    A.attack.cache_clear()
    try:
        scores, member, cand = _tables()
        summary, per_ex, roc = A.run(scores, member, methods=[], n_folds=4, loss_cv_folds=3, n_bootstrap=10)
    finally:
        A.attack.cache_clear()
    rows = summary.set_index(["method", "attack"])
    assert rows.accuracy["none", "oracle"] == 1.0 and rows.accuracy["retrain", "oracle"] == 1.0
    assert list(summary[summary.method == "none"].attack)[-1] == "oracle"  # the registry's order
    assert "absent" not in set(summary.attack) and "absent" not in set(per_ex.attack)
    assert np.array_equal(per_ex[(per_ex.method == "none") & (per_ex.attack == "oracle")].example_id, cand)
    assert {"oracle"} <= set(roc.attack)


def test_an_attacker_fit_on_shadow_models_scores_a_model_from_outside():
    """GaussianLRT fit on shadow models' phi gives a held-out target the statistic cross_fit gives
    it, and scores a target it never saw: one far above the IN mean leans IN, one at the OUT mean
    leans OUT."""
    s_in, s_out, is_in, is_out = _gaussian_scores(7, c=30, n=40, v=2, d=3.0)
    shadows = np.arange(40) >= 8  # models 0-7 are the targets (fold 0 of 4: pairs 0-1, 8-9, ...)
    lrt = A.GaussianLRT("online").fit(s_in, s_out, is_in & shadows, np.ones_like(is_out) & shadows)
    assert lrt.mu_in_.shape == (30, 1, 2) and (lrt.sd_out_ > 0).all()
    outside = np.concatenate([lrt.mu_in_ + 3.0, lrt.mu_out_], axis=1)  # (c, 2 models, V)
    stat = lrt.score(outside)
    assert (stat[:, 0] > 0).all() and (stat[:, 1] < 0).all()
    # the same estimator, in the K-fold loop, on the fold whose models it did not see
    folds = A.fold_of(40, 5)
    fitted = A.GaussianLRT("online").fit(s_in, s_out, is_in & (folds != 0), np.ones_like(is_out) & (folds != 0))
    t = A.cross_fit(A.GaussianLRT("online"), s_in, s_out, is_in, is_out, 5, np.ones_like(is_out))
    target = np.where(is_in[..., None], s_in, s_out)[:, folds == 0]
    np.testing.assert_array_equal(t.score[:, folds == 0], fitted.score(target))
    np.testing.assert_array_equal(t.score, ulira(Evidence.of(s_in, s_out, is_in, is_out, n_folds=5)).score)


def test_gaussian_lrt_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode 'online2'; known: online, offline, fixed, population"):
        A.GaussianLRT("online2")


def test_the_loss_attacks_null_is_its_small_sample_level():
    """Few examples a model (20 forget examples, 2 a class) and nothing to find: cross-validation
    puts the loss attack below 0.5 (a held-out example's class is the one its training folds
    lack), and its permuted-label null sits there too, within a few points; with a strong signal
    the null stays near that level while the attack rises."""
    nulls, accs = [], []
    for seed in range(10):
        t = population_loss(*_loss_data(seed, shift=0.0, c=40, n=16, n_test=40), cv_folds=5, seed=seed)
        accs.append(summarize(*t.flat(), t.threshold)["accuracy"])
        nulls.append(summarize(*t.null[:2], t.threshold)["accuracy"])
    assert np.mean(accs) < 0.5 and np.mean(nulls) < 0.5  # the bias, in both
    assert abs(np.mean(accs) - np.mean(nulls)) < 0.02
    strong = population_loss(*_loss_data(0, shift=3.0, c=40, n=16, n_test=40), cv_folds=5, seed=0)
    assert summarize(*strong.flat(), strong.threshold)["accuracy"] > 0.8
    assert summarize(*strong.null[:2], strong.threshold)["accuracy"] < 0.55


def test_the_retrain_control_of_the_loss_attack_is_judged_against_its_null():
    from umia.report.verdict import controls

    def row(acc, lo, hi, null):
        return {"method": "retrain", "attack": "population_loss", "accuracy": acc, "accuracy_ci_low": lo,
                "accuracy_ci_high": hi, "null_accuracy": null}  # fmt: skip

    ((ok, line),) = controls(pd.DataFrame([row(0.452, 0.439, 0.461, 0.45)]))
    assert ok and line.endswith(
        "accuracy 0.452 [0.439, 0.461] (should be at its null, 0.450: the same test on permuted labels)"
    )
    assert not controls(pd.DataFrame([row(0.452, 0.439, 0.461, float("nan"))]))[0][0]  # against 0.5: fails
    assert not controls(pd.DataFrame([row(0.62, 0.6, 0.64, 0.45)]))[0][0]  # above its null: the attack sees something
