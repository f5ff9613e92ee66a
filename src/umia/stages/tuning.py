"""The tuning stage's choice: per tuned method, the setting of its grid that a selection rule
prefers, among those that keep test accuracy within ``max_test_drop`` of the originals'.

Every setting ran on the tuning models (their own seeds and ids, never the study's targets), and
the attacks, utility and challenge scores of those runs are the tuning experiment's own tables
(the same ``attack_tables`` as the study's). Rules:

- ``population_loss`` - the literature's practice: the population loss U-MIA's accuracy closest
  to chance (0.5);
- ``forget_accuracy`` - the forget-set accuracy closest to the tuning retrains';
- ``challenge`` - the highest NeurIPS 2023 challenge score (on the challenge's own input).

Ties go to the first setting in the grid's order. The result, ``tables/tuning.csv``, lists every
setting with its metrics and marks the pick; ``picked`` reads the pick back (csv only: the
Snakefile calls it).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from umia import io
from umia.config import parse_method
from umia.errors import UmiaError
from umia.plugins import method_id

log = logging.getLogger(__name__)

RULES = ("population_loss", "forget_accuracy", "challenge")
COLUMNS = [
    "method",
    "setting",
    "settings",
    "test_accuracy",
    "test_drop",
    "retain_accuracy",
    "forget_accuracy",
    "retrain_forget_accuracy",
    "population_loss_accuracy",
    "ulira_accuracy",
    "challenge_score",
    "passes_guard",
    "rule",
    "criterion",
    "picked",
]


class TuningError(UmiaError):
    """No setting of a grid can be picked."""


def criterion(rows: pd.DataFrame, rule: str) -> pd.Series:
    """The value the rule minimises, per setting."""
    if rule == "population_loss":
        return (rows.population_loss_accuracy - 0.5).abs()
    if rule == "forget_accuracy":
        return (rows.forget_accuracy - rows.retrain_forget_accuracy).abs()
    if rule == "challenge":
        return -rows.challenge_score
    raise ValueError(f"unknown tuning rule {rule!r}; known: {', '.join(RULES)}")


def select(
    summary: pd.DataFrame,
    utility: pd.DataFrame,
    grids: Mapping[str, Sequence[str]],
    rule: str,
    max_test_drop: float,
) -> pd.DataFrame:
    """Every setting of every grid with its metrics on the tuning models, and the pick per method
    (``COLUMNS``). ``summary`` and ``utility`` are the tuning experiment's tables (methods named by
    ``umia.plugins.method_id`` of each setting). Raises TuningError naming the method when no
    setting passes the utility guard."""
    util = utility.set_index("method")
    acc = summary.set_index(["method", "attack"]).accuracy
    retrain_forget = float(util.loc["retrain", "forget_accuracy"]) if "retrain" in util.index else np.nan
    frames = []
    for name, specs in grids.items():
        rows = []
        for spec in specs:
            mid = method_id(spec)
            u = util.loc[mid] if mid in util.index else None

            def get(col, u=u):
                return float(u[col]) if u is not None else np.nan

            rows.append(
                {
                    "method": name,
                    "setting": spec,
                    "settings": json.dumps(parse_method(spec)[1], sort_keys=True),
                    "test_accuracy": get("test_accuracy"),
                    "test_drop": get("test_drop"),
                    "retain_accuracy": get("retain_accuracy"),
                    "forget_accuracy": get("forget_accuracy"),
                    "retrain_forget_accuracy": retrain_forget,
                    "population_loss_accuracy": float(acc.get((mid, "population_loss"), np.nan)),
                    "ulira_accuracy": float(acc.get((mid, "ulira"), np.nan)),
                    "challenge_score": get("challenge_score"),
                }
            )
        g = pd.DataFrame(rows)
        g["passes_guard"] = g.test_drop <= max_test_drop  # nan (a diverged setting) fails
        g["rule"] = rule
        g["criterion"] = criterion(g, rule)
        ok = g[g.passes_guard & g.criterion.notna()]
        if not len(ok):
            drops = g.test_drop.fillna(np.inf)
            best = g.loc[drops.idxmin()]
            worst = (
                f"the least harmful, {best.setting}, drops test accuracy by {best.test_drop:.3f}"
                if np.isfinite(drops.min())
                else "every setting's runs diverged (no test accuracy)"
            )
            raise TuningError(
                f"tune.{name}: every setting fails the utility guard (tuning.max_test_drop = {max_test_drop:g}): "
                f"{worst}; widen the grid toward gentler settings (a smaller lr, fewer epochs) or raise "
                "tuning.max_test_drop"
            )
        g["picked"] = False
        g.loc[ok.criterion.idxmin(), "picked"] = True  # idxmin: the first of equals
        frames.append(g)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def tuning_table(
    *, summary: str, utility: str, grids: Mapping[str, Sequence[str]], rule: str, max_test_drop: float, out: str
) -> pd.DataFrame:
    """``select`` from the tuning experiment's tables into ``out`` (CSV, written atomically)."""
    table = select(pd.read_csv(summary), pd.read_csv(utility), grids, rule, max_test_drop)
    for _, r in table[table.picked].iterrows():
        log.info("%s: picked %s (%s %.4f; test drop %.4f)", r.method, r.setting, rule, abs(r.criterion), r.test_drop)
    with io.atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table


def picked(path: str, method: str) -> str:
    """The setting (a method entry, ``name@key=value,...``) that tuning.csv picked for ``method``."""
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["method"] == method and row["picked"] == "True":
                return row["setting"]
    raise TuningError(f"{path}: no picked setting for {method}; delete the file and rerun to tune again")
