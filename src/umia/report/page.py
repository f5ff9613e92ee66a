"""The report's summary page: the controls' verdict, the summary and findings tables, and the
provenance (config, code version, packages, the machines the model jobs ran on), as one HTML
file that Snakemake's report embeds."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from umia import attacks, io, registry
from umia.attacks import challenge
from umia.io import atomic_path
from umia.report import verdict
from umia.report.figures import attack_label, attacks_in, method_colours, method_order
from umia.report.format import ci, fmt
from umia.runtime import provenance

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.ok { color: #1e7b34; font-weight: bold; } .bad { color: #b0261c; font-weight: bold; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; }
pre { background: #f7f7f7; padding: 0.8em; font-size: 0.85em; overflow-x: auto; }
"""


def controls_verdict(summary: pd.DataFrame) -> list[tuple[bool, str]]:
    """The two controls in words (umia.report.verdict.controls)."""
    return verdict.controls(summary)


def _table(df: pd.DataFrame, colours: Mapping[str, str]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            text = html.escape(v if isinstance(v, str) else fmt(v) if isinstance(v, float) else str(v))
            if c == "method":
                text = f'<span class="swatch" style="background:{colours.get(v, "#fff")}"></span>{text}'
            cells.append(f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


# the summary table's columns of an attack: (summary column, heading after the attack's label)
ACCURACY = (("accuracy", "accuracy"),)
SUMMARY_COLUMNS = {
    "ulira": (
        ("accuracy", "accuracy [95% CI]"),
        ("tpr_at_1pct_fpr", "TPR at 1% FPR [95% CI]"),
        ("epsilon_median", "median per-example ε"),
    )
}


def summary_columns() -> list[tuple[str, str, str]]:
    """(attack, column, heading) of the summary table: the attacks of the ``attack_accuracy`` and
    ``retained_change`` figures (``registry.ATTACKS``), in the registry's order, by their labels."""
    attacks = [a for a in registry.ATTACKS if a in {*attacks_in("attack_accuracy"), *attacks_in("retained_change")}]
    return [
        (a, col, f"{registry.ATTACKS[a].label} {heading}")
        for a in attacks
        for col, heading in SUMMARY_COLUMNS.get(a, ACCURACY)
    ]


def summary_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per method: the main attacks side by side."""
    methods = method_order(summary["method"].tolist())
    by = summary.set_index(["method", "attack"])
    columns = summary_columns()
    present = set(summary["attack"])
    rows = []
    for m in methods:
        row = {"method": m}
        for a, col, name in (c for c in columns if c[0] in present):
            if (m, a) in by.index:
                r = by.loc[(m, a)]
                row[name] = ci(r, col) if f"{col}_ci_low" in r.index else fmt(r[col], 2 if "epsilon" in col else 3)
            else:
                row[name] = "–"
        d = by.loc[m, "diverged_models"].max() if m in by.index.get_level_values(0) else 0
        row["diverged models"] = str(int(d))
        rows.append(row)
    return pd.DataFrame(rows)


def _utility_part(util: pd.DataFrame, colours: Mapping[str, str], grid: float = np.nan) -> list[str]:
    """Utility beside privacy, and the NeurIPS 2023 challenge's scores, one row per method; with a
    warning where ``grid`` (the summary's ``challenge_thresholds``) says the challenge's own test
    is too coarse for phi."""
    rows = pd.DataFrame(
        {
            "method": util["method"],
            "test accuracy [95% CI]": [ci(r, "test_accuracy") for _, r in util.iterrows()],
            "retain accuracy": util["retain_accuracy"],
            "forget accuracy [95% CI]": [ci(r, "forget_accuracy") for _, r in util.iterrows()],
            "test drop from the originals": util["test_drop"],
            "challenge forget score": util["challenge_forget_score"],
            "challenge score": util["challenge_score"],
        }
    )
    return [
        "<h2>Utility and the challenge's score</h2><p>Mean accuracy of each method's models on the test "
        "split, on what they kept (D_i minus F_i) and on what they forgot (F_i) (for text, next-token accuracy "
        "over the set's tokens), with 95% bootstrap intervals "
        "over models; the NeurIPS 2023 unlearning challenge's forget score (its per-example epsilon of the "
        "unlearned against the retrained models' confidences, bucketed) and its final score (times the retain "
        "and test accuracy ratios to the retrains; higher is better). <code>tables/utility.csv</code>; the "
        "forget score of each attack's statistic is in <code>tables/summary.csv</code>.</p>",
        *(
            [
                f"<p class='bad'>The challenge's own test is too coarse for these models: an example's confidence "
                f"spans a median {grid:.1f} of its thresholds across the retrains (it has {challenge.PER_UNIT} a "
                "unit, made for classifiers' logit-scaled confidences), so its forget score does not resolve "
                "the differences the attacks above measure; read U-LiRA's accuracy and TPR instead.</p>"
            ]
            if grid < attacks.CHALLENGE_MIN_THRESHOLDS
            else []
        ),
        _table(rows, colours),
    ]


def _tuning_part(tuning: pd.DataFrame, colours: Mapping[str, str]) -> list[str]:
    """The picked setting of each tuned method and what it was picked on."""
    picked = tuning[tuning["picked"]]
    rows = pd.DataFrame(
        {
            "method": picked["method"],
            "picked setting": picked["setting"].str.partition("@")[2],
            "of": [int((tuning["method"] == m).sum()) for m in picked["method"]],
            "rule": picked["rule"],
            "tuning test drop": picked["test_drop"],
            "tuning population loss accuracy": picked["population_loss_accuracy"],
            "tuning U-LiRA accuracy": picked["ulira_accuracy"],
        }
    )
    return [
        "<h2>Tuned settings</h2><p>Each tuned method ran at the setting its grid's rule picked on the tuning "
        "models (their own seeds, never the targets above), among those within the utility guard; every "
        "setting tried is in <code>tables/tuning.csv</code>.</p>",
        _table(rows, colours),
    ]


def efficiency_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per attack fit on shadow models: from how many models its controls hold, and
    from how many it keeps 90% of the full study's advantage over chance, over the methods."""
    out = []
    full = int(table["n_shadow"].max()) if len(table) else 0
    for name, rows in table.groupby("attack", sort=False):
        if not (~rows["full"]).any():
            continue  # fit on the target itself (the population loss attack): no shadow model
        held = rows["controls_hold_from"].iloc[0]
        keeps = rows.loc[~rows["method"].isin(["none", "retrain"]), "keeps_90pct_from"]
        none_full = rows.loc[(rows["method"] == "none") & rows["full"], "accuracy"]
        if held == held:  # not NaN
            held_text = f"its controls hold from {int(held)} shadow models"
        elif len(none_full) and not none_full.iloc[0] > 0.53:
            held_text = "it does not catch the none control even with every model of the study"
        else:
            held_text = "its controls do not hold at any size tried"
        if keeps.notna().all() and len(keeps):
            keep_text = (
                f"it keeps 90% of its advantage over chance with {int(keeps.max())} (every method; {full}: the study)"
            )
        elif keeps.notna().any():
            lo, hi = int(keeps.min()), int(keeps.max())
            some = f"{lo}" if lo == hi else f"{lo} to {hi}"
            keep_text = f"it keeps 90% of its advantage with {some} for some methods, below {full} not for the others"
        else:
            keep_text = f"below {full} it keeps 90% of its advantage for no method"
        out.append(f"{attack_label(name)}: {held_text}; {keep_text}.")
    return out


def _efficiency_part(table: pd.DataFrame) -> list[str]:
    return [
        "<h2>How many models the study needs</h2><p>Every attack refit on random subsets of the shadow "
        "models (<code>tables/efficiency.csv</code>, the <code>efficiency</code> figure).</p><ul>",
        *[f"<li>{html.escape(t)}</li>" for t in efficiency_sentences(table)],
        "</ul>",
    ]


def _grid(summary: pd.DataFrame) -> float:
    """The summary's ``challenge_thresholds`` (nan in tables written before it)."""
    col = summary.get("challenge_thresholds")
    return float(col.iloc[0]) if col is not None and len(col) else np.nan


def summary_page(
    *,
    summary: str,
    findings: str,
    scores: str,
    config: Mapping,
    out: str,
    workflow_dir: str | None = None,
    n_candidates: int | None = None,
    utility: str | None = None,
    tuning: str | None = None,
    efficiency: str | None = None,
) -> None:
    s = pd.read_csv(summary)
    f = pd.read_csv(findings)
    colours = method_colours(s["method"].tolist())
    meta = pq.read_schema(scores).metadata or {}
    jobs = json.loads(meta.get(io.PROVENANCE_KEY, b"[]").decode())
    n_models = int(config["n_models"])
    verdicts = controls_verdict(s)
    warning = verdict.warning(s)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>umia: {html.escape(config['experiment'])}</title>",
        f"<style>{CSS}</style></head><body>",
        *([f"<p class='bad'>Warning: {html.escape(warning)}.</p>"] if warning else []),
        f"<h1>umia experiment <code>{html.escape(config['experiment'])}</code></h1>",
        "<p>{ds}, network {net}, N = {n} original models (and {n} retrains, {n} unlearned models per method), "
        "{c} forget candidates ({mode}), {v} views. Each forget candidate is unlearned in about N/2 models and "
        "never trained in the others; attacks are fit on the other folds' models and tested on each target "
        "model.</p>".format(
            ds=html.escape(config["dataset"]["name"]),
            net=html.escape(config["network"]),
            n=n_models,
            c=n_candidates if n_candidates is not None else config["candidates"].get("size", "?"),
            mode=html.escape(config["candidates"]["mode"]),
            v=", ".join(config["views"]),
        ),
        "<h2>Controls</h2><ul>",
        *[
            f"<li><span class='{'ok' if ok else 'bad'}'>{'holds' if ok else 'FAILS'}</span> {html.escape(t)}</li>"
            for ok, t in verdicts
        ],
        "</ul>",
    ]
    if not all(ok for ok, _ in verdicts) and not warning:
        parts.append("<p class='bad'>A control misbehaves: the results below are not trustworthy.</p>")
    parts += [
        "<h2>Summary</h2><p>Accuracy of each attack at its likelihood-ratio threshold (chance: 0.5) on the "
        "forget examples, and of plain LiRA (members vs non-members) on the retained examples; 95% bootstrap "
        f"intervals over the {n_models} target models. Attacks: "
        + ", ".join(attack_label(a) for a in dict.fromkeys(s["attack"]))
        + ". The full table, with AUC and TPR at 0.1% FPR, is <code>tables/summary.csv</code>.</p>",
        _table(summary_rows(s), colours),
        *(_utility_part(pd.read_csv(utility), colours, _grid(s)) if utility else []),
        *(_tuning_part(pd.read_csv(tuning), colours) if tuning else []),
        *(_efficiency_part(pd.read_csv(efficiency)) if efficiency else []),
        "<h2>Findings</h2><p>Shares of forget examples whose per-example U-LiRA accuracy rose above the one on "
        "the originals (worse) or fell (better) by more than two standard errors of the two accuracies, and "
        "the share that rose at all (<code>_any</code>); the same for the retained examples' LiRA accuracy, "
        "with its mean change; how much more the forget examples' U-LiRA accuracies differ than their "
        "sampling noise would make them (<code>forget_dispersion</code>, the variance over the binomial one; "
        "the none row, the baseline, has only this); the share of forget examples whose confidence reached "
        "their retrain mean during unlearning in at least half their models, the median share of the run "
        "that took (inf: most never did), and the same variance ratio for each example's share of models "
        "that reached it (<code>reach_dispersion</code>). The retrain control's row is the level that "
        "independent training alone produces.</p>",
        _table(f, colours),
        "<h2>Provenance</h2>",
        f"<p>Code: {html.escape(provenance.code_version(workflow_dir))}. Page written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
        "<p>Model jobs ran on:</p>",
        _table(pd.DataFrame(jobs) if jobs else pd.DataFrame({"device": ["(not recorded)"]}), {}),
        "<p>Packages (the job that wrote this page):</p>",
        _table(pd.DataFrame(sorted(provenance.packages().items()), columns=["package", "version"]), {}),
        "<p>Resolved config:</p>",
        f"<pre>{html.escape(yaml.safe_dump(dict(config), sort_keys=False))}</pre>",
        "</body></html>",
    ]
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
