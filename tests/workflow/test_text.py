"""End-to-end run of the text task (tests/workflow/tiny_text.yaml): synthetic movie reviews, a
GPT-2-style model of one layer pretrained from scratch by the workflow, N=16 shadow models
fine-tuned from it, two LM unlearning methods, per-example stopping and the controls, on the CPU.

The reviews are written by ``write_reviews`` into the test's temporary folder (the real IMDB
Parquet is not needed, so the test runs wherever the code does): each fills sentence templates
with words drawn at random, so the base model can learn the templates from the pretraining
reviews and a shadow model can only memorise the random words of the reviews it is fine-tuned on.

Thresholds. Every U-MIA makes |C| x N = 50 x 16 = 800 trials. Were they independent, a coin's
accuracy would have a standard error of sqrt(0.25 / 800) = 0.018; they share models and examples,
so we allow about four of those: |accuracy - 0.5| < 0.075 for `retrain` (whose unlearned models
are the retrains, so no attack can tell IN from OUT). For `none` (nothing unlearned) U-LiRA must
find the members clearly: accuracy > 0.75 (over 13 standard errors above chance; the tiny run
gives about 0.9) and AUC > 0.8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from tests import lm_families as F
from umia import registry
from umia.io import HASH_KEY

from .conftest import ROOT, copy_plugins, snakemake

pytestmark = pytest.mark.workflow

TINY_TEXT = ROOT / "tests/workflow/tiny_text.yaml"
N, C, N_POOL, N_TEST = 16, 50, 200, 100
UNLEARN = [
    "gradient_ascent",
    "npo",
    "per_example_stop",
    "ssd",
]  # ssd: the example plug-in (examples/ssd.py), from a copy
METHODS = ["none", "retrain", *UNLEARN]
ATTACKS = [
    "ulira",
    "ulira_half_out",
    "ulira_offline",
    "ulira_fixed_variance",
    "urmia",
    "urmia_offline",
    "population_gaussian",
    "population_loss",
    "population_zlib",
    "population_min_k",
]
ALL_ATTACKS = [*ATTACKS, "lira_retained"]
FIGURES = [
    "attack_accuracy",
    "roc",
    "per_example_accuracy",
    "protected_examples",  # the reviews' first words
    "before_after",
    "retained_change",
    "rates",
    "reach",
    "privacy_utility",
    "per_example_stop",  # its method waits for the retrains' scores, as for images
]

POS = "great wonderful moving brilliant charming superb lovely gripping clever delightful".split()
NEG = "awful boring dull clumsy tedious weak silly bland messy forgettable".split()
NOUNS = "plot cast script ending score camera pacing dialogue villain hero sequel soundtrack".split()
NAMES = "anna boris carla dmitri elena felix greta hugo ines jonas kira lars mona nils olga pavel".split()
CITIES = "paris lima oslo rome cairo delhi tokyo quito riga perth dakar hanoi".split()
TEMPLATES = (
    "The {noun} was {adj}.",
    "{name} plays a {adj} {noun} in {city}.",
    "I saw it in {city} with {name} and {name2}.",
    "Honestly the {noun} felt {adj} and the {noun2} {adj2}.",
    "My friend {name} called it {adj}.",
)


def write_reviews(path, n_train: int = 320, n_test: int = 400, seed: int = 0) -> pd.DataFrame:
    """Distinct synthetic reviews in the IMDB Parquet's layout (doc_id, split, label, text), with
    HTML breaks as in the real reviews; half positive, half negative. Written to ``path``."""
    rng = np.random.default_rng(seed)
    seen, rows = set(), []
    while len(rows) < n_train + n_test:
        label = int(rng.integers(2))
        words = POS if label else NEG
        sentences = []
        for t in rng.choice(len(TEMPLATES), size=int(rng.integers(3, 6))):
            a, b = rng.choice(words, 2, replace=False)
            n1, n2 = rng.choice(NOUNS, 2, replace=False)
            p1, p2 = rng.choice(NAMES, 2, replace=False)
            fill = dict(adj=a, adj2=b, noun=n1, noun2=n2, name=p1.title(), name2=p2.title())
            sentences.append(TEMPLATES[t].format(city=rng.choice(CITIES).title(), **fill))
        body = " ".join(sentences[:2]) + "<br /><br />" + " ".join(sentences[2:])
        if body not in seen:
            seen.add(body)
            rows.append((label, body))
    df = pd.DataFrame(
        {
            "doc_id": np.arange(len(rows), dtype=np.int64),
            "split": ["train"] * n_train + ["test"] * n_test,
            "label": np.array([r[0] for r in rows], dtype=np.int64),
            "text": [r[1] for r in rows],
        }
    )
    df.to_parquet(path)
    return df


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """The tiny text experiment, run once for the module; returns its results folder."""
    tmp = tmp_path_factory.mktemp("text")
    write_reviews(tmp / "reviews.parquet")
    ssd = copy_plugins(tmp / "plugins")["ssd"]
    methods = [*yaml.safe_load(TINY_TEXT.read_text())["methods"], f"{ssd}:ssd"]
    paths = tmp / "paths.yaml"
    paths.write_text(
        yaml.safe_dump(
            {"results_dir": str(tmp / "results"), "dataset": {"path": str(tmp / "reviews.parquet")}, "methods": methods}
        )
    )
    snakemake("--configfile", str(TINY_TEXT), str(paths))
    return tmp / "results" / "tiny_text"


def test_text_outputs_follow_the_contract(text_run):
    summary = pd.read_csv(text_run / "tables/summary.csv")
    assert sorted(zip(summary.method, summary.attack, strict=True)) == sorted(
        (m, a) for m in METHODS for a in ALL_ATTACKS
    )
    assert (summary.n_targets == N).all() and (summary.diverged_models == 0).all()
    assert set(summary.attack) == set(registry.attacks_for("text"))  # every registered attack, run
    assert (summary[summary.attack == "population_zlib"].n_trials == N * C).all()

    scores = pd.read_parquet(text_run / "scores")
    assert len(scores) == len(METHODS) * N * (N_POOL + N_TEST)
    assert set(scores.view) == {"identity"} and set(scores.stage) == {"original", "retrain", "unlearned"}
    assert np.isfinite(scores.phi).all() and (scores.phi < 0).all()  # a mean token log-likelihood
    np.testing.assert_allclose(scores.loss, -scores.phi)
    digest = pq.read_schema(text_run / "scores/scores.parquet").metadata[HASH_KEY]
    stats = pd.read_parquet(text_run / "lm_stats/lm_stats.parquet")
    assert pq.read_schema(text_run / "lm_stats/lm_stats.parquet").metadata[HASH_KEY] == digest
    assert len(stats) == len(scores)
    both = scores.merge(stats, on=["model_id", "method", "example_id"], suffixes=("", "_stats"))
    assert len(both) == len(scores) and (both.label == both.label_stats).all()
    assert (both.min_k <= both.phi + 1e-5).all()  # the lowest 20% of the token log-probs
    assert (both.correct == (both.token_accuracy >= 0.5)).all()
    assert both.n_tokens.between(1, 39).all()  # cut at max_tokens = 40, bos included
    # the utility table's test accuracy: next-token accuracy over the test reviews' tokens
    util = pd.read_csv(text_run / "tables/utility.csv").set_index("method")
    test = stats[stats.split == "test"].assign(hits=lambda d: d.token_accuracy * d.n_tokens)
    per = test.groupby(["method", "model_id"])[["hits", "n_tokens"]].sum()
    expect = (per.hits / per.n_tokens).groupby("method").mean()
    assert (expect > 0).all(), "a trained LM predicts some next tokens"
    np.testing.assert_allclose(util.loc[expect.index, "test_accuracy"], expect, rtol=1e-5)

    m = pd.read_parquet(text_run / "plan/membership.parquet")
    assert len(m) == N * N_POOL and (m.groupby("example_id").in_train.sum() == N // 2).all()
    assert m.groupby("example_id").in_forget.any().sum() == C
    traj = pd.read_parquet(text_run / "trajectory/trajectory.parquet")
    assert set(traj.method) == set(UNLEARN) and set(traj.point) == set(range(5))
    assert len(traj[traj.point == 0]) == len(UNLEARN) * m.in_forget.sum()

    corpus = pd.read_parquet(text_run / "data/corpus.parquet")
    ids = {r: set(corpus.doc_id[corpus.role == r]) for r in ("pool", "test", "pretrain")}
    assert [len(ids[r]) for r in ("pool", "test", "pretrain")] == [N_POOL, N_TEST, 300]
    assert not (ids["pool"] & ids["test"] or ids["pool"] & ids["pretrain"] or ids["test"] & ids["pretrain"])
    assert {"model.safetensors", "config.json", "tokenizer.json", "umia.json"} <= {
        p.name for p in (text_run / "base").iterdir()
    }

    examples = pd.read_parquet(text_run / "plan/examples.parquet")
    assert len(examples) == C and (examples[["height", "width", "channels"]] == 0).all().all()
    assert (examples.pixels.str.len() == 0).all() and examples.text.str.len().gt(20).all()
    assert set(examples.label_name) <= {"negative", "positive"}
    for stem in FIGURES:
        for ext in ("png", "pdf"):
            assert (text_run / f"figures/{stem}.{ext}").stat().st_size > 5000
    page = (text_run / "report/summary.html").read_text()
    assert "holds" in page
    # the report warns about the challenge's grid exactly where the summary says it is too coarse
    # (this memorising tiny setting spans about 19 thresholds; the given bases below, about 5)
    assert (summary.challenge_thresholds > 0).all()
    assert ("too coarse" in page) == bool(summary.challenge_thresholds.iloc[0] < 10)


def test_text_controls(text_run):
    s = pd.read_csv(text_run / "tables/summary.csv").set_index(["method", "attack"])
    for attack in ATTACKS:
        assert abs(s.loc[("retrain", attack), "accuracy"] - 0.5) < 0.075, attack
    assert s.loc[("none", "ulira"), "accuracy"] > 0.75
    assert s.loc[("none", "ulira"), "auc"] > 0.8
    # claim 1 on text too: the per-example attack beats every population attack on the originals
    for attack in ("population_gaussian", "population_loss", "population_zlib", "population_min_k"):
        assert s.loc[("none", "ulira"), "accuracy"] > s.loc[("none", attack), "accuracy"] + 0.05, attack


def test_text_second_run_has_nothing_to_do(text_run):
    paths = text_run.parent.parent / "paths.yaml"
    proc = snakemake("--configfile", str(TINY_TEXT), str(paths), "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize("family, adapter", [*((f, False) for f in F.FAMILIES), ("llama", True)])
def test_a_pretrained_base_of_each_family_runs_the_whole_workflow(tmp_path, family, adapter):
    """lm.base_model set to a local folder (tests/lm_families.py: random weights, the family's
    tokenizer): nothing is pretrained, every shadow model is fine-tuned from that model (fully, or
    as a LoRA adapter), and the study runs to its report. N=8 is too few for the controls'
    thresholds; the tiny run checks them."""
    reviews = write_reviews(tmp_path / "reviews.parquet")
    base = F.save(family, tmp_path / family, reviews.text.tolist()[:300], context=64)
    change = {
        "results_dir": str(tmp_path / "results"),
        "dataset": {"path": str(tmp_path / "reviews.parquet"), "max_tokens": 64},
        "lm": {"base_model": str(base)},
        "n_models": 8,
        "shard_size": 8,
        "candidates": {"mode": "random", "size": 20},
        "methods": ["gradient_ascent"],
        "attacks": {"n_folds": 2, "loss_cv_folds": 2, "n_bootstrap": 10},
    }
    if adapter:  # a random base learns little through adapters (not its embeddings): no control here
        lora = {"kind": "lora", "rank": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
        change["train"] = {"adapter": lora, "lr": 0.01}
    (tmp_path / "change.yaml").write_text(yaml.safe_dump(change))
    snakemake("--configfile", str(TINY_TEXT), str(tmp_path / "change.yaml"))
    run = tmp_path / "results/tiny_text"
    assert not (run / "base").exists()  # the given base, not one pretrained here
    log = (run / "logs/train/original-shard-000.log").read_text()
    assert f"base model {base}" in log
    summary = pd.read_csv(run / "tables/summary.csv")
    assert set(summary.method) == {"none", "retrain", "gradient_ascent"} and (summary.n_targets == 8).all()
    scores = pd.read_parquet(run / "scores")
    assert len(scores) == 3 * 8 * (N_POOL + N_TEST) and np.isfinite(scores.phi).all() and (scores.phi < 0).all()
    s = summary.set_index(["method", "attack"])
    if not adapter:
        assert s.loc[("none", "ulira"), "accuracy"] > 0.6  # the fine-tuned copies of this base memorise
        # a gentle fine-tuning's phi varies across models by less than the challenge's threshold
        # grid resolves (5.1-5.8 of its thresholds here): the report page says so
        assert (summary.challenge_thresholds < 10).all()
        assert "too coarse" in (run / "report/summary.html").read_text()
    # an unlearning job starts from its original (its adapter loaded, not the bare base): the
    # forget reviews' phi before the first step is the original's, and the method moves it
    orig = scores[scores.stage == "original"].set_index(["model_id", "example_id"]).phi
    traj = pd.read_parquet(run / "trajectory/trajectory.parquet")
    start = traj[traj.point == 0].set_index(["model_id", "example_id"]).phi
    np.testing.assert_allclose(start.to_numpy(), orig.loc[start.index].to_numpy(), rtol=1e-4, atol=1e-4)
    end = traj[traj.point == traj.point.max()].set_index(["model_id", "example_id"]).phi
    assert np.abs(end.to_numpy() - orig.loc[end.index].to_numpy()).max() > 1e-3
    assert (run / "report/summary.html").exists()
    models = torch.load(run / "models/original/none/shard-000.pt", weights_only=True)["models"]
    keys = set(models["0"])
    assert len(models) == 8 and keys
    if adapter:  # only the adapter is kept, and it is what the unlearning jobs loaded
        assert all("lora_" in k for k in keys), sorted(keys)[:3]
        assert "LoRA adapters of rank 16" in log
    else:
        assert not any("lora_" in k for k in keys)
