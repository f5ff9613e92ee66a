"""The tuning stage's choice (umia.stages.tuning) on hand-made tables: each rule picks the setting it
should, the utility guard excludes settings, ties go to the grid's first, and a grid with no
setting inside the guard stops with one line naming the best setting's drop."""

from __future__ import annotations

import pandas as pd
import pytest

from umia.config import tuning_grids
from umia.stages import tuning

GRIDS = {"ft": ["ft@lr=0.01", "ft@lr=0.1", "ft@lr=1.0"]}


def _tables(test_drop=(0.0, 0.005, 0.05)):
    """Three settings of ft on the tuning models. Population loss accuracy 0.60, 0.52, 0.50;
    forget accuracy 0.95, 0.80, 0.40 against the retrains' 0.82; challenge score 0.2, 0.5, 0.4.
    The third drops test accuracy by 5 points (outside a 1-point guard)."""
    ids = ["ft@lr=0.01", "ft@lr=0.1", "ft@lr=1.0"]
    utility = pd.DataFrame(
        {
            "method": ["none", "retrain", *ids],
            "test_accuracy": [0.9, 0.9, *(0.9 - d for d in test_drop)],
            "test_drop": [0.0, 0.0, *test_drop],
            "retain_accuracy": [1.0, 1.0, 1.0, 1.0, 0.95],
            "forget_accuracy": [1.0, 0.82, 0.95, 0.80, 0.40],
            "challenge_score": [0.0, 0.6, 0.2, 0.5, 0.4],
        }
    )
    summary = pd.DataFrame(
        {
            "method": [m for m in ids for _ in range(2)],
            "attack": ["population_loss", "ulira"] * 3,
            "accuracy": [0.60, 0.70, 0.52, 0.66, 0.50, 0.64],
        }
    )
    return summary, utility


@pytest.mark.parametrize(
    "rule, expected",
    [
        # |acc - 0.5|: lr=1.0 is at 0.50 but breaks the guard; lr=0.1 (0.52) wins
        ("population_loss", "ft@lr=0.1"),
        # |forget - 0.82|: 0.13, 0.02, (0.42): lr=0.1
        ("forget_accuracy", "ft@lr=0.1"),
        # best score inside the guard: 0.5 (lr=0.1) over 0.2; lr=1.0's 0.4 is out anyway
        ("challenge", "ft@lr=0.1"),
    ],
)
def test_each_rule_picks_its_setting(rule, expected):
    table = tuning.select(*_tables(), GRIDS, rule, max_test_drop=0.01)
    assert list(table.columns) == tuning.COLUMNS
    assert table.loc[table.picked, "setting"].tolist() == [expected]
    assert table.passes_guard.tolist() == [True, True, False]


def test_rules_disagree_when_the_guard_is_wide():
    """With a 10-point guard every setting passes: population loss now picks lr=1.0 (0.50), the
    forget-accuracy rule still lr=0.1, the challenge rule lr=0.1 (0.5 beats 0.4)."""
    picks = {rule: tuning.select(*_tables(), GRIDS, rule, 0.10).query("picked").setting.item() for rule in tuning.RULES}
    assert picks == {"population_loss": "ft@lr=1.0", "forget_accuracy": "ft@lr=0.1", "challenge": "ft@lr=0.1"}


def test_ties_go_to_the_first_setting():
    summary, utility = _tables()
    summary.loc[summary.attack == "population_loss", "accuracy"] = 0.55  # all equally far from chance
    table = tuning.select(summary, utility, GRIDS, "population_loss", 0.10)
    assert table.query("picked").setting.item() == "ft@lr=0.01"


def test_every_setting_outside_the_guard_is_one_line_naming_the_best():
    with pytest.raises(tuning.TuningError) as e:
        tuning.select(*_tables(test_drop=(0.03, 0.02, 0.05)), GRIDS, "population_loss", 0.01)
    msg = str(e.value)
    assert "\n" not in msg
    assert "tune.ft" in msg and "ft@lr=0.1" in msg and "0.020" in msg and "widen the grid" in msg


def test_picked_reads_the_table_back(tmp_path):
    s, u = tmp_path / "s.csv", tmp_path / "u.csv"
    _tables()[0].to_csv(s, index=False)
    _tables()[1].to_csv(u, index=False)
    out = tmp_path / "tuning.csv"
    tuning.tuning_table(summary=str(s), utility=str(u), grids=GRIDS, rule="challenge", max_test_drop=0.01, out=str(out))
    assert tuning.picked(str(out), "ft") == "ft@lr=0.1"
    with pytest.raises(tuning.TuningError, match="no picked setting for other"):
        tuning.picked(str(out), "other")


def test_grids_expand_to_every_combination_in_order():
    config = {"tune": {"neggrad_plus": {"lr": [0.1, 1e-05], "epochs": [1, 2]}}}
    assert tuning_grids(config) == {
        "neggrad_plus": [
            "neggrad_plus@epochs=1,lr=0.1",
            "neggrad_plus@epochs=1,lr=1e-05",
            "neggrad_plus@epochs=2,lr=0.1",
            "neggrad_plus@epochs=2,lr=1e-05",
        ]
    }
