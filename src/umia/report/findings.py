"""The findings in numbers (``tables/findings.csv``), from the tables alone (pandas and numpy).

One row per method, controls first: the shares of forget examples whose per-example U-LiRA
accuracy got worse or better than on the originals beyond the sampling noise (and worse at all;
the ``none`` control is the baseline and has no shares), the same for the retained examples' LiRA
accuracy with its mean change, how much more the forget examples' U-LiRA accuracies differ than
their sampling noise alone would make them (``forget_dispersion``, every method; the retrain
control's is the noise level), and, where methods unlearn, the share of forget examples whose phi
reached their retrain mean during unlearning, the median share of the run that took, and the
dispersion of the share of models in which each example reached it (``reach_dispersion``). The figures draw the same
numbers (``umia.report.figures`` calls the functions here); nothing here draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from umia.io import atomic_path
from umia.registry import CONTROLS

FORGET_ATTACK = "ulira"  # per-example vulnerability of the forget examples
RETAINED_ATTACK = "lira_retained"  # and of the retained ones
COLUMNS = (
    "method",
    "forget_share_worse",
    "forget_share_better",
    "forget_share_worse_any",
    "retained_share_worse",
    "retained_share_better",
    "retained_share_worse_any",
    "retained_mean_change",
    "forget_dispersion",
)
REACH_COLUMNS = ("share_reached", "median_reach_fraction", "reach_dispersion")
_SHARES = ("share_worse", "share_better", "share_worse_any", "n_examples")


def method_order(methods: Sequence[str]) -> list[str]:
    """The controls first, then the methods in the order given."""
    rest = [m for m in dict.fromkeys(methods) if m not in CONTROLS]
    return [m for m in CONTROLS if m in methods] + rest


def per_example_column(per_example: pd.DataFrame, attack: str, method: str, column: str = "accuracy") -> pd.Series:
    """One column of one (attack, method)'s per-example rows, by example id."""
    df = per_example[(per_example["attack"] == attack) & (per_example["method"] == method)]
    return df.set_index("example_id")[column]


def moved(after: np.ndarray, before: np.ndarray, n: np.ndarray, z: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Which examples got worse (after > before) and better, beyond the sampling noise of two
    per-example accuracies over n trials each: |after - before| > z * sqrt(a(1-a)/n + b(1-b)/n),
    with each accuracy kept at least 1/(2n) from 0 and 1. Returns two boolean arrays."""
    lo = 1 / (2 * n)
    a, b = np.clip(after, lo, 1 - lo), np.clip(before, lo, 1 - lo)
    se = np.sqrt(a * (1 - a) / n + b * (1 - b) / n)
    return after - before > z * se, before - after > z * se


def dispersion(p: np.ndarray, n: np.ndarray) -> float:
    """How much per-example shares ``p`` (each over ``n`` trials) differ across examples, against
    what their sampling alone gives: var(p) / mean(p (1 - p) / (n - 1)), the sample variance over
    the mean unbiased binomial variance. About 1 when examples differ by noise alone and each
    example's trials are alike. A rough reference, not a test: U-LiRA's trials share the models
    of their folds (more than 1; the retrain control's row shows how much), each example has a
    fixed half of IN and of OUT trials (less than 1 where their accuracies differ), and the
    models that unlearned an example share one estimated retrain mean (more than 1 for
    ``reach_dispersion``). nan with fewer than two examples or no sampling variance."""
    p, n = np.asarray(p, float), np.asarray(n, float)
    ok = np.isfinite(p) & (n > 1)
    p, n = p[ok], n[ok]
    noise = float(np.mean(p * (1 - p) / (n - 1))) if len(p) else 0.0
    return float(np.var(p, ddof=1)) / noise if len(p) > 1 and noise > 0 else np.nan


def forget_dispersions(per_ex: pd.DataFrame, order: Sequence[str] = ()) -> pd.DataFrame:
    """Per method (controls included): ``dispersion`` of the forget examples' U-LiRA accuracies."""
    df = per_ex[per_ex["attack"] == FORGET_ATTACK]
    rows = [
        {"method": m, "forget_dispersion": dispersion(d["accuracy"], d["n_trials"])}
        for m, d in ((m, df[df["method"] == m]) for m in method_order(order or df["method"].tolist()))
        if len(d)
    ]
    return pd.DataFrame(rows, columns=["method", "forget_dispersion"])


def shares(
    per_ex: pd.DataFrame, attack: str, method: str, before: pd.Series
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Shares of examples worse and better than ``before`` (beyond noise, and at all), and the
    aligned (before, after) accuracies."""
    after = per_example_column(per_ex, attack, method)
    n = per_example_column(per_ex, attack, method, "n_trials")
    b, a = before.align(after, join="inner")
    ok = (b.notna() & a.notna()).to_numpy()
    b, a, n = b.to_numpy()[ok], a.to_numpy()[ok], n.reindex(b.index).to_numpy(float)[ok]
    worse, better = moved(a, b, n)
    share = (lambda x: float(np.mean(x))) if len(a) else (lambda x: np.nan)
    row = {
        "share_worse": share(worse),
        "share_better": share(better),
        "share_worse_any": share(a > b),
        "n_examples": len(a),
    }
    return row, b, a


def forget_changes(per_ex: pd.DataFrame) -> dict[str, tuple[dict[str, float], np.ndarray, np.ndarray]]:
    """Each method's (shares, before, after) of the forget examples' U-LiRA accuracy, before
    being the originals' (the ``none`` control's), in method order."""
    methods = [m for m in method_order(per_ex["method"].tolist()) if m != "none"]
    before = per_example_column(per_ex, FORGET_ATTACK, "none")
    return {m: shares(per_ex, FORGET_ATTACK, m, before) for m in methods}


def retained_changes(
    per_ex: pd.DataFrame, order: Sequence[str] = ()
) -> dict[str, tuple[dict[str, float], np.ndarray, np.ndarray]]:
    """Each method's (shares with ``mean_change``, before, after) of the retained examples'
    LiRA accuracy against the originals', for the methods that have retained-example rows."""
    df = per_ex[per_ex["attack"] == RETAINED_ATTACK]
    present = set(df["method"])
    methods = [m for m in method_order(order or df["method"].tolist()) if m != "none" and m in present]
    before = per_example_column(per_ex, RETAINED_ATTACK, "none")
    out = {}
    for m in methods:
        row, b, a = shares(per_ex, RETAINED_ATTACK, m, before)
        d = a - b
        out[m] = ({**row, "mean_change": float(np.mean(d)) if len(d) else np.nan}, b, a)
    return out


def reach_shares(reach: pd.DataFrame, order: Sequence[str] = ()) -> pd.DataFrame:
    """Per method: the share of forget examples whose phi reached their retrain mean during
    unlearning (``reach_fraction`` finite), the median share of the run it took (inf: most
    never did) and, where the table has each example's ``share_reached`` of ``n_models``, their
    ``dispersion``."""
    present = set(reach["method"])
    rows = []
    for m in (m for m in method_order(order or reach["method"].tolist()) if m in present):
        d = reach[reach["method"] == m]
        f = d["reach_fraction"].to_numpy(float)
        if len(f):
            per_model = {"share_reached", "n_models"} <= set(d.columns)
            rows.append(
                {
                    "method": m,
                    "share_reached": float(np.isfinite(f).mean()),
                    "median_reach_fraction": float(np.median(f)),
                    "reach_dispersion": dispersion(d["share_reached"], d["n_models"]) if per_model else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=["method", *REACH_COLUMNS])


def _frame(changes: dict, prefix: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    cols = [*_SHARES[:3], *extra]
    rows = [{"method": m, **{f"{prefix}_{c}": row[c] for c in cols}} for m, (row, _, _) in changes.items()]
    return pd.DataFrame(rows, columns=["method", *(f"{prefix}_{c}" for c in cols)])


def table(per_ex: pd.DataFrame, reach: pd.DataFrame | None = None, order: Sequence[str] = ()) -> pd.DataFrame:
    """The findings table: one row per method (controls first, then ``order``, by default the
    per-example table's), the columns of ``COLUMNS`` and, with ``reach``, ``REACH_COLUMNS``."""
    order = method_order(order or per_ex["method"].tolist())
    found = (
        _frame(forget_changes(per_ex), "forget")
        .merge(_frame(retained_changes(per_ex, order), "retained", ("mean_change",)), on="method", how="outer")
        .merge(forget_dispersions(per_ex, order), on="method", how="outer")
    )
    if reach is not None:
        found = found.merge(reach_shares(reach, order), on="method", how="outer")
    rank = {m: i for i, m in enumerate(order)}
    return found.sort_values("method", key=lambda c: c.map(rank)).reset_index(drop=True)


def write(per_example: str, out: str, reach: str | None = None) -> pd.DataFrame:
    """``tables/findings.csv`` from ``per_example.parquet`` (and ``reach.parquet`` when the
    experiment has unlearning methods); returns the table."""
    found = table(pd.read_parquet(per_example), pd.read_parquet(reach) if reach else None)
    with atomic_path(out) as tmp:
        found.to_csv(tmp, index=False, float_format="%.4g")
    return found
