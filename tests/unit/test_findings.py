"""The findings: rate tables with known answers, every figure drawn from synthetic tables, the
report page, and the provenance stamps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from umia import io, plots, provenance
from umia.pipeline import rate_tables, retrain_moments
from umia.report import controls_verdict, summary_page

METHODS = ["none", "retrain", "finetune", "neggrad_plus", "per_example_stop"]


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


def _tables(rng):
    """Synthetic tables of the shapes the workflow writes: 40 candidates, 60 retained examples."""
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
        for a in plots.MAIN_ATTACKS + ("lira_retained",):
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
            for a in plots.MAIN_ATTACKS
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


def test_figures_from_tables_alone(tmp_path):
    summary, per_ex, roc, examples, rates, reach = _tables(np.random.default_rng(0))
    paths = {}
    for name, df in (("per_example", per_ex), ("roc", roc), ("examples", examples), ("rates", rates), ("reach", reach)):
        paths[name] = tmp_path / f"{name}.parquet"
        df.to_parquet(paths[name])
    pd.DataFrame(summary).to_csv(tmp_path / "summary.csv", index=False)
    found = plots.figures(
        summary=str(tmp_path / "summary.csv"),
        per_example=str(paths["per_example"]),
        roc_table=str(paths["roc"]),
        examples=str(paths["examples"]),
        rates_table=str(paths["rates"]),
        reach_table=str(paths["reach"]),
        out_dir=str(tmp_path / "figures"),
        out_findings=str(tmp_path / "findings.csv"),
    )
    names = [
        "attack_accuracy",
        "roc",
        "per_example_accuracy",
        "protected_examples",
        "before_after",
        "retained_change",
        "rates",
        "reach",
        "per_example_stop",
    ]
    for n in names:
        for ext in ("png", "pdf"):
            f = tmp_path / "figures" / f"{n}.{ext}"
            assert f.stat().st_size > 5000, f
    f = found.set_index("method")
    assert list(found["method"]) == METHODS[1:]  # the config's order, controls first; none is the baseline
    assert f.loc["finetune", "forget_share_worse"] == 0.25 and f.loc["finetune", "forget_share_worse_any"] == 0.25
    assert f.loc["finetune", "forget_share_better"] == 0  # 0.05 is within the noise of 32 trials
    assert f.loc["finetune", "retained_share_worse_any"] == 0.5 and f.loc["finetune", "retained_share_worse"] == 0
    assert f.loc["finetune", "retained_mean_change"] == pytest.approx(0.01)
    assert f.loc["retrain", "retained_share_worse"] == 0
    assert f.loc["finetune", "share_reached"] == 0.75
    assert (tmp_path / "findings.csv").exists()


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
    assert "per_example_stop" in page and "torch" in page and "umia 0.1.0" in page


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
    plots.protected_examples(per_ex, reviews, str(tmp_path / "pe"))
    assert (tmp_path / "pe.png").stat().st_size > 5000 and (tmp_path / "pe.pdf").exists()


def test_moved_counts_only_changes_beyond_the_noise():
    n = np.full(4, 100.0)
    # se of 0.5 vs 0.5 over 100 trials each: sqrt(0.0025 + 0.0025) = 0.0707; two of them: 0.141
    worse, better = plots.moved(np.array([0.65, 0.6, 0.35, 0.5]), np.full(4, 0.5), n)
    assert worse.tolist() == [True, False, False, False] and better.tolist() == [False, False, True, False]
    # 1 is taken as 1 - 1/128 over 64 trials: 1.0 vs 0.9 is beyond 2 se (0.078), 1.0 vs 0.95 is not (0.059)
    worse, _ = plots.moved(np.array([1.0, 1.0]), np.array([0.9, 0.95]), np.array([64.0, 64.0]))
    assert worse.tolist() == [True, False]
