"""Figures drawn from the attack tables alone (no model, no GPU)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from umia.io import atomic_path  # noqa: E402

ATTACK_LABELS = {
    "ulira": "U-LiRA (per-example)",
    "population_gaussian": "population Gaussian",
    "population_loss": "population loss (LR)",
}
ATTACK_COLOURS = {"ulira": "#c0392b", "population_gaussian": "#2980b9", "population_loss": "#7f8c8d"}


def _save(fig: plt.Figure, stem: str) -> None:
    for ext in ("png", "pdf"):
        with atomic_path(f"{stem}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
    plt.close(fig)


def _method_order(methods: Sequence[str]) -> list[str]:
    rest = [m for m in dict.fromkeys(methods) if m not in ("none", "retrain")]
    return [m for m in ("none", "retrain") if m in methods] + rest


def _tick(method: str) -> str:
    return f"{method}\n(control)" if method in ("none", "retrain") else method


def attack_accuracy(summary: pd.DataFrame, stem: str) -> None:
    """Population vs per-example U-MIA accuracy, one group of bars per method."""
    methods = _method_order(summary["method"].tolist())
    attacks = [a for a in ATTACK_LABELS if a in set(summary["attack"])]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(methods), 3.6))
    width = 0.8 / len(attacks)
    x = np.arange(len(methods))
    for j, a in enumerate(attacks):
        acc = summary[summary["attack"] == a].set_index("method")["accuracy"].reindex(methods)
        ax.bar(x + (j - (len(attacks) - 1) / 2) * width, acc, width, label=ATTACK_LABELS[a], color=ATTACK_COLOURS[a])
    ax.axhline(0.5, color="k", ls="--", lw=0.8, label="chance")
    ax.set_xticks(x, [_tick(m) for m in methods])
    ax.set_ylabel("attack accuracy (fraction of trials correct)")
    ax.set_ylim(0.4, 1.0)
    ax.set_title("Population vs per-example U-MIA")
    ax.legend(fontsize=8, loc="upper right")
    _save(fig, stem)


def per_example_distribution(per_example: pd.DataFrame, stem: str, attack: str = "ulira") -> None:
    """Distribution of per-example attack accuracy for each method."""
    df = per_example[per_example["attack"] == attack]
    methods = _method_order(df["method"].tolist())
    data = [df.loc[df["method"] == m, "accuracy"].dropna().to_numpy() for m in methods]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(methods), 3.6))
    ax.violinplot(data, showmedians=True)
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xticks(np.arange(1, len(methods) + 1), [_tick(m) for m in methods])
    ax.set_ylabel(f"per-example accuracy of {ATTACK_LABELS.get(attack, attack)}")
    ax.set_ylim(-0.02, 1.02)
    trials = int(df["n_trials"].median()) if len(df) else 0
    ax.set_title(
        "Vulnerability varies across forget examples\n"
        f"({trials} trials per example; the retrain control's spread is sampling noise alone)",
        fontsize=10,
    )
    _save(fig, stem)


def figures(summary: str, per_example: str, out_dir: str) -> None:
    out = Path(out_dir)
    attack_accuracy(pd.read_csv(summary), str(out / "attack_accuracy"))
    per_example_distribution(pd.read_parquet(per_example), str(out / "per_example_accuracy"))
