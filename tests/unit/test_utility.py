"""Accuracy of each model on its test, retain and forget sets, and per method (umia.stages.utility)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from umia.stages import utility


def _tables():
    """Two models, a pool of 4 and 2 test examples. Model 0 trains on {0, 1} and forgets {1};
    model 1 trains on {2, 3} and forgets {3}. Correct: the originals (none) everywhere but test
    example 5; the unlearned (ft) everywhere but their forget example and test example 4; the
    mirror view is all wrong (only the first view counts)."""
    membership = pd.DataFrame(
        {
            "model_id": np.repeat([0, 1], 4),
            "example_id": np.tile(np.arange(4), 2),
            "in_train": [1, 1, 0, 0, 0, 0, 1, 1],
            "in_forget": [0, 1, 0, 0, 0, 0, 0, 1],
        }
    ).astype({"in_train": bool, "in_forget": bool})
    rows = []
    for method in ("none", "ft", "retrain"):
        for model in (0, 1):
            forgot = 1 if model == 0 else 3
            for ex in range(6):
                if method == "none":
                    ok = ex != 5
                elif method == "ft":
                    ok = ex not in (forgot, 4)
                else:
                    ok = ex != forgot
                for view in ("identity", "mirror"):
                    rows.append((model, method, ex, view, ok and view == "identity"))
    scores = pa.Table.from_pandas(pd.DataFrame(rows, columns=utility.COLUMNS), preserve_index=False)
    return scores, membership


def test_per_model_known_answers():
    models = utility.per_model(*_tables()).set_index(["method", "model_id"])
    assert models.loc[("none", 0)].tolist() == [0.5, 1.0, 1.0]  # test, retain, forget
    assert models.loc[("ft", 1)].tolist() == [0.5, 1.0, 0.0]
    assert models.loc[("retrain", 0)].tolist() == [1.0, 1.0, 0.0]


def test_per_method_ratios_and_drop():
    models = utility.per_model(*_tables())
    table = utility.per_method(models, ["ft"], n_boot=50).set_index("method")
    assert list(table.reset_index().columns) == utility.PER_METHOD
    assert table.loc["ft", "test_accuracy"] == 0.5 and table.loc["ft", "forget_accuracy"] == 0.0
    assert table.loc["ft", "test_drop"] == pytest.approx(0.0)  # the originals are at 0.5 too
    assert table.loc["none", "test_ratio"] == pytest.approx(0.5)  # 0.5 against the retrains' 1.0
    assert table.loc["ft", "retain_ratio"] == pytest.approx(1.0)
    assert table.loc["retrain", "test_ratio"] == 1.0
    # every model of ft has the same accuracy: the interval is a point
    assert table.loc["ft", "test_accuracy_ci_low"] == table.loc["ft", "test_accuracy_ci_high"] == 0.5


def test_text_accuracy_is_next_token_accuracy_over_the_sets_tokens():
    """With the LM statistics, a set's accuracy weighs each review by its tokens: model 0's test
    reviews 4 (3 tokens, 1/3 right) and 5 (1 token, right) give (1 + 1) / 4 = 0.5, not the mean of
    1/3 and 1; its forget review 1 at 0.25 gives 0.25 (the score table's `correct` is ignored)."""
    scores, membership = _tables()
    acc = {0: 0.9, 1: 0.25, 2: 0.1, 3: 0.1, 4: 1 / 3, 5: 1.0}
    n = {0: 2, 1: 4, 2: 1, 3: 1, 4: 3, 5: 1}
    rows = [(m, "none", ex, acc[ex], n[ex]) for m in (0, 1) for ex in range(6)]
    rows += [(m, "retrain", ex, 0.5, n[ex]) for m in (0, 1) for ex in range(6)]
    lm = pa.Table.from_pandas(pd.DataFrame(rows, columns=utility.LM_COLUMNS), preserve_index=False)
    models = utility.per_model(scores, membership, lm).set_index(["method", "model_id"])
    assert models.loc[("none", 0), "test_accuracy"] == pytest.approx(0.5)
    assert models.loc[("none", 0), "forget_accuracy"] == pytest.approx(0.25)
    assert models.loc[("none", 0), "retain_accuracy"] == pytest.approx(0.9)  # example 0 alone
    assert models.loc[("none", 1), "retain_accuracy"] == pytest.approx(0.1)  # example 2
    assert set(models.index.get_level_values(0)) == {"none", "retrain"}  # the methods of the LM table
