"""Accuracy of each model on its test, retain and forget sets, and per method (umia.utility)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from umia import utility


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
