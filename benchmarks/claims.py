"""The research's four claims, method by method, from a finished study's tables alone, with the
retrain control's shares as the noise level and the tuned settings where a tuning stage ran.

    python benchmarks/claims.py results/cifar10-tuned

(1) per-example (U-LiRA) against the population attacks: accuracy and TPR at 1% FPR;
(2) forget examples made more / less vulnerable than on the originals beyond noise, and how much
    the forget examples' vulnerability differs beyond noise (the dispersion; the retrain row's is
    the noise level);
(3) retained examples made more / less vulnerable;
(4) the share of forget examples that reach their retrain mean during unlearning, the median
    share of the run it takes, and the dispersion of each example's share of models that reach it
    (1: the examples reach it alike, the spread is binomial noise).
Also the utility and the NeurIPS 2023 challenge's score of each method.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

ATTACKS = ("ulira", "ulira_offline", "population_gaussian", "population_loss")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    r = ap.parse_args().results
    summary = pd.read_csv(r / "tables/summary.csv")
    findings = pd.read_csv(r / "tables/findings.csv").set_index("method")
    utility = pd.read_csv(r / "tables/utility.csv").set_index("method")
    methods = list(dict.fromkeys(summary.method))
    s = summary.set_index(["method", "attack"])
    pd.set_option("display.width", 200)

    if (r / "tables/tuning.csv").exists():
        t = pd.read_csv(r / "tables/tuning.csv")
        print(f"tuned settings (rule {t.rule.iloc[0]}):")
        print(
            t[t.picked][["method", "setting", "test_drop", "population_loss_accuracy", "ulira_accuracy"]].to_string(
                index=False
            )
        )
        print()

    rows = []
    for m in methods:
        row = {"method": m}
        for a in ATTACKS:
            if (m, a) in s.index:
                x = s.loc[(m, a)]
                row[f"{a} acc"] = f"{x.accuracy:.3f} [{x.accuracy_ci_low:.3f}, {x.accuracy_ci_high:.3f}]"
                row[f"{a} tpr1%"] = f"{x['tpr_at_1pct_fpr']:.3f}"
        rows.append(row)
    print("(1) per-example vs population, accuracy [95% CI] and TPR at 1% FPR:")
    print(pd.DataFrame(rows).to_string(index=False))
    print()
    cols = ["forget_share_worse", "forget_share_better", "forget_share_worse_any", "forget_dispersion"]
    cols = [c for c in cols if c in findings]  # tables written before the dispersion have none
    print("(2) forget examples more (worse) / less (better) vulnerable than on the originals, beyond two SE,")
    print("    and the variance of their U-LiRA accuracies over the sampling variance; the retrain row is the")
    print("    noise level of both:")
    print(findings[cols].to_string())
    print()
    cols = ["retained_share_worse", "retained_share_better", "retained_mean_change"]
    print("(3) retained examples (LiRA), the retrain row as noise:")
    print(findings[cols].drop(index="none", errors="ignore").to_string())
    print()
    print(
        "(4) rates: share of forget examples that reach their retrain mean during unlearning, median share of the run,"
    )
    print("    and the variance of each example's share of models that reach it over the binomial variance:")
    cols = ["share_reached", "median_reach_fraction", "reach_dispersion"]
    print(findings[[c for c in cols if c in findings]].dropna(how="all").to_string())
    print()
    cols = [
        "test_accuracy",
        "retain_accuracy",
        "forget_accuracy",
        "test_drop",
        "challenge_forget_score",
        "challenge_score",
    ]
    print("utility and the challenge's score:")
    print(utility[cols].to_string(float_format="%.4f"))


if __name__ == "__main__":
    main()
