"""End-to-end runs of the workflow on the tiny digits experiment (tests/workflow/tiny.yaml).

The controls are the science check: with `retrain` the unlearned model *is* a retrain, so every
attack must sit at chance; with `none` nothing was unlearned, so U-LiRA must find the members.

Thresholds. The tiny run has N=16 models and |C|=120 candidates, so every attack makes
120 x 16 = 1,920 trials. Were they independent, the accuracy of a coin would have a standard
error of sqrt(0.25 / 1920) = 0.011; they share models and examples, so we allow about five of
those: |accuracy - 0.5| < 0.06 for `retrain`. For `none`, U-LiRA on the default digits recipe
reaches about 0.6 (0.63 at N=32); we require > 0.56, more than five standard errors above chance,
and its AUC > 0.58.
"""

import os
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from umia import plugins, registry
from umia.io import HASH_KEY

from .conftest import PLUGIN_METHODS, plugin_folder, snakemake, tiny_args

pytestmark = pytest.mark.workflow

UNLEARN = [
    "finetune",
    "gradient_ascent",
    "neggrad_plus",
    "random_labels",
    "l1_sparse",
    "scrub",
    "salun",
    "per_example_stop",
    *PLUGIN_METHODS,  # plug-ins from files outside the repository (tests/workflow/conftest.py)
]
DIVERGED = "gradient_ascent@lr=5"
METHODS = ["none", "retrain", *UNLEARN, DIVERGED]
ATTACKS = [
    "ulira",
    "ulira_half_out",
    "ulira_offline",
    "ulira_fixed_variance",
    "urmia",
    "urmia_offline",
    "population_gaussian",
    "population_loss",
]
ALL_ATTACKS = [*ATTACKS, "lira_retained"]
N, C, N_POOL, N_TEST, VIEWS = 16, 120, 1347, 450, 2
POINTS = 4  # rates.points: phi scored at 0, 1/4, 2/4, 3/4 of each unlearning run and at its end
FIGURES = [
    "attack_accuracy",
    "roc",
    "per_example_accuracy",
    "protected_examples",
    "before_after",
    "retained_change",
    "rates",
    "reach",
    "per_example_stop",
    "privacy_utility",
    "efficiency",
]


def test_outputs_follow_the_contract(tiny_run):
    summary = pd.read_csv(tiny_run / "tables/summary.csv")
    assert {"method", "attack", "accuracy", "auc", "tpr_at_1pct_fpr", "n_targets"} <= set(summary.columns)
    assert sorted(zip(summary.method, summary.attack, strict=True)) == sorted(
        (m, a) for m in METHODS for a in ALL_ATTACKS
    )
    assert (summary.n_targets == N).all()
    assert set(summary.attack) == set(registry.attacks_for("image"))  # every registered attack, run
    # the diverged method is recorded as such (every model), the others are clean
    assert (summary[summary.method == DIVERGED].diverged_models == N).all()
    # its phi is NaN: every Gaussian attack counts non-finite statistics (the loss attack reads a
    # NaN loss as an infinite one, documented in the README, so it has none)
    bad = summary[(summary.method == DIVERGED) & (summary.attack != "population_loss")]
    assert (bad.n_nonfinite > 0).all()
    assert (summary[summary.method != DIVERGED].diverged_models == 0).all()
    ok = summary[summary.method != DIVERGED]
    assert (ok.accuracy_ci_low <= ok.accuracy).all() and (ok.accuracy <= ok.accuracy_ci_high).all()

    per_ex = pd.read_parquet(tiny_run / "tables/per_example.parquet")
    assert {"method", "attack", "example_id", "accuracy", "n_trials"} <= set(per_ex.columns)
    assert len(per_ex) == len(METHODS) * (len(ATTACKS) * C + (N_POOL - C))
    # every model is a target once: each candidate (and each retained example) has N trials
    assert (per_ex[per_ex.attack.isin(["ulira", "lira_retained"])].n_trials == N).all()
    clean = per_ex[(per_ex.attack == "ulira") & (per_ex.method != DIVERGED)]
    assert clean.epsilon.between(0, 50).all()  # the challenge's cap
    assert per_ex[(per_ex.attack == "ulira") & (per_ex.method == DIVERGED)].epsilon.isna().all()  # no finite trial
    both_sides = per_ex[per_ex.attack.isin(["ulira", "lira_retained"])]  # the loss attack's trials are IN only
    assert both_sides.epsilon_single_threshold.between(0, 10).all()
    assert per_ex[per_ex.attack == "lira_retained"].epsilon.isna().all()  # the challenge's: candidates only
    util = pd.read_csv(tiny_run / "tables/utility.csv").set_index("method")
    assert set(util.index) == set(METHODS) and list(util.index[:2]) == ["none", "retrain"]
    assert util.loc["none", "forget_accuracy"] > util.loc["retrain", "forget_accuracy"]  # the originals saw F_i
    assert util.loc["none", "test_drop"] == 0 and util.loc["retrain", "test_ratio"] == 1
    assert (summary.groupby("method").challenge_score.nunique(dropna=False) == 1).all()  # one per method
    roc = pd.read_parquet(tiny_run / "tables/roc.parquet")
    assert set(zip(roc.method, roc.attack, strict=True)) == {(m, a) for m in METHODS for a in ALL_ATTACKS}

    scores = pd.read_parquet(tiny_run / "scores")
    assert len(scores) == len(METHODS) * N * VIEWS * (N_POOL + N_TEST)
    assert np.isfinite(scores[scores.method != DIVERGED].phi).all()
    assert not np.isfinite(scores[scores.method == DIVERGED].phi).any()
    assert set(scores.stage) == {"original", "retrain", "unlearned"}
    digest = pq.read_schema(tiny_run / "scores/scores.parquet").metadata[HASH_KEY]
    assert len(digest) == 16

    m = pd.read_parquet(tiny_run / "plan/membership.parquet")
    assert len(m) == N * N_POOL
    assert (m.groupby("example_id").in_train.sum() == N // 2).all()
    assert (m[m.in_forget].in_train).all() and m.groupby("example_id").in_forget.any().sum() == C

    for stem in FIGURES:
        for ext in ("png", "pdf"):
            assert (tiny_run / f"figures/{stem}.{ext}").stat().st_size > 5000
    # keep_checkpoints: false -> only the originals' checkpoints (unlearning and later methods
    # need them); no retrain or unlearned checkpoint was written; scores stay
    kept = sorted(p.relative_to(tiny_run / "models").as_posix() for p in (tiny_run / "models").rglob("*.pt"))
    assert kept == ["original/none/shard-000.pt"]


def test_controls(tiny_run):
    s = pd.read_csv(tiny_run / "tables/summary.csv").set_index(["method", "attack"])
    for attack in ATTACKS:
        assert abs(s.loc[("retrain", attack), "accuracy"] - 0.5) < 0.06, attack
    assert s.loc[("none", "ulira"), "accuracy"] > 0.56
    assert s.loc[("none", "ulira"), "auc"] > 0.58
    # claim 1: the per-example attack is stronger than the population ones on the originals
    assert s.loc[("none", "ulira"), "accuracy"] > s.loc[("none", "population_gaussian"), "accuracy"] + 0.03
    assert s.loc[("none", "ulira"), "accuracy"] > s.loc[("none", "population_loss"), "accuracy"] + 0.03


def test_second_run_has_nothing_to_do(tiny_run):
    proc = snakemake(*tiny_args(tiny_run), "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_bad_config_stops_before_any_job(tmp_path):
    proc = snakemake("--config", "n_models=7", f"results_dir={tmp_path}", check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("umia:")]
    assert lines == ["umia: config key 'n_models': 7 is odd; it must be even (membership is balanced over pairs)"]
    assert not any(tmp_path.iterdir())


def test_rates_of_unlearning(tiny_run):
    """The forget examples' phi during unlearning: every method, every model's forget set, every
    view, at every point; the first point is the original's phi and the last the unlearned
    model's, as the score table has them."""
    traj = pd.read_parquet(tiny_run / "trajectory/trajectory.parquet")
    m = pd.read_parquet(tiny_run / "plan/membership.parquet")
    forgets = m[m.in_forget][["model_id", "example_id"]]
    assert set(traj.method) == set(UNLEARN) | {DIVERGED}
    for method, t in traj.groupby("method"):
        # every point, also of runs that stop early (per_example_stop: its last state fills them)
        assert set(t.point) == set(range(POINTS + 1)), method
        for p in range(POINTS + 1):
            at = t[t.point == p]
            assert len(at) == len(forgets) * VIEWS, (method, p)
            assert set(zip(at.model_id, at.example_id, strict=True)) == set(
                zip(forgets.model_id, forgets.example_id, strict=True)
            )
        assert t[t.point == POINTS].fraction.eq(1).all() and t[t.point == 0].step.eq(0).all()
    scores = pd.read_parquet(tiny_run / "scores", columns=["model_id", "method", "example_id", "view", "phi"])
    key = ["model_id", "example_id", "view"]
    first = traj[(traj.method == "finetune") & (traj.point == 0)].merge(
        scores[scores.method == "none"], on=key, suffixes=("", "_scored")
    )
    last = traj[(traj.method == "finetune") & (traj.point == POINTS)].merge(
        scores[scores.method == "finetune"], on=key, suffixes=("", "_scored")
    )
    for df in (first, last):
        assert len(df) == len(forgets) * VIEWS
        np.testing.assert_allclose(df.phi, df.phi_scored, atol=1e-4)

    reach = pd.read_parquet(tiny_run / "tables/reach.parquet")
    assert len(reach) == (len(UNLEARN) + 1) * C
    assert reach.share_reached.between(0, 1).all()
    findings = pd.read_csv(tiny_run / "tables/findings.csv").set_index("method")
    assert set(findings.index) == set(METHODS)
    assert findings.forget_share_worse.drop("none").between(0, 1).all() and np.isnan(
        findings.loc["none"].forget_share_worse
    )
    assert (findings.forget_dispersion.dropna() >= 0).all() and findings.loc["retrain", "forget_dispersion"] > 0


def test_report_is_a_web_page(tiny_run, tmp_path):
    """`snakemake --report` builds one self-contained page; opened in a real browser (headless
    chromium), it renders every category of the findings."""
    out = tmp_path / "report.html"
    snakemake(*tiny_args(tiny_run), "--report", str(out))
    page = out.read_text()
    assert out.stat().st_size > 1_000_000  # the figures are embedded, not linked
    for name in FIGURES:
        assert f"{name}.png" in page, name
    assert "summary.html" in page and "Rates of unlearning" in page
    summary_page = (tiny_run / "report/summary.html").read_text()
    assert "holds" in summary_page and "FAILS" not in summary_page
    assert "CPU (" in summary_page  # the device the model jobs ran on
    # a classifier's logit-scaled confidence spans the challenge's threshold grid: no warning
    assert (pd.read_csv(tiny_run / "tables/summary.csv").challenge_thresholds >= 10).all()
    assert "too coarse" not in summary_page

    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no browser installed (Debian package chromium): the report was built but not opened")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, "--hide-scrollbars", "--window-size=1400,1000", f"--screenshot={shot}", out.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    img = matplotlib.image.imread(shot)[..., :3]  # (1000, 1400, 3) in [0, 1]
    assert img.shape == (1000, 1400, 3)
    menu, body = img[:, :300], img[100:800, 320:900]
    assert (menu.mean(axis=2) < 0.3).mean() > 0.005, "the menu of categories did not render"
    assert (body.mean(axis=2) < 0.5).mean() > 0.01, "the workflow description did not render"
    dom = subprocess.run([*flags, "--dump-dom", out.as_uri()], check=True, capture_output=True, text=True, timeout=120)
    for category in ("0. Summary and provenance", "1. Population vs per-example", "6. Per-example stopping"):
        # the data carries each name once; the rendered menu adds it again
        assert dom.stdout.count(category) > page.count(category), category


def test_plugins_run_as_built_in_methods_do(tiny_run):
    """Methods from files outside the repository go through the whole workflow: tables, the
    trajectory (probed through an optimiser umia never built), the report's provenance."""
    traj = pd.read_parquet(tiny_run / "trajectory/trajectory.parquet")
    own = traj[(traj.method == "adam_ascent") & traj.point.between(1, POINTS - 1)]
    # 8 declared steps (ctx.plan) of its own torch.optim.Adam, 4 points: probed after steps 2, 4, 6
    assert sorted(own.step.unique()) == [2, 4, 6] and (own.total_steps == 8).all()
    ssd = traj[traj.method == "ssd"]
    assert (ssd.step == 0).all()  # SSD takes no optimiser step: its middle points are its end
    scores = pd.read_parquet(tiny_run / "scores", columns=["model_id", "method", "example_id", "view", "phi"])
    key = ["model_id", "example_id", "view"]
    moved = ssd[ssd.point == POINTS].merge(ssd[ssd.point == 0], on=key, suffixes=("", "_before"))
    assert (moved.phi != moved.phi_before).mean() > 0.5  # it dampened weights: forget phi changed
    assert set(PLUGIN_METHODS) <= set(scores.method)
    per_ex = pd.read_parquet(tiny_run / "tables/per_example.parquet")
    assert set(PLUGIN_METHODS) <= set(per_ex.method)
    page = (tiny_run / "report/summary.html").read_text()
    for f in plugin_folder(tiny_run).glob("*.py"):
        assert plugins.source_hash(f"{f}:x") in page  # its source's hash, in the provenance


def test_editing_a_plugin_reruns_only_its_jobs(tiny_run):
    path = plugin_folder(tiny_run) / "ssd.py"
    text, st = path.read_bytes(), path.stat()
    try:
        path.write_bytes(text + b"\n# tuned\n")
        out = snakemake(*tiny_args(tiny_run), "-n").stdout
    finally:  # as it was, so the other tests see a finished run
        path.write_bytes(text)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    unlearn = re.findall(r"rule unlearn:(?:.|\n)*?wildcards: method=([^,\s]+)", out)
    assert unlearn and set(unlearn) == {"ssd"}
    assert "rule train_original" not in out and "rule train_retrain" not in out


def test_the_end_of_a_run_gives_the_answer_and_the_report(tiny_run):
    """After the controls' verdict: one line per method, U-LiRA against the population loss attack
    (accuracy and TPR at 1% FPR) and the test-accuracy drop, then the report page's path."""
    seen = (tiny_run.parent / "terminal.txt").read_text()
    summary = pd.read_csv(tiny_run / "tables/summary.csv").set_index(["method", "attack"])
    tail = seen[seen.index("controls:") :]
    assert "per method (U-LiRA, per example, against the population loss attack of the literature):" in tail
    for m in [*UNLEARN, DIVERGED]:
        (line,) = [ln for ln in tail.splitlines() if ln.strip().startswith(f"{m} ")]
        cells = line.split()
        assert float(cells[1]) == pytest.approx(summary.accuracy[m, "ulira"], abs=6e-4)
        assert float(cells[4]) == pytest.approx(summary.accuracy[m, "population_loss"], abs=6e-4)
    assert f"report: {tiny_run}/report/summary.html" in tail
