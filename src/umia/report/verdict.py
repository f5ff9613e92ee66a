"""The controls' verdict, in words, from the summary table alone: the retrain control must sit at
chance and the none control must be attacked. When the none control is not attacked beyond
noise the study cannot tell anything (every method "looks unlearned"); the terminal, the report's
first line and every figure say so. Light (pandas only): the workflow's last step prints it."""

from __future__ import annotations

import pandas as pd

from umia.report.format import attack_label, ci, fmt

CHANCE_TOLERANCE = 0.03  # the retrain control must sit within 0.5 +- this (its interval must cover 0.5 or lie inside)

UNINFORMATIVE = (
    "this study cannot tell anything: the per-example attack does not catch even the none control "
    "(the originals; U-LiRA accuracy {acc}), so every method looks unlearned. Usually the models do not "
    "memorise their training examples (train more epochs, regularise less: label smoothing, weight decay, "
    "augmentation; or use a larger network), or there are too few models (raise n_models)"
)


def controls(summary: pd.DataFrame) -> list[tuple[bool, str]]:
    """The two controls in words: every attack on the forget examples puts the retrain control at
    chance (at its own null, where the summary has one: the loss attack's permuted-label level);
    U-LiRA catches the none control (its interval's low end above chance + tolerance)."""
    out = []
    retrain = summary[(summary["method"] == "retrain") & (summary["attack"] != "lira_retained")]
    for attack, r in retrain.set_index("attack").iterrows():
        null = r.get("null_accuracy", float("nan"))
        if null == null:  # the attack's own null (the loss attack's cross-validation sits below 0.5)
            ok = r["accuracy_ci_low"] - CHANCE_TOLERANCE <= null <= r["accuracy_ci_high"] + CHANCE_TOLERANCE
            should = f"should be at its null, {fmt(null)}: the same test on permuted labels"
        else:
            ok = r["accuracy_ci_low"] - CHANCE_TOLERANCE <= 0.5 <= r["accuracy_ci_high"] + CHANCE_TOLERANCE
            should = "should be at chance, 0.5"
        out.append((bool(ok), f"retrain control: {attack_label(attack)} accuracy {ci(r, 'accuracy')} ({should})"))
    none = summary[(summary["method"] == "none") & (summary["attack"] == "ulira")]
    if len(none):
        r = none.iloc[0]
        out.append(
            (
                bool(informative(summary)),
                f"none control: U-LiRA accuracy {ci(r, 'accuracy')} (should be above chance by more than "
                f"{CHANCE_TOLERANCE})",
            )
        )
    return out


def informative(summary: pd.DataFrame) -> bool:
    """Whether U-LiRA catches the none control beyond noise (True where there is no such row)."""
    none = summary[(summary["method"] == "none") & (summary["attack"] == "ulira")]
    return not len(none) or bool(none.iloc[0]["accuracy_ci_low"] > 0.5 + CHANCE_TOLERANCE)


def warning(summary: pd.DataFrame) -> str | None:
    """The "cannot tell anything" sentence, or None when the study is informative."""
    if informative(summary):
        return None
    r = summary[(summary["method"] == "none") & (summary["attack"] == "ulira")].iloc[0]
    return UNINFORMATIVE.format(acc=ci(r, "accuracy"))


def terminal(summary_csv: str) -> str:
    """What the run prints at its end: each control's verdict and, if it applies, the warning."""
    s = pd.read_csv(summary_csv)
    lines = [f"  {'holds' if ok else 'FAILS'}  {text}" for ok, text in controls(s)]
    w = warning(s)
    if w:
        lines.append(f"umia: WARNING: {w}.")
    elif not all(ok for ok, _ in controls(s)):
        lines.append("umia: WARNING: a control misbehaves: the results are not trustworthy.")
    return "controls:\n" + "\n".join(lines)


def answer(summary_csv: str, utility_csv: str | None = None) -> str:
    """The study's answer, one line per unlearning method: what the per-example attack (U-LiRA)
    sees against what the literature's population loss attack sees (accuracy, and TPR at 1% FPR),
    and the method's test-accuracy drop from the originals."""
    s = pd.read_csv(summary_csv)
    util = pd.read_csv(utility_csv).set_index("method") if utility_csv else None
    rows = s.set_index(["method", "attack"])
    methods = [m for m in dict.fromkeys(s["method"]) if m not in ("none", "retrain")]
    if not methods:
        return ""
    width = max(len(m) for m in methods)
    head = f"  {'method':<{width}}  U-LiRA acc  TPR@1%  |  loss attack acc  TPR@1%  |  test-acc drop"
    lines = ["per method (U-LiRA, per example, against the population loss attack of the literature):", head]

    def cell(m: str, attack: str, col: str) -> str:
        return fmt(rows[col].get((m, attack), float("nan")))

    for m in methods:
        drop = fmt(util["test_drop"].get(m, float("nan"))) if util is not None and "test_drop" in util else "–"
        line = (
            f"  {m:<{width}}  {cell(m, 'ulira', 'accuracy'):>10}  {cell(m, 'ulira', 'tpr_at_1pct_fpr'):>6}  |  "
            f"{cell(m, 'population_loss', 'accuracy'):>15}  {cell(m, 'population_loss', 'tpr_at_1pct_fpr'):>6}  |  "
            f"{drop:>13}"
        )
        diverged = rows["diverged_models"].get((m, "ulira"), 0)
        if diverged and diverged == diverged:  # not NaN
            line += f"  ({int(diverged)} models diverged)"
        lines.append(line)
    return "\n".join(lines)
