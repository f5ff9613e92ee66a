"""The efficiency analysis (umia.stages.efficiency): refits on subsets of the shadow models, with
known answers, and its bad inputs, each one line."""

import numpy as np
import pandas as pd
import pytest

from tests.unit.test_attacks import _gaussian_scores, _tables
from umia import attacks
from umia.attacks import Evidence, ulira
from umia.attacks.run import StudyArrays
from umia.attacks.trials import fold_of, shadow_models
from umia.config import ConfigError, resolve, shadow_pool
from umia.stages import efficiency as E


def test_shadow_models_are_whole_pairs_of_the_other_folds():
    folds = fold_of(16, 4)
    rng = np.random.default_rng(0)
    for _ in range(20):
        pick = shadow_models(folds, 1, 6, rng)
        assert pick.sum() == 6 and not pick[folds == 1].any()
        ids = np.flatnonzero(pick)
        assert set(ids // 2) == {i // 2 for i in ids} and all(
            pick[2 * (i // 2)] and pick[2 * (i // 2) + 1] for i in ids
        )
    np.testing.assert_array_equal(shadow_models(folds, 1, None, None), folds != 1)
    with pytest.raises(ValueError, match="14 shadow models asked for, but the other folds hold 12"):
        shadow_models(folds, 1, 14, rng)


def test_all_the_shadow_models_is_the_study():
    """Fitting on every model of the other folds as a 'subset' gives the study's own statistic."""
    s_in, s_out, is_in, is_out = _gaussian_scores(3, c=20, n=16, v=2, d=1.0)
    full = ulira(Evidence.of(s_in, s_out, is_in, is_out))
    sub = ulira(Evidence(s_in, s_out, is_in, is_out, shadows=12))  # 16 models, 4 folds: 12 outside each
    np.testing.assert_allclose(sub.score, full.score)


def test_fewer_shadow_models_weaker_attack_and_the_marks():
    scores, member, _ = _tables()
    study = StudyArrays(pa_table(scores), member, None, 4, 3, 0)
    table = E.efficiency(study, [], [2, 4], repeats=3, seed=0, threads=1)
    assert list(table.columns) == E.COLUMNS
    ul = table[(table.method == "none") & (table.attack == "ulira")].set_index("n_shadow")
    assert ul.loc[6, "full"] and not ul.loc[2, "full"] and ul.loc[2, "n_subsets"] == 3
    assert ul.loc[2, "accuracy_low"] <= ul.loc[2, "accuracy"] <= ul.loc[2, "accuracy_high"]
    loss = table[table.attack == "population_loss"]
    assert loss.full.all() and loss.controls_hold_from.isna().all()  # no shadow model: one row a method
    # the marks, on a hand-made table: the controls hold from 4 on; the method keeps 90% of its
    # 0.3 advantage (0.77) from 8 on
    rows = []
    for m, accs in (("none", [0.6, 0.7, 0.8, 0.8]), ("retrain", [0.6, 0.5, 0.51, 0.5]), ("x", [0.6, 0.7, 0.78, 0.8])):
        for n, acc in zip((2, 4, 8, 12), accs, strict=True):
            rows.append(
                {
                    "method": m,
                    "attack": "ulira",
                    "n_shadow": n,
                    "full": n == 12,
                    "n_subsets": 1,
                    **{f"{k}{s}": acc for k in ("accuracy", "auc", "tpr_at_1pct_fpr") for s in ("", "_low", "_high")},
                }
            )
    marked = E._marks(pd.DataFrame(rows).assign(controls_hold_from=np.nan, keeps_90pct_from=np.nan))
    assert (marked.controls_hold_from == 4).all()
    assert marked[marked.method == "x"].keeps_90pct_from.iloc[0] == 8


def pa_table(df):
    import pyarrow as pa

    return pa.Table.from_pandas(df[attacks.SCORE_COLUMNS], preserve_index=False)


@pytest.mark.parametrize(
    "sizes, line",
    [
        ([3], "config key 'efficiency.sizes': 3 is not an even number of at least 2 (models come in pairs)"),
        ([64], "config key 'efficiency.sizes': 64 is more than the 24 shadow models a fold has (n_models=32"),
    ],
)
def test_bad_sizes_are_one_line(raw_config, schema, sizes, line):
    with pytest.raises(ConfigError) as e:
        resolve({**raw_config, "efficiency": {"sizes": sizes}}, schema)
    assert str(e.value).startswith(line) and "\n" not in str(e.value)


def test_the_default_sizes_and_a_study_too_small_for_a_subset():
    assert shadow_pool(32, 4) == 24 and shadow_pool(16, 4) == 12 and shadow_pool(4, 2) == 2
    assert E.sizes(32, 4) == [2, 4, 8, 16] and E.sizes(32, 4, [8, 4, 8]) == [4, 8]
    with pytest.raises(E.EfficiencyError, match="leaves 0 shadow models a fold, too few for a single subset"):
        E.sizes(2, 1)


def test_the_report_says_it_in_a_sentence_per_attack():
    from umia.report.page import efficiency_sentences

    def rows(attack, method, accs, held, keeps):
        return [
            {
                "method": method,
                "attack": attack,
                "n_shadow": n,
                "full": n == 8,
                "accuracy": a,
                "controls_hold_from": held,
                "keeps_90pct_from": keeps,
            }  # fmt: skip
            for n, a in zip((2, 4, 8), accs, strict=True)
        ]

    table = pd.DataFrame(
        rows("ulira", "none", [0.6, 0.65, 0.7], 4, np.nan)
        + rows("ulira", "x", [0.55, 0.6, 0.62], 4, 4)
        + rows("population_gaussian", "none", [0.5, 0.5, 0.51], np.nan, np.nan)
        + [
            {
                "method": "x",
                "attack": "population_loss",
                "n_shadow": 8,
                "full": True,
                "accuracy": 0.5,
                "controls_hold_from": np.nan,
                "keeps_90pct_from": np.nan,
            }
        ]  # fmt: skip
    )
    assert efficiency_sentences(table) == [
        "U-LiRA (per-example): its controls hold from 4 shadow models; it keeps 90% of its advantage over chance "
        "with 4 (every method; 8: the study).",
        "population Gaussian: it does not catch the none control even with every model of the study; below 8 it "
        "keeps 90% of its advantage for no method.",
    ]  # the loss attack fits no shadow model: no sentence
