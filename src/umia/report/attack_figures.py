"""The figures of the attacks: population against per-example accuracy, the ROC curves, the
spread of per-example accuracy, the examples best and least protected, each example before and
after unlearning, and the retained examples' change. Each takes tables and an output stem."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd

from umia import registry
from umia.report import findings
from umia.report.findings import method_order
from umia.report.style import (
    attack_label,
    attacks_in,
    below,
    grid,
    method_colours,
    method_label,
    method_tick,
    plt,
    save,
    violins,
)

# 1. population vs per-example ---------------------------------------------------------------


def attack_accuracy(summary: pd.DataFrame, stem: str) -> None:
    """Accuracy and TPR at 1% FPR of each attack on each method, with 95% bootstrap intervals."""
    methods = method_order(summary["method"].tolist())
    attacks = attacks_in("attack_accuracy", summary["attack"].tolist())
    fig, axes = plt.subplots(2, 1, figsize=(2.0 + 1.15 * len(methods), 7.0))
    width = 0.8 / max(1, len(attacks))
    x = np.arange(len(methods))
    panels = (
        ("accuracy", "attack accuracy\n(share of trials guessed right)", 0.5, "chance (0.5)"),
        ("tpr_at_1pct_fpr", "true-positive rate at 1% false-positive rate", 0.01, "chance (0.01)"),
    )
    for ax, (col, ylabel, chance, chance_label) in zip(axes, panels, strict=True):
        for j, a in enumerate(attacks):
            s = summary[summary["attack"] == a].set_index("method").reindex(methods)
            y = s[col].to_numpy(float)
            lo, hi = s.get(f"{col}_ci_low"), s.get(f"{col}_ci_high")
            err = None
            if lo is not None and hi is not None:
                err = np.vstack([y - lo.to_numpy(float), hi.to_numpy(float) - y]).clip(min=0)
                err = np.nan_to_num(err)
            ax.bar(
                x + (j - (len(attacks) - 1) / 2) * width,
                y,
                width,
                yerr=err,
                capsize=2,
                label=registry.ATTACKS[a].label,
                color=registry.ATTACKS[a].colour,
                error_kw={"lw": 0.8},
            )
        ax.axhline(chance, color="k", ls="--", lw=0.8, label=chance_label)
        ax.set_xticks(x, [method_tick(m) for m in methods], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("unlearning method")
    axes[0].set_ylim(0.4, 1.0)
    axes[1].set_ylim(0, max(0.05, float(np.nanmax(summary["tpr_at_1pct_fpr"])) * 1.25))
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=7)
    axes[0].set_title("Accuracy on the forget examples")
    axes[1].set_title("TPR at 1% FPR")
    fig.tight_layout()
    save(fig, stem)


# 2. variance across examples -----------------------------------------------------------------


def per_example_distribution(
    per_example: pd.DataFrame, stem: str, attack: str = "ulira", order: Sequence[str] = ()
) -> None:
    """Distribution of per-example attack accuracy for each method."""
    df = per_example[per_example["attack"] == attack]
    methods = method_order(df["method"].tolist())
    colours = method_colours(order or methods)
    data = [df.loc[df["method"] == m, "accuracy"].dropna().to_numpy() for m in methods]
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * len(methods), 3.8))
    violins(ax, data, [colours[m] for m in methods], widths=0.8)
    ax.axhline(0.5, color="k", ls="--", lw=0.8, label="chance (0.5)")
    ax.set_xticks(np.arange(1, len(methods) + 1), [method_tick(m) for m in methods], fontsize=8)
    ax.set_xlabel("unlearning method")
    ax.set_ylabel(f"per-example accuracy of {attack_label(attack)}\n(share of that example's trials)")
    ax.set_ylim(-0.02, 1.02)
    trials = int(df["n_trials"].median()) if len(df) else 0
    ax.set_title(f"Per-example accuracy ({trials} target models an example)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=7)
    save(fig, stem)


def protected_examples(
    per_example: pd.DataFrame, examples: pd.DataFrame, stem: str, k: int = 6, text: bool = False
) -> None:
    """The k least and k most vulnerable forget examples of each method, as images (``text``:
    the start of each review)."""
    df = per_example[per_example["attack"] == "ulira"]
    methods = [m for m in method_order(df["method"].tolist()) if m != "retrain"]
    ex = examples.set_index("example_id")
    width, height = (2.0, 1.9) if text else (1.05, 1.3)
    fig, axes = plt.subplots(len(methods), 2 * k, figsize=(width * 2 * k, height * len(methods) + 0.6), squeeze=False)
    for row, m in enumerate(methods):
        acc = df[df["method"] == m].dropna(subset=["accuracy"]).sort_values(["accuracy", "example_id"])
        acc = acc[acc["example_id"].isin(ex.index)]
        picks = list(acc.head(k).itertuples()) + list(acc.tail(k).itertuples())
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(picks):
                ax.set_visible(False)
                continue
            r = picks[col]
            e = ex.loc[r.example_id]
            if text:
                review = textwrap.fill(str(e.get("text", ""))[:180] + "…", 30)
                ax.text(0.04, 0.96, review, va="top", ha="left", fontsize=4.5, transform=ax.transAxes)
            else:
                img = np.frombuffer(e["pixels"], np.uint8).reshape(e["height"], e["width"], e["channels"])
                ax.imshow(img[..., 0] if e["channels"] == 1 else img, cmap="gray" if e["channels"] == 1 else None)
            ax.set_title(f"{e['label_name']}\nacc {r.accuracy:.2f}", fontsize=7)
            for side in ax.spines.values():
                side.set_color("#2980b9" if col < k else "#c0392b")
                side.set_linewidth(2)
        axes[row][0].set_ylabel(method_tick(m), fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    save(fig, stem)


# 3. lower for some, higher for others ---------------------------------------------------------


def before_after(per_example: pd.DataFrame, stem: str, order: Sequence[str] = ()) -> None:
    """Per-example vulnerability before unlearning (LiRA on the originals: the ``none`` control's
    U-LiRA) against after (U-LiRA on each method's unlearned models), with the shares of
    ``findings.forget_changes`` in each panel's title."""
    changes = findings.forget_changes(per_example)
    colours = method_colours(order or per_example["method"].tolist())
    fig, axes = grid(len(changes), size=(3.0, 3.0))
    rng = np.random.default_rng(0)
    for ax, (m, (row, b, a)) in zip(axes, changes.items(), strict=True):
        worse, better = row["share_worse"], row["share_better"]
        jitter = rng.uniform(-0.008, 0.008, (2, len(a)))
        ax.scatter(b + jitter[0], a + jitter[1], s=6, alpha=0.35, color=colours[m], linewidths=0)
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--")
        ax.set_xlim(0, 1.0)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("before: U-LiRA accuracy on the originals")
        ax.set_ylabel("after: U-LiRA accuracy")
        ax.set_title(f"{method_label(m)}\n{100 * worse:.0f}% worse, {100 * better:.0f}% better", fontsize=8)
    fig.tight_layout()
    save(fig, stem)


# 4. the retained examples ---------------------------------------------------------------------


def retained_change(per_example: pd.DataFrame, stem: str, order: Sequence[str] = ()) -> None:
    """How each method moved the LiRA vulnerability of the examples it kept: per-example change
    of the retained-example LiRA accuracy against the originals, annotated with the shares of
    ``findings.retained_changes``."""
    kept = findings.retained_changes(per_example, order)
    methods = list(kept)
    colours = method_colours(order or per_example["method"].tolist())
    rows = [row for row, _, _ in kept.values()]
    changes = [a - b for _, b, a in kept.values()]
    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * max(1, len(methods)), 3.8))
    violins(ax, changes, [colours[m] for m in methods])
    for i, r in enumerate(rows):
        ax.annotate(
            f"{100 * r['share_worse']:.0f}% worse\nbeyond noise\n({100 * r['share_worse_any']:.0f}% at all)\n"
            f"mean {r['mean_change']:+.3f}",
            (i + 1, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="top",
            fontsize=7,
        )
    ax.axhline(0, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(1, len(methods) + 1), [method_tick(m) for m in methods], fontsize=8)
    ax.set_xlabel("unlearning method")
    ax.set_ylabel("change of per-example LiRA accuracy\n(after unlearning - originals)")
    ax.set_title("Retained examples")
    lim = max([0.1, *[float(np.abs(d).max()) for d in changes if len(d)]])
    ax.set_ylim(-lim * 1.05, lim * 1.45)
    save(fig, stem)


# 5. rates of unlearning -----------------------------------------------------------------------


def roc(roc: pd.DataFrame, stem: str) -> None:
    """Log-log ROC curves of every attack on every method (LiRA's standard plot)."""
    methods = method_order(roc["method"].tolist())
    fig, axes = grid(len(methods), size=(3.0, 3.0), sharex=True, sharey=True)
    for ax, m in zip(axes, methods, strict=True):
        r = roc[roc["method"] == m]
        for a in attacks_in("roc"):
            label = registry.ATTACKS[a].label
            c = r[r["attack"] == a].sort_values("fpr")
            if len(c):
                retained = a == "lira_retained"  # members vs non-members among the kept examples
                ax.loglog(
                    c["fpr"].clip(lower=1e-5),
                    c["tpr"].clip(lower=1e-5),
                    color=registry.ATTACKS[a].colour,
                    lw=1.0 if retained else 1.2,
                    ls=":" if retained else "-",
                    label=f"{label} (members vs non-members)" if retained else label,
                )
        ax.loglog([1e-5, 1], [1e-5, 1], color="k", ls="--", lw=0.8, label="chance")
        ax.set_xlim(1e-4, 1)
        ax.set_ylim(1e-4, 1)
        ax.set_title(method_label(m))
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
    fig.tight_layout()
    below(fig, axes[0], fontsize=7)
    save(fig, stem)


# the rule's entry point -----------------------------------------------------------------------


# 7. privacy against utility --------------------------------------------------------------------
