"""The findings figures, drawn from the tables alone (no model, no GPU).

One function per figure; each takes data frames and an output stem and writes ``stem.png`` and
``stem.pdf``; ``DRAW`` maps each figure of ``umia.registry.FIGURES`` to its function. Every method
keeps one colour across figures (``method_colours``); every attack keeps the label and colour of
its ``umia.registry.ATTACKS`` entry, and a figure shows the attacks whose entry lists it. The
numbers the figures state (shares of examples that got worse, shares that reached their retrain
mean) come from ``umia.findings``, which also writes them to ``tables/findings.csv``.
"""

from __future__ import annotations

import contextlib
import contextvars
import textwrap
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from umia import findings, registry, verdict  # noqa: E402
from umia.findings import method_order  # noqa: E402
from umia.io import atomic_path  # noqa: E402

CONTROL_COLOURS = {"none": "#404040", "retrain": "#2ca02c"}
# Colour-blind-friendly order (Okabe-Ito, then Tableau), without the controls' black and green.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#9467bd",
    "#CC79A7",
    "#D55E00",
    "#56B4E9",
    "#8c564b",
    "#F0E442",
    "#17becf",
    "#e377c2",
    "#bcbd22",
    "#1f77b4",
)
STOP_METHOD, STOP_BASE = "per_example_stop", "neggrad_plus"

plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8})


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """One colour per method, fixed by its place in the method list (controls: black, green)."""
    rest = [m for m in method_order(methods) if m not in CONTROL_COLOURS]
    return {**CONTROL_COLOURS, **{m: PALETTE[i % len(PALETTE)] for i, m in enumerate(rest)}}


def _label(method: str) -> str:
    return f"{method} (control)" if method in ("none", "retrain") else method


def _tick(method: str) -> str:
    return f"{method}\n(control)" if method in ("none", "retrain") else method.replace("@", "\n@")


# a warning every figure drawn inside ``banner`` carries above its title (an uninformative study)
_BANNER: contextvars.ContextVar[str | None] = contextvars.ContextVar("umia_figure_banner", default=None)


@contextlib.contextmanager
def banner(text: str | None) -> Iterator[None]:
    token = _BANNER.set(text)
    try:
        yield
    finally:
        _BANNER.reset(token)


def _save(fig: plt.Figure, stem: str) -> None:
    text = _BANNER.get()
    if text:
        wrapped = textwrap.fill(f"WARNING: {text}.", max(60, int(fig.get_figwidth() * 14)))
        fig.text(0.5, 1.0, wrapped, ha="center", va="bottom", color="#b0261c", fontsize=9, weight="bold")
    for ext in ("png", "pdf"):
        with atomic_path(f"{stem}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
    plt.close(fig)


def _grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.0, 2.8), **kw):
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def attacks_in(figure: str, present: Sequence[str] | None = None) -> list[str]:
    """The attacks (registry order) whose ``registry.ATTACKS`` entry lists ``figure``, and, given
    ``present``, that are among those."""
    keep = None if present is None else set(present)
    return [a for a, spec in registry.ATTACKS.items() if figure in spec.figures and (keep is None or a in keep)]


def attack_label(attack: str) -> str:
    """An attack's label in figures and the report (its name where it is not registered)."""
    spec = registry.ATTACKS.get(attack)
    return spec.label if spec else attack


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
        ax.set_xticks(x, [_tick(m) for m in methods], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("unlearning method")
    axes[0].set_ylim(0.4, 1.0)
    axes[1].set_ylim(0, max(0.05, float(np.nanmax(summary["tpr_at_1pct_fpr"])) * 1.25))
    axes[0].legend(loc="upper left", ncol=4)
    axes[0].set_title("Attack accuracy on the forget examples")
    axes[1].set_title("Attacks at a low false-positive rate")
    fig.suptitle("Per-example (U-LiRA) vs population U-MIAs; bars: 95% bootstrap intervals over target models")
    fig.tight_layout()
    _save(fig, stem)


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
    keep = [i for i, d in enumerate(data) if len(d)]
    parts = ax.violinplot([data[i] for i in keep], positions=[i + 1 for i in keep], showmedians=True, widths=0.8)
    for body, i in zip(parts["bodies"], keep, strict=True):
        body.set_facecolor(colours[methods[i]])
        body.set_alpha(0.6)
    for key in ("cmedians", "cmins", "cmaxes", "cbars"):
        parts[key].set_color("k")
        parts[key].set_linewidth(0.8)
    ax.axhline(0.5, color="k", ls="--", lw=0.8, label="chance (0.5)")
    ax.set_xticks(np.arange(1, len(methods) + 1), [_tick(m) for m in methods], fontsize=8)
    ax.set_xlabel("unlearning method")
    ax.set_ylabel(f"per-example accuracy of {attack_label(attack)}\n(share of that example's trials)")
    ax.set_ylim(-0.02, 1.02)
    trials = int(df["n_trials"].median()) if len(df) else 0
    ax.set_title(
        "Vulnerability varies across forget examples "
        f"({trials} target models per example; the retrain control's spread is sampling noise alone)"
    )
    ax.legend(loc="lower right")
    _save(fig, stem)


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
        axes[row][0].set_ylabel(_tick(m), fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(
        f"Forget examples by per-example U-LiRA accuracy: the {k} best protected (blue, left) "
        f"and the {k} most exposed (red, right) of each method"
    )
    fig.tight_layout()
    _save(fig, stem)


# 3. lower for some, higher for others ---------------------------------------------------------


def before_after(per_example: pd.DataFrame, stem: str, order: Sequence[str] = ()) -> None:
    """Per-example vulnerability before unlearning (LiRA on the originals: the ``none`` control's
    U-LiRA) against after (U-LiRA on each method's unlearned models), with the shares of
    ``findings.forget_changes`` in each panel's title."""
    changes = findings.forget_changes(per_example)
    colours = method_colours(order or per_example["method"].tolist())
    fig, axes = _grid(len(changes), size=(3.0, 3.0))
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
        ax.set_title(
            f"{_label(m)}\n{100 * worse:.0f}% worse, {100 * better:.0f}% better beyond noise\n"
            f"({100 * row['share_worse_any']:.0f}% worse at all)",
            fontsize=8,
        )
    fig.suptitle(
        "Each forget example's vulnerability before (the none control: originals against retrains) and after "
        "unlearning\n(above the diagonal: worse; 'beyond noise': by more than two standard errors of the two "
        "accuracies)"
    )
    fig.tight_layout()
    _save(fig, stem)


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
    keep = [i for i, d in enumerate(changes) if len(d)]
    if keep:
        parts = ax.violinplot([changes[i] for i in keep], positions=[i + 1 for i in keep], showmedians=True)
        for body, i in zip(parts["bodies"], keep, strict=True):
            body.set_facecolor(colours[methods[i]])
            body.set_alpha(0.6)
        for key in ("cmedians", "cmins", "cmaxes", "cbars"):
            parts[key].set_color("k")
            parts[key].set_linewidth(0.8)
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
    ax.set_xticks(np.arange(1, len(methods) + 1), [_tick(m) for m in methods], fontsize=8)
    ax.set_xlabel("unlearning method")
    ax.set_ylabel("change of per-example LiRA accuracy\n(after unlearning - originals)")
    ax.set_title("Retained examples: how unlearning moved their membership vulnerability (above 0: worse)")
    lim = max([0.1, *[float(np.abs(d).max()) for d in changes if len(d)]])
    ax.set_ylim(-lim * 1.05, lim * 1.45)
    _save(fig, stem)


# 5. rates of unlearning -----------------------------------------------------------------------


Z_LIMIT = 10.0  # z beyond this (diverged runs reach 1e34) is drawn at the limit


def rates(rates: pd.DataFrame, stem: str, n_lines: int = 40, order: Sequence[str] = ()) -> None:
    """Each forget example's phi during unlearning, as z = (phi - retrain mean) / retrain sd
    (median over the models that forgot it), against the share of the run."""
    present = set(rates["method"])
    methods = [m for m in method_order(order or rates["method"].tolist()) if m in present]
    colours = method_colours(order or methods)
    fig, axes = _grid(len(methods), size=(3.2, 2.9))
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
        ax.set_title(m)
        ax.set_xlabel("share of the unlearning run (optimiser steps)")
        ax.set_ylabel(f"z of phi vs the retrain models\n(clipped at ±{Z_LIMIT:g})")
    axes[0].legend(loc="best", fontsize=7)
    fig.suptitle(
        "Rates of unlearning: each forget example's confidence during unlearning against its retrain "
        "distribution (thin lines: individual examples)"
    )
    fig.tight_layout()
    _save(fig, stem)


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
    ax.set_title("Examples are unlearned at different rates")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    _save(fig, stem)


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
                label=f"{_label(m)} (mean {a.mean():.3f})",
            )
    ax.axvline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xlabel("per-example U-LiRA accuracy")
    ax.set_ylabel("share of forget examples at or below")
    ax.set_title("Per-example vulnerability (further left: better protected)")
    ax.legend(loc="upper left", fontsize=7)
    ax = axes[1]
    last = rates[rates["fraction"] == rates.groupby("method")["fraction"].transform("max")]
    bins = np.linspace(-4, 4, 41)
    for m in shown:
        z = last.loc[last["method"] == m, "z"].replace([np.inf, -np.inf], np.nan).dropna().clip(-3.99, 3.99)
        if len(z):
            ax.hist(z, bins=bins, histtype="step", color=colours[m], lw=1.5, density=True, label=_label(m))
    ax.axvline(0, color="#2ca02c", lw=1)
    ax.set_xlabel("z of phi vs the retrain models at the end of unlearning\n(beyond ±4 drawn at the edges)")
    ax.set_ylabel("density over forget examples")
    ax.set_title("Where the forget examples end up (0: the retrain mean)")
    if shown:
        ax.legend(loc="upper left", fontsize=7)
    fig.suptitle("Per-example stopping: drop each example once its phi reaches the retrain mean")
    fig.tight_layout()
    _save(fig, stem)


# 7. ROC curves --------------------------------------------------------------------------------


def roc(roc: pd.DataFrame, stem: str) -> None:
    """Log-log ROC curves of every attack on every method (LiRA's standard plot)."""
    methods = method_order(roc["method"].tolist())
    fig, axes = _grid(len(methods), size=(3.0, 3.0), sharex=True, sharey=True)
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
        ax.set_title(_label(m))
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
    axes[-1].legend(loc="lower right", fontsize=6)
    fig.suptitle("ROC curves on log-log axes (the low false-positive region is what matters for privacy)")
    fig.tight_layout()
    _save(fig, stem)


# the rule's entry point -----------------------------------------------------------------------


# 7. privacy against utility --------------------------------------------------------------------
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
                label=_tick(m).replace("\n", " "),
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
    axes[0].set_title("Privacy (per-example attack) against utility")
    axes[1].set_title("Privacy (population attack) against utility")
    handles, labels = axes[0].get_legend_handles_labels()
    if tuning is not None:
        handles.append(
            plt.Line2D([], [], ls="", marker="o", mfc="none", mec="#555", label="tuning grid (tuning models)")
        )
        labels.append("tuning grid (tuning models; ringed: picked)")
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8, bbox_to_anchor=(0.5, -0.08))
    fig.suptitle("Lower is more private (0.5: the retrains); further right keeps more utility")
    fig.tight_layout()
    _save(fig, stem)


class Tables:
    """The tables the figures are drawn from, each read on first use (paths; rates and reach
    only where the experiment has unlearning methods)."""

    def __init__(
        self,
        summary: str,
        per_example: str,
        roc: str,
        examples: str,
        rates: str | None = None,
        reach: str | None = None,
        task: str = "image",
        utility: str | None = None,
        tuning: str | None = None,
    ):
        self.task = task
        self.paths = {
            "summary": summary,
            "per_example": per_example,
            "roc": roc,
            "examples": examples,
            "rates": rates,
            "reach": reach,
            "utility": utility,
            "tuning": tuning,
        }

    def has(self, name: str) -> bool:
        return bool(self.paths[name])

    @cached_property
    def summary(self) -> pd.DataFrame:
        return pd.read_csv(self.paths["summary"])

    @cached_property
    def per_example(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["per_example"])

    @cached_property
    def roc(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["roc"])

    @cached_property
    def examples(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["examples"])

    @cached_property
    def rates(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["rates"])

    @cached_property
    def reach(self) -> pd.DataFrame:
        return pd.read_parquet(self.paths["reach"])

    @cached_property
    def utility(self) -> pd.DataFrame:
        return pd.read_csv(self.paths["utility"])

    @cached_property
    def tuning(self) -> pd.DataFrame | None:
        return pd.read_csv(self.paths["tuning"]) if self.paths["tuning"] else None

    @cached_property
    def order(self) -> list[str]:
        """The config's method order (the summary's); one colour per method throughout."""
        return method_order(self.summary["method"].tolist())


# figure (a key of registry.FIGURES) -> its drawing from the tables into a stem
DRAW: dict[str, Callable[[Tables, str], None]] = {
    "attack_accuracy": lambda t, stem: attack_accuracy(t.summary, stem),
    "roc": lambda t, stem: roc(t.roc, stem),
    "per_example_accuracy": lambda t, stem: per_example_distribution(t.per_example, stem, order=t.order),
    "protected_examples": lambda t, stem: protected_examples(t.per_example, t.examples, stem, text=t.task == "text"),
    "before_after": lambda t, stem: before_after(t.per_example, stem, order=t.order),
    "retained_change": lambda t, stem: retained_change(t.per_example, stem, order=t.order),
    "rates": lambda t, stem: rates(t.rates, stem, order=t.order),
    "reach": lambda t, stem: reach(t.reach, stem, order=t.order),
    "per_example_stop": lambda t, stem: stopping(t.per_example, t.rates, stem, order=t.order),
    "privacy_utility": lambda t, stem: privacy_utility(t.summary, t.utility, t.tuning, stem, order=t.order),
}
# beyond the four always there
NEEDS_TABLE = {"rates": "rates", "reach": "reach", "per_example_stop": "rates", "privacy_utility": "utility"}


def default_names(tables: Tables, task: str = "image") -> list[str]:
    """The figures the tables call for: ``registry.figure_names`` of the task and the methods in
    the summary (base names, without overrides), less those whose table is not given."""
    methods = list(dict.fromkeys(m.split("@")[0] for m in tables.order if m not in findings.CONTROLS))
    names = registry.figure_names(task, methods)
    return [n for n in names if n not in NEEDS_TABLE or tables.has(NEEDS_TABLE[n])]


def figures(
    *,
    summary: str,
    per_example: str,
    roc_table: str,
    examples: str,
    out_dir: str,
    rates_table: str | None = None,
    reach_table: str | None = None,
    names: Sequence[str] | None = None,
    task: str = "image",
    utility_table: str | None = None,
    tuning_table: str | None = None,
) -> list[str]:
    """Draw the figures ``names`` (default: ``default_names``) from the tables into ``out_dir``
    as <name>.png and <name>.pdf; returns the names drawn. When the study is uninformative
    (umia.verdict.warning) every figure carries the warning."""
    t = Tables(summary, per_example, roc_table, examples, rates_table, reach_table, task, utility_table, tuning_table)
    names = default_names(t, task) if names is None else list(names)
    unknown = [n for n in names if n not in DRAW]
    if unknown:
        raise ValueError(f"no drawing for figure(s) {', '.join(unknown)}; known: {', '.join(DRAW)}")
    lacking = [n for n in names if n in NEEDS_TABLE and not t.has(NEEDS_TABLE[n])]
    if lacking:
        tables = sorted({NEEDS_TABLE[n] for n in lacking})
        raise ValueError(f"figure(s) {', '.join(lacking)} need the {' and '.join(tables)} tables, which were not given")
    out = Path(out_dir)
    with banner(verdict.warning(t.summary)):
        for name in names:
            DRAW[name](t, str(out / name))
    return names
