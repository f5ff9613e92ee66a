"""The figures of the unlearning runs: how fast examples reach their retrain mean, the naive
per-example stopping rule against its base method, and privacy against utility. Each takes
tables and an output stem."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from umia import registry
from umia.report import findings
from umia.report.findings import method_order
from umia.report.style import (
    STOP_BASE,
    STOP_METHOD,
    attack_label,
    below,
    grid,
    method_colours,
    method_label,
    method_tick,
    plt,
    save,
)

Z_LIMIT = 10.0  # z beyond this (diverged runs reach 1e34) is drawn at the limit


def rates(rates: pd.DataFrame, stem: str, n_lines: int = 40, order: Sequence[str] = ()) -> None:
    """Each forget example's phi during unlearning, as z = (phi - retrain mean) / retrain sd
    (median over the models that forgot it), against the share of the run."""
    present = set(rates["method"])
    methods = [m for m in method_order(order or rates["method"].tolist()) if m in present]
    colours = method_colours(order or methods)
    fig, axes = grid(len(methods), size=(3.2, 2.9))
    rng = np.random.default_rng(0)
    for ax, m in zip(axes, methods, strict=True):
        r = rates[rates["method"] == m]
        wide = r.pivot_table(index="example_id", columns="fraction", values="z")
        wide = wide.replace([np.inf, -np.inf], np.nan).clip(-Z_LIMIT, Z_LIMIT)
        fr = wide.columns.to_numpy(float)
        ax.axhspan(-1, 1, color="#2ca02c", alpha=0.12, lw=0, label="retrain mean ± 1 sd")
        ax.axhline(0, color="#2ca02c", lw=1)
        pick = rng.choice(len(wide), size=min(n_lines, len(wide)), replace=False) if len(wide) else []
        for i in pick:
            ax.plot(fr, wide.iloc[i].to_numpy(), color=colours[m], lw=0.5, alpha=0.35)
        q = np.nanquantile(wide.to_numpy(), [0.1, 0.5, 0.9], axis=0) if len(wide) else np.full((3, len(fr)), np.nan)
        ax.plot(fr, q[1], color="k", lw=1.6, label="median over examples")
        ax.plot(fr, q[0], color="k", lw=0.8, ls=":", label="10% / 90% quantiles")
        ax.plot(fr, q[2], color="k", lw=0.8, ls=":")
        ax.set_title(method_label(m))
        ax.set_xlabel("share of the unlearning run (optimiser steps)")
        ax.set_ylabel(f"z of phi vs the retrain models\n(clipped at ±{Z_LIMIT:g})")
    fig.tight_layout()
    below(fig, axes[0], fontsize=7)
    save(fig, stem)


def reach(reach: pd.DataFrame, stem: str, order: Sequence[str] = ()) -> None:
    """Share of forget examples whose phi has reached its retrain mean, against the share of the
    unlearning run (median over the models that forgot each example); the legend gives each
    method's share of ``findings.reach_shares``."""
    shares = findings.reach_shares(reach, order).set_index("method")["share_reached"]
    colours = method_colours(order or shares.index.tolist())
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for m, done in shares.items():
        f = reach.loc[reach["method"] == m, "reach_fraction"].to_numpy(float)
        xs = np.unique(np.r_[0.0, f[np.isfinite(f) & (f <= 1)], 1.0])
        ys = [(f <= x).mean() for x in xs]
        xs, ys = np.r_[xs, 1.02], np.r_[ys, ys[-1]]  # the last step has a visible width
        ax.step(xs, ys, where="post", color=colours[m], lw=1.5, label=f"{m} ({100 * done:.0f}% reach it)")
    ax.set_xlabel("share of the unlearning run (optimiser steps)")
    ax.set_ylabel("share of forget examples at or below\ntheir retrain mean phi")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1.02)
    ax.set_title("Rates of unlearning")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    save(fig, stem)


# 6. per-example stopping ----------------------------------------------------------------------


def stopping(per_example: pd.DataFrame, rates: pd.DataFrame, stem: str, order: Sequence[str] = ()) -> None:
    """Did stopping each example at its retrain mean help? Per-example U-LiRA accuracy and the
    final distance to the retrain distribution, for the stopping method, its base (NegGrad+,
    where the experiment runs it) and the retrain control."""
    all_methods = per_example["method"].tolist()
    colours = method_colours(order or all_methods)
    stop = [m for m in dict.fromkeys(all_methods) if m.split("@")[0] == STOP_METHOD]
    base = [m for m in dict.fromkeys(all_methods) if m.split("@")[0] == STOP_BASE]  # none: no comparison
    shown = [m for m in ("retrain", *base, *stop) if m in all_methods]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    for m in shown:
        a = np.sort(findings.per_example_column(per_example, "ulira", m).dropna().to_numpy())
        if len(a):
            ax.step(
                a,
                np.arange(1, len(a) + 1) / len(a),
                where="post",
                color=colours[m],
                lw=1.5,
                label=f"{method_label(m)} (mean {a.mean():.3f})",
            )
    ax.axvline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xlabel("per-example U-LiRA accuracy")
    ax.set_ylabel("share of forget examples at or below")
    ax.set_title("Per-example vulnerability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=7)
    ax = axes[1]
    last = rates[rates["fraction"] == rates.groupby("method")["fraction"].transform("max")]
    bins = np.linspace(-4, 4, 41)
    for m in shown:
        z = last.loc[last["method"] == m, "z"].replace([np.inf, -np.inf], np.nan).dropna().clip(-3.99, 3.99)
        if len(z):
            ax.hist(z, bins=bins, histtype="step", color=colours[m], lw=1.5, density=True, label=method_label(m))
    ax.axvline(0, color="#2ca02c", lw=1)
    ax.set_xlabel("z of phi vs the retrain models at the end of unlearning\n(beyond ±4 drawn at the edges)")
    ax.set_ylabel("density over forget examples")
    ax.set_title("End of unlearning")
    if shown:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=7)
    fig.tight_layout()
    save(fig, stem)


# 7. ROC curves --------------------------------------------------------------------------------


def privacy_utility(
    summary: pd.DataFrame, utility: pd.DataFrame, tuning: pd.DataFrame | None, stem: str, order: Sequence[str]
) -> None:
    """Per method, test accuracy (x, 95% interval over models) against the accuracy of U-LiRA and
    of the population loss attack (y); the controls marked; with tuning, every setting of the
    grid on the tuning models (small hollow markers, the picked one ringed)."""
    colours = method_colours(order)
    util = utility.set_index("method")
    panels = (("ulira", "U-LiRA (per-example) accuracy"), ("population_loss", "population loss U-MIA accuracy"))
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6), sharex=True)
    for ax, (attack, ylabel) in zip(axes, panels, strict=True):
        s = summary[summary["attack"] == attack].set_index("method")
        for m in order:
            if m not in s.index or m not in util.index:
                continue
            u, a = util.loc[m], s.loc[m]
            marker = {"none": "s", "retrain": "*"}.get(m, "o")
            xerr = [[u.test_accuracy - u.test_accuracy_ci_low], [u.test_accuracy_ci_high - u.test_accuracy]]
            yerr = [[a.accuracy - a.accuracy_ci_low], [a.accuracy_ci_high - a.accuracy]]
            ax.errorbar(
                u.test_accuracy,
                a.accuracy,
                xerr=np.nan_to_num(np.clip(xerr, 0, None)),
                yerr=np.nan_to_num(np.clip(yerr, 0, None)),
                fmt=marker,
                ms=11 if marker == "*" else 7,
                color=colours.get(m, "#777"),
                label=method_tick(m).replace("\n", " "),
                capsize=2,
                lw=0.8,
            )
        if tuning is not None and f"{attack}_accuracy" in tuning:
            for m, g in tuning.groupby("method", sort=False):
                c = colours.get(m, "#777")
                ax.scatter(g.test_accuracy, g[f"{attack}_accuracy"], s=22, facecolors="none", edgecolors=c, lw=0.9)
                p = g[g.picked]
                ax.scatter(p.test_accuracy, p[f"{attack}_accuracy"], s=90, facecolors="none", edgecolors=c, lw=1.6)
        ax.axhline(0.5, color="k", ls="--", lw=0.8)
        ax.set_xlabel("test accuracy (mean over models)")
        ax.set_ylabel(ylabel)
    axes[0].set_title("Per-example attack")
    axes[1].set_title("Population attack")
    handles, labels = axes[0].get_legend_handles_labels()
    if tuning is not None:
        handles.append(
            plt.Line2D([], [], ls="", marker="o", mfc="none", mec="#555", label="tuning grid (tuning models)")
        )
        labels.append("tuning grid (tuning models; ringed: picked)")
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8, bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    save(fig, stem)


def efficiency(table: pd.DataFrame, stem: str, order: Sequence[str] = ()) -> None:
    """Each attack's accuracy against the number of shadow models it is fit on (log scale), one
    panel a method: the mean over random subsets with their 2.5-97.5% range, and the full study's
    accuracy at the right end (a dot)."""
    methods = method_order(order or table["method"].tolist())
    methods = [m for m in methods if m in set(table["method"])]
    fig, axes = grid(len(methods), size=(3.0, 2.8), sharex=True, sharey=True)
    for ax, m in zip(axes, methods, strict=True):
        for a in [a for a in registry.ATTACKS if a in set(table["attack"])]:
            rows = table[(table["method"] == m) & (table["attack"] == a)].sort_values("n_shadow")
            part, full = rows[~rows["full"]], rows[rows["full"]]
            colour = registry.ATTACKS[a].colour
            if len(part):
                ax.plot(part["n_shadow"], part["accuracy"], color=colour, lw=1.3, marker=".", label=attack_label(a))
                ax.fill_between(
                    part["n_shadow"], part["accuracy_low"], part["accuracy_high"], color=colour, alpha=0.15, lw=0
                )
            if len(full):
                label = None if len(part) else attack_label(a)
                ax.plot(full["n_shadow"], full["accuracy"], color=colour, marker="o", ls="", ms=4, label=label)
        ax.axhline(0.5, color="k", ls="--", lw=0.8, label="chance")
        ax.set_xscale("log", base=2)
        ax.set_title(method_label(m))
        ax.set_xlabel("shadow models")
        ax.set_ylabel("attack accuracy")
    fig.tight_layout()
    below(fig, axes[0], fontsize=7)
    save(fig, stem)
