"""The findings: rate tables and the findings table with known answers, every figure drawn from
synthetic tables (and only the figures the experiment has), the report page, and the provenance
stamps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import umia
from umia import io, registry
from umia.report import figures as plots
from umia.report import findings, method_figures, verdict
from umia.report.page import controls_verdict, summary_page
from umia.runtime import provenance
from umia.stages.rates import rate_tables, retrain_moments

METHODS = ["none", "retrain", "finetune", "neggrad_plus", "per_example_stop"]
FIGURES = list(registry.FIGURES)
# the attacks of an image experiment's attack_accuracy figure: U-LiRA and the two population attacks
MAIN_ATTACKS = tuple(a for a in plots.attacks_in("attack_accuracy") if "image" in registry.ATTACKS[a].tasks)


def test_retrain_moments_average_views_then_models():
    # example 5: retrain models 0 and 1 give view-means 1.0 and 3.0; example 6 only model 0
    scores = pa.table(
        {
            "model_id": [0, 0, 1, 1, 0, 0, 0],
            "method": ["retrain"] * 6 + ["none"],
            "example_id": [5, 5, 5, 5, 6, 6, 5],
            "phi": [0.0, 2.0, 3.0, 3.0, 4.0, 4.0, 100.0],
        }
    )
    mean, sd = retrain_moments(scores, np.array([5, 6, 7]))
    assert mean[:2].tolist() == [2.0, 4.0] and np.isnan(mean[2])
    assert sd[0] == pytest.approx(np.sqrt(2.0)) and np.isnan(sd[1])


def _trajectory(rows):
    return pd.DataFrame(rows, columns=["method", "model_id", "example_id", "view", "point", "fraction", "step", "phi"])


def test_rate_tables_known_answer():
    # example 1 (retrain mean 0, sd 1): model 0 reaches it at point 1 (step 5), model 2 at point 2 (step 10)
    # example 2 (retrain mean 0, sd 2): never reached by model 0, reached at point 2 by model 2
    rows = []
    for model, ex, phis in ((0, 1, [3, 0, -1]), (2, 1, [3, 1, -2]), (0, 2, [4, 2, 1]), (2, 2, [4, 4, 0])):
        for point, phi in enumerate(phis):
            for view, delta in (("identity", 0.5), ("mirror", -0.5)):  # view mean = phi
                rows.append(("m", model, ex, view, point, point / 2, 5 * point, phi + delta))
    rates, reach = rate_tables(_trajectory(rows), pd.Series([0.0, 0.0], [1, 2]), pd.Series([1.0, 2.0], [1, 2]))
    r = rates.set_index(["example_id", "point"])
    assert r.loc[(1, 1), "phi"] == 0.5 and r.loc[(1, 1), "z"] == 0.5  # median of 0 and 1
    assert r.loc[(2, 0), "z"] == 2.0 and r.loc[(2, 2), "z"] == 0.25  # median of 1/2 and 0/2
    assert r.loc[(1, 2), "n_models"] == 2
    h = reach.set_index("example_id")
    assert h.loc[1, "reach_fraction"] == 0.75 and h.loc[1, "reach_step"] == 7.5 and h.loc[1, "share_reached"] == 1
    assert h.loc[2, "reach_fraction"] == np.inf and h.loc[2, "share_reached"] == 0.5


def _tables(rng, methods=METHODS):
    """Synthetic tables of the shapes the workflow writes: 40 candidates, 60 retained examples."""
    METHODS = methods  # noqa: N806
    cand, kept = np.arange(40), np.arange(40, 100)
    before = rng.uniform(0.5, 0.9, len(cand))
    before[:10] = 0.5
    per_ex = []
    for m in METHODS:
        after = {"none": before, "retrain": np.full(len(cand), 0.5)}.get(m, before + rng.normal(0, 0.1, len(cand)))
        # finetune: the first 10 candidates get much worse than on the originals (0.5 -> 0.95, far
        # beyond the noise of 32 trials), the other 30 a little better (-0.05, within the noise)
        if m == "finetune":
            after = np.where(cand < 10, 0.95, before - 0.05)
        per_ex.append(pd.DataFrame({"method": m, "attack": "ulira", "example_id": cand, "accuracy": after}))
        retained = 0.6 + (0.02 if m == "finetune" else 0.0) * (kept < 70)  # finetune: 30 of 60 worse
        per_ex.append(pd.DataFrame({"method": m, "attack": "lira_retained", "example_id": kept, "accuracy": retained}))
    per_ex = pd.concat(per_ex, ignore_index=True).assign(label=1, epsilon=1.0, n_trials=32)
    summary = []
    for m in METHODS:
        for a in MAIN_ATTACKS + ("lira_retained",):
            acc = 0.5 if m == "retrain" else 0.6
            summary.append(
                {
                    "method": m,
                    "attack": a,
                    "accuracy": acc,
                    "accuracy_ci_low": acc - 0.01,
                    "accuracy_ci_high": acc + 0.01,
                    "tpr_at_1pct_fpr": 0.02,
                    "tpr_at_1pct_fpr_ci_low": 0.01,
                    "tpr_at_1pct_fpr_ci_high": 0.03,
                    "epsilon_median": 1.0,
                    "diverged_models": 0,
                }
            )
    roc = pd.concat(
        [
            pd.DataFrame({"method": m, "attack": a, "fpr": np.logspace(-4, 0, 20), "tpr": np.logspace(-3, 0, 20)})
            for m in METHODS
            for a in MAIN_ATTACKS
        ]
    )
    examples = pd.DataFrame(
        {
            "example_id": cand,
            "label": cand % 10,
            "label_name": [f"class {k}" for k in cand % 10],
            "height": 8,
            "width": 8,
            "channels": 3,
            "pixels": [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8).tobytes() for _ in cand],
        }
    )
    rates = pd.concat(
        [
            pd.DataFrame({"method": m, "example_id": np.repeat(cand, 3), "point": np.tile([0, 1, 2], 40)}).assign(
                fraction=lambda d: d["point"] / 2, z=lambda d: 3.0 - 1.5 * d["point"] + rng.normal(0, 0.5, 120)
            )
            for m in METHODS[2:]
        ]
    )
    reach = pd.concat(
        [
            pd.DataFrame({"method": m, "example_id": cand, "reach_fraction": np.where(cand < 30, cand / 30, np.inf)})
            for m in METHODS[2:]
        ]
    )
    return summary, per_ex, roc, examples, rates, reach


def _utility(methods=METHODS):
    rows = []
    for i, m in enumerate(methods):
        row = {"method": m, "n_models": 32}
        for k, base in (("test", 0.9 - 0.01 * i), ("retain", 0.99), ("forget", 0.8)):
            row |= {f"{k}_accuracy": base, f"{k}_accuracy_ci_low": base - 0.01, f"{k}_accuracy_ci_high": base + 0.01}
        rows.append(row)
    return pd.DataFrame(rows)


def _tuning():
    return pd.DataFrame(
        {
            "method": ["finetune"] * 3,
            "setting": [f"finetune@lr={lr}" for lr in (0.01, 0.1, 1.0)],
            "test_accuracy": [0.9, 0.88, 0.7],
            "ulira_accuracy": [0.62, 0.6, 0.55],
            "population_loss_accuracy": [0.56, 0.52, 0.5],
            "picked": [False, True, False],
        }
    )


def _write(tmp_path, tables):
    summary, per_ex, roc, examples, rates, reach = tables
    paths = {}
    paths["utility"] = str(tmp_path / "utility.csv")
    _utility(pd.DataFrame(summary)["method"].unique()).to_csv(paths["utility"], index=False)
    paths["tuning"] = str(tmp_path / "tuning.csv")
    _tuning().to_csv(paths["tuning"], index=False)
    for name, df in (("per_example", per_ex), ("roc", roc), ("examples", examples), ("rates", rates), ("reach", reach)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        df.to_parquet(paths[name])
    paths["summary"] = str(tmp_path / "summary.csv")
    pd.DataFrame(summary).to_csv(paths["summary"], index=False)
    paths["efficiency"] = str(tmp_path / "efficiency.csv")
    _efficiency(pd.DataFrame(summary)).to_csv(paths["efficiency"], index=False)
    return paths


def _efficiency(summary: pd.DataFrame) -> pd.DataFrame:
    """An efficiency table of the summary's methods and attacks: accuracy rising with the models."""
    rows = []
    for (m, a), r in summary.groupby(["method", "attack"], sort=False):
        full = float(r.accuracy.iloc[0])
        for n, frac, is_full in ((2, 0.5, False), (4, 0.8, False), (8, 1.0, True)):
            acc = 0.5 + frac * (full - 0.5)
            rows.append(
                {
                    "method": m,
                    "attack": a,
                    "n_shadow": n,
                    "full": is_full,
                    "n_subsets": 1 if is_full else 5,
                    "accuracy": acc,
                    "accuracy_low": acc - 0.01,
                    "accuracy_high": acc + 0.01,
                    "auc": acc,
                    "auc_low": acc,
                    "auc_high": acc,
                    "tpr_at_1pct_fpr": 0.01,
                    "tpr_at_1pct_fpr_low": 0.01,
                    "tpr_at_1pct_fpr_high": 0.01,
                    "controls_hold_from": 4,
                    "keeps_90pct_from": 8,
                }
            )
    return pd.DataFrame(rows)


def _figures(paths, out, **kw):
    return plots.figures(
        summary=paths["summary"],
        per_example=paths["per_example"],
        roc_table=paths["roc"],
        examples=paths["examples"],
        rates_table=paths["rates"],
        reach_table=paths["reach"],
        utility_table=paths["utility"],
        tuning_table=paths["tuning"],
        efficiency_table=paths["efficiency"],
        out_dir=str(out),
        **kw,
    )


def test_figures_from_tables_alone(tmp_path):
    paths = _write(tmp_path, _tables(np.random.default_rng(0)))
    drawn = _figures(paths, tmp_path / "figures")
    assert drawn == FIGURES  # every method of the registry's figures is configured
    for n in FIGURES:
        for ext in ("png", "pdf"):
            f = tmp_path / "figures" / f"{n}.{ext}"
            assert f.stat().st_size > 5000, f
    assert set(plots.DRAW) == set(registry.FIGURES)
    assert not (tmp_path / "figures" / "findings.csv").exists()  # the findings rule writes it


def test_findings_of_synthetic_tables(tmp_path):
    paths = _write(tmp_path, _tables(np.random.default_rng(0)))
    found = findings.write(paths["per_example"], str(tmp_path / "findings.csv"), reach=paths["reach"])
    assert list(found.columns) == [*findings.COLUMNS, *findings.REACH_COLUMNS]
    f = found.set_index("method")
    assert list(found["method"]) == METHODS  # the config's order, controls first
    assert f.loc["finetune", "forget_share_worse"] == 0.25 and f.loc["finetune", "forget_share_worse_any"] == 0.25
    assert f.loc["finetune", "forget_share_better"] == 0  # 0.05 is within the noise of 32 trials
    assert f.loc["finetune", "retained_share_worse_any"] == 0.5 and f.loc["finetune", "retained_share_worse"] == 0
    assert f.loc["finetune", "retained_mean_change"] == pytest.approx(0.01)
    assert f.loc["retrain", "retained_share_worse"] == 0
    assert f.loc["finetune", "share_reached"] == 0.75
    assert np.isnan(f.loc["none", "forget_share_worse"])  # the baseline has no shares, only a dispersion
    assert np.isfinite(f.loc[METHODS, "forget_dispersion"]).all()
    assert pd.read_csv(tmp_path / "findings.csv").shape == found.shape
    # without the rates tables (no unlearning methods): no reach columns
    assert list(findings.table(pd.read_parquet(paths["per_example"])).columns) == list(findings.COLUMNS)


def test_dispersion_known_answers():
    # var(0.4, 0.6) = 0.02 against 0.24 / 24 = 0.01: twice the sampling noise
    assert findings.dispersion([0.4, 0.6], [25, 25]) == pytest.approx(2.0)
    # binomial shares of examples that are alike: about 1 (20,000 examples, 50 trials each)
    rng = np.random.default_rng(0)
    alike = rng.binomial(50, 0.7, 20_000) / 50
    assert findings.dispersion(alike, np.full(20_000, 50)) == pytest.approx(1.0, abs=0.03)
    # examples that differ (true shares 0.5 and 0.9): far above 1
    differ = rng.binomial(50, np.where(np.arange(20_000) % 2, 0.5, 0.9)) / 50
    assert findings.dispersion(differ, np.full(20_000, 50)) > 5
    # nan and one-trial examples are left out; fewer than two examples, or no noise: nan
    assert findings.dispersion([0.4, np.nan, 0.6, 1.0], [25, 25, 25, 1]) == pytest.approx(2.0)
    assert np.isnan(findings.dispersion([0.5], [25])) and np.isnan(findings.dispersion([0.0, 1.0], [9, 9]))


def _hand_built():
    """Four forget examples (U-LiRA over 100 trials each) and four retained ones (LiRA over 64),
    the methods in the config's order (finetune first: the controls go first all the same)."""
    rows = []

    def add(method, attack, ids, acc, n):
        rows.extend(
            {"method": method, "attack": attack, "example_id": i, "accuracy": a, "n_trials": n, "label": 0}
            for i, a in zip(ids, acc, strict=True)
        )

    # finetune on the forget examples: 0.65 vs 0.5 is beyond two standard errors (0.141), 0.6 is
    # not; 0.35 is better beyond them; example 4 has no accuracy after unlearning (dropped)
    add("finetune", "ulira", range(5), [0.65, 0.6, 0.35, 0.5, np.nan], 100)
    add("none", "ulira", range(5), [0.5] * 5, 100)
    add("retrain", "ulira", range(5), [0.5, 0.5, 0.55, 0.5, 0.5], 100)
    # retained: 1 is taken as 1 - 1/128, so 1.0 vs 0.9 is beyond two standard errors (0.078) and
    # 1.0 vs 0.95 is not (0.059); 0.4 vs 0.5 is not better beyond them (0.175)
    add("finetune", "lira_retained", range(10, 14), [1.0, 1.0, 0.5, 0.4], 64)
    add("none", "lira_retained", range(10, 14), [0.9, 0.95, 0.5, 0.5], 64)
    add("retrain", "lira_retained", range(10, 14), [0.9, 0.95, 0.5, 0.5], 64)
    per_ex = pd.DataFrame(rows)
    # each example's share of 25 models that reached its retrain mean
    reach = pd.DataFrame(
        {
            "method": "finetune",
            "example_id": range(4),
            "reach_fraction": [0.25, 0.5, 0.75, np.inf],
            "share_reached": [0.4, 0.6, 0.5, 0.5],
            "n_models": 25,
        }
    )
    return per_ex, reach


def test_findings_known_answer(tmp_path):
    per_ex, reach = _hand_built()
    per_ex.to_parquet(tmp_path / "per_example.parquet")
    reach.to_parquet(tmp_path / "reach.parquet")
    found = findings.write(
        str(tmp_path / "per_example.parquet"), str(tmp_path / "f.csv"), str(tmp_path / "reach.parquet")
    )
    assert (tmp_path / "f.csv").read_text().splitlines() == [
        "method,forget_share_worse,forget_share_better,forget_share_worse_any,retained_share_worse,"
        "retained_share_better,retained_share_worse_any,retained_mean_change,forget_dispersion,"
        "share_reached,median_reach_fraction,reach_dispersion",
        "none,,,,,,,,0,,,",  # the baseline: no shares; its five accuracies do not differ at all
        # five examples: 0.55 is worse, not beyond the noise; dispersion 0.0005 / (0.2495 / 99)
        "retrain,0,0,0.2,0,0,0,0,0.1984,,,",
        # forget: var 0.0175 over 0.23625 / 99; reach: var 0.02 / 3 over 0.245 / 24
        "finetune,0.25,0.25,0.5,0.25,0,0.5,0.0125,7.333,0.75,0.625,0.6531",
    ]
    assert found.loc[2, "retained_mean_change"] == pytest.approx(0.0125)  # (0.1 + 0.05 + 0 - 0.1) / 4
    row, before, after = findings.forget_changes(per_ex)["finetune"]
    assert row["n_examples"] == 4 and before.tolist() == [0.5] * 4 and after.tolist() == [0.65, 0.6, 0.35, 0.5]


def test_figures_leave_out_what_the_experiment_lacks(tmp_path):
    # no per_example_stop configured: its figure is not drawn (nor a placeholder), the others are
    paths = _write(tmp_path, _tables(np.random.default_rng(3), METHODS[:4]))
    drawn = _figures(paths, tmp_path / "figures")
    assert "per_example_stop" not in drawn and drawn == registry.figure_names("image", ["finetune", "neggrad_plus"])
    assert not list((tmp_path / "figures").glob("per_example_stop.*"))
    assert (tmp_path / "figures" / "reach.png").exists()
    # what the rule asks for (figure_names of the configured methods' base names): no methods, no
    # rate figures; per_example_stop only where it is configured
    always = [n for n, f in registry.FIGURES.items() if not f.needs_methods and f.needs_method is None]
    assert registry.figure_names("image", []) == always
    assert registry.figure_names("image", ["per_example_stop"]) == FIGURES
    with pytest.raises(ValueError, match="rates tables"):
        _figures({**paths, "rates": None, "reach": None}, tmp_path / "x", names=["rates"])


def _stop_legend(monkeypatch, tables):
    figs = []
    monkeypatch.setattr(method_figures, "save", lambda fig, stem: figs.append(fig))
    _, per_ex, _, _, rates, _ = tables
    plots.stopping(per_ex, rates, "unused")
    (fig,) = figs
    return [t.get_text().split(" (")[0] for t in fig.axes[0].get_legend().get_texts()]


def test_stopping_compares_with_neggrad_plus_where_it_runs(monkeypatch):
    both = _tables(np.random.default_rng(4))
    assert _stop_legend(monkeypatch, both) == ["retrain", "NegGrad+", "Per-example stop"]
    alone = _tables(np.random.default_rng(4), ["none", "retrain", "finetune", "per_example_stop"])
    assert _stop_legend(monkeypatch, alone) == ["retrain", "Per-example stop"]


def test_method_colours_are_fixed_per_method():
    a = plots.method_colours(["none", "retrain", "finetune", "scrub"])
    b = plots.method_colours(["scrub", "finetune", "retrain", "none"])
    assert a["none"] == b["none"] == plots.CONTROL_COLOURS["none"]
    assert len(set(a.values())) == 4
    assert a == plots.method_colours(["finetune", "scrub", "none", "retrain"])  # controls move, colours don't


def test_controls_verdict():
    def row(m, acc, lo, hi):
        return {"method": m, "attack": "ulira", "accuracy": acc, "accuracy_ci_low": lo, "accuracy_ci_high": hi}

    good = pd.DataFrame([row("retrain", 0.51, 0.49, 0.53), row("none", 0.6, 0.58, 0.62)])
    assert [ok for ok, _ in controls_verdict(good)] == [True, True]
    bad = pd.DataFrame([row("retrain", 0.6, 0.58, 0.62), row("none", 0.5, 0.48, 0.52)])
    assert [ok for ok, _ in controls_verdict(bad)] == [False, False]


def test_uninformative_study_is_said_everywhere(tmp_path, capsys):
    """none at chance: the verdict's warning names the cause, every figure carries it above its
    title, the report page opens with it, and the terminal lines end with it."""
    summary = pd.DataFrame(_tables(np.random.default_rng(1))[0])
    none = (summary.method == "none") & (summary.attack == "ulira")
    summary.loc[none, ["accuracy", "accuracy_ci_low", "accuracy_ci_high"]] = [0.505, 0.49, 0.52]
    w = verdict.warning(summary)
    assert w and "cannot tell anything" in w and "0.505 [0.490, 0.520]" in w and "more epochs" in w
    assert verdict.warning(pd.DataFrame(_tables(np.random.default_rng(1))[0])) is None
    fig = plots.plt.figure()
    with plots.banner(w):
        plots.save(fig, str(tmp_path / "f"))
    assert any("WARNING: this study cannot tell anything" in t.get_text() for t in fig.texts)
    summary.to_csv(tmp_path / "summary.csv", index=False)
    lines = verdict.terminal(str(tmp_path / "summary.csv")).splitlines()
    assert (
        lines[0] == "controls:" and "FAILS  none control" in lines[-2] and lines[-1].startswith("umia: WARNING: this")
    )


def test_summary_page_shows_tables_and_provenance(tmp_path):
    summary, per_ex, *_ = _tables(np.random.default_rng(1))
    pd.DataFrame(summary).to_csv(tmp_path / "summary.csv", index=False)
    pd.DataFrame({"method": ["retrain", "finetune"], "forget_share_worse": [0.5, 0.25]}).to_csv(
        tmp_path / "findings.csv", index=False
    )
    stamp = json.dumps({"device": "NVIDIA H100 80GB HBM3", "torch": "2.11"})
    scores = pa.table({"model_id": pa.array([0], pa.int32())}).replace_schema_metadata(
        {io.PROVENANCE_KEY: provenance.merge([stamp, stamp]).encode()}
    )
    import pyarrow.parquet as pq

    pq.write_table(scores, tmp_path / "scores.parquet")
    config = {
        "experiment": "x",
        "dataset": {"name": "cifar10"},
        "network": "fastcnn",
        "n_models": 32,
        "candidates": {"mode": "random", "size": 500},
        "views": ["identity", "mirror"],
    }
    out = tmp_path / "summary.html"
    summary_page(
        summary=str(tmp_path / "summary.csv"),
        findings=str(tmp_path / "findings.csv"),
        scores=str(tmp_path / "scores.parquet"),
        config=config,
        out=str(out),
    )
    page = out.read_text()
    assert "NVIDIA H100 80GB HBM3" in page and "<td>2</td>" in page  # the device, carried by 2 files
    assert "0.600 [0.590, 0.610]" in page  # accuracy with its interval
    assert page.count("class='ok'") == 4 and "FAILS" not in page  # 3 attacks on retrain, and none
    assert "per_example_stop" in page and "torch" in page and f"umia {umia.__version__}" in page
    assert "too coarse" not in page  # no utility table, and no challenge_thresholds column


def test_summary_page_warns_where_the_challenges_test_is_too_coarse(tmp_path):
    summary, *_ = _tables(np.random.default_rng(1))
    utility = pd.DataFrame(
        {
            "method": ["none", "retrain"],
            "test_accuracy": 0.24,
            "retain_accuracy": 0.24,
            "forget_accuracy": 0.25,
            "test_drop": 0.0,
            "challenge_forget_score": [0.82, 0.85],
            "challenge_score": [0.82, 0.85],
        }
    )
    utility.to_csv(tmp_path / "utility.csv", index=False)
    pd.DataFrame({"method": ["retrain"], "forget_share_worse": [0.0]}).to_csv(tmp_path / "findings.csv", index=False)
    pq.write_table(pa.table({"model_id": pa.array([0], pa.int32())}), tmp_path / "scores.parquet")
    config = {
        "experiment": "x",
        "dataset": {"name": "imdb"},
        "network": "gpt2",
        "n_models": 32,
        "candidates": {"mode": "random", "size": 500},
        "views": ["identity"],
    }
    pages = {}
    for grid in (0.7, 250.0):  # a language model's phi; a classifier's
        pd.DataFrame(summary).assign(challenge_thresholds=grid).to_csv(tmp_path / "summary.csv", index=False)
        summary_page(
            summary=str(tmp_path / "summary.csv"),
            findings=str(tmp_path / "findings.csv"),
            scores=str(tmp_path / "scores.parquet"),
            config=config,
            out=str(tmp_path / "summary.html"),
            utility=str(tmp_path / "utility.csv"),
        )
        pages[grid] = (tmp_path / "summary.html").read_text()
    assert "too coarse" in pages[0.7] and "a median 0.7 of its thresholds" in pages[0.7]
    assert "too coarse" not in pages[250.0] and "challenge forget score" in pages[250.0]


def test_protected_examples_show_reviews_for_text(tmp_path):
    _, per_ex, *_ = _tables(np.random.default_rng(2))
    reviews = pd.DataFrame(
        {
            "example_id": np.arange(40),
            "label": 1,
            "label_name": "positive",
            "height": 0,
            "width": 0,
            "channels": 0,
            "pixels": [b""] * 40,
            "text": [f"review number {i}: " + "a fine film " * 20 for i in range(40)],
        }
    )
    plots.protected_examples(per_ex, reviews, str(tmp_path / "pe"), text=True)
    assert (tmp_path / "pe.png").stat().st_size > 5000 and (tmp_path / "pe.pdf").exists()


def test_moved_counts_only_changes_beyond_the_noise():
    n = np.full(4, 100.0)
    # se of 0.5 vs 0.5 over 100 trials each: sqrt(0.0025 + 0.0025) = 0.0707; two of them: 0.141
    worse, better = findings.moved(np.array([0.65, 0.6, 0.35, 0.5]), np.full(4, 0.5), n)
    assert worse.tolist() == [True, False, False, False] and better.tolist() == [False, False, True, False]
    # 1 is taken as 1 - 1/128 over 64 trials: 1.0 vs 0.9 is beyond 2 se (0.078), 1.0 vs 0.95 is not (0.059)
    worse, _ = findings.moved(np.array([1.0, 1.0]), np.array([0.9, 0.95]), np.array([64.0, 64.0]))
    assert worse.tolist() == [True, False]


def test_the_answer_puts_each_method_per_example_against_population(tmp_path):
    def row(m, a, acc, tpr, diverged=0):
        return {"method": m, "attack": a, "accuracy": acc, "tpr_at_1pct_fpr": tpr, "diverged_models": diverged}

    rows = [row("none", "ulira", 0.9, 0.5), row("retrain", "ulira", 0.5, 0.01)]
    rows += [row("finetune", "ulira", 0.71, 0.2), row("finetune", "population_loss", 0.52, 0.011)]
    rows += [row("ga@lr=5", "ulira", 0.5, 0.0, 16), row("ga@lr=5", "population_loss", 0.49, 0.0, 16)]
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    pd.DataFrame({"method": ["finetune", "ga@lr=5"], "test_drop": [0.0123, 0.8]}).to_csv(
        tmp_path / "u.csv", index=False
    )
    lines = verdict.answer(str(tmp_path / "summary.csv"), str(tmp_path / "u.csv")).splitlines()
    assert lines[0].startswith("per method (U-LiRA, per example, against the population loss attack")
    assert lines[2].split() == ["finetune", "0.710", "0.200", "|", "0.520", "0.011", "|", "0.012"]
    assert lines[3].split()[:8] == ["ga@lr=5", "0.500", "0.000", "|", "0.490", "0.000", "|", "0.800"]
    assert lines[3].endswith("(16 models diverged)") and len(lines) == 4  # no control rows


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_every_method_colour_is_visible_on_white():
    """WCAG contrast against white of at least 2:1 for every colour a method can get (the old
    palette's yellow, 1.3:1, all but vanished), and none is a control's."""
    from umia.report import style

    for c in style.PALETTE:
        assert 1.05 / (_luminance(c) + 0.05) >= 2.0, c
    assert not set(style.PALETTE) & set(style.CONTROL_COLOURS.values())


def test_methods_have_display_names_from_the_registry_the_config_or_the_plugin():
    assert registry.method_label("neggrad_plus") == "NegGrad+" and registry.method_label("l1_sparse") == "ℓ1-sparse"
    assert registry.method_label("gradient_ascent@lr=5") == "Gradient ascent (lr=5)"
    assert registry.method_label("gradient_ascent@lr=5", {"gradient_ascent@lr=5": "GA fast"}) == "GA fast"
    assert registry.method_label("ssd", {"ssd": "SSD"}) == "SSD" and registry.method_label("mine") == "mine"
    assert all(spec.label for spec in registry.METHODS.values())


def test_figures_carry_no_sentences_and_keep_legends_off_the_data(tmp_path, monkeypatch):
    """Every figure: no figure-wide title (captions are the report's), short axis titles, method
    names as displayed, and each legend outside every axes' data area."""
    from umia.report import attack_figures, method_figures

    drawn = []
    for module in (attack_figures, method_figures):
        monkeypatch.setattr(module, "save", lambda fig, stem: drawn.append((stem, fig)))
    paths = _write(tmp_path, _tables(np.random.default_rng(0)))
    _figures(paths, tmp_path / "figs", labels={"finetune": "FT (ours)"})
    assert {stem.rsplit("/", 1)[-1] for stem, _ in drawn} == set(FIGURES)
    for stem, fig in drawn:
        assert fig._suptitle is None, stem
        for ax in fig.axes:
            assert len(ax.get_title()) <= 50, (stem, ax.get_title())
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [a.get_legend() for a in fig.axes if a.get_legend()] + list(fig.legends)
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                if ax.get_visible():
                    assert not box.overlaps(ax.get_window_extent(renderer)), (stem, "legend over data")
    ticks = [t.get_text() for _, fig in drawn for ax in fig.axes for t in ax.get_xticklabels()]
    titles = [ax.get_title() for _, fig in drawn for ax in fig.axes]
    assert any("FT (ours)" in t for t in ticks + titles) and not any(t == "finetune" for t in ticks + titles)
