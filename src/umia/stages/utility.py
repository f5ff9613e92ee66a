"""Utility beside privacy: the test, retain and forget accuracy of every model, from the score
table's ``correct`` column and the membership plan, and per method with intervals.

For model i of a method: test accuracy on the test split, retain accuracy on D_i minus F_i (what
it kept; for a retrain, all it trained on), forget accuracy on F_i. The ratios to the retrains'
means are the NeurIPS 2023 challenge's utility factors (its final score multiplies the forget
score by the retain and the test ratio).

For a language model the accuracy is next-token accuracy: the share of a set's next tokens that
are the model's top-1 prediction, over all the set's tokens (io.LM_STATS' ``token_accuracy``
weighted by ``n_tokens``), not the score table's per-review ``correct`` (at least half a review's
tokens right), which a small model almost never reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from umia.io import codes

COLUMNS = ["model_id", "method", "example_id", "view", "correct"]
LM_COLUMNS = ["model_id", "method", "example_id", "token_accuracy", "n_tokens"]  # of io.LM_STATS
SPLITS = ("test", "retain", "forget")
PER_METHOD = [
    "method",
    "n_models",
    *(f"{s}_accuracy{k}" for s in SPLITS for k in ("", "_ci_low", "_ci_high")),
    "test_drop",
    "retain_ratio",
    "test_ratio",
    "challenge_forget_score",
    "challenge_score",
]


def per_model(scores: pa.Table, membership: pd.DataFrame, lm_stats: pa.Table | None = None) -> pd.DataFrame:
    """Accuracy of every model on its three sets, first view: columns method, model_id and
    ``<set>_accuracy`` for test, retain and forget (nan where a set is empty). With ``lm_stats``
    (text; columns ``LM_COLUMNS``) the accuracy is next-token accuracy over the set's tokens."""
    views = codes(scores["view"])[1]
    first = "identity" if "identity" in views else views[0]
    t = scores.filter(pc.equal(scores["view"], first))
    if lm_stats is not None:  # one row per (model, method, review): the weights are the tokens
        t = lm_stats
    n_models = int(membership["model_id"].max()) + 1
    n_pool = int(membership["example_id"].max()) + 1
    n_examples = int(pc.max(t["example_id"]).as_py()) + 1
    in_train = np.zeros((n_models, n_pool), bool)
    in_forget = np.zeros((n_models, n_pool), bool)
    ix = (membership["model_id"].to_numpy(), membership["example_id"].to_numpy())
    in_train[ix], in_forget[ix] = membership["in_train"].to_numpy(), membership["in_forget"].to_numpy()
    sets = {
        "test": np.broadcast_to(np.arange(n_examples) >= n_pool, (n_models, n_examples)),
        "retain": np.pad(in_train & ~in_forget, ((0, 0), (0, n_examples - n_pool))),
        "forget": np.pad(in_forget, ((0, 0), (0, n_examples - n_pool))),
    }
    method, names = codes(t["method"])
    model, example = np.asarray(t["model_id"]), np.asarray(t["example_id"])
    if lm_stats is None:
        correct, weight = np.asarray(t["correct"]).astype(np.float64), np.ones(len(t))
    else:
        weight = np.asarray(t["n_tokens"]).astype(np.float64)
        correct = np.asarray(t["token_accuracy"]).astype(np.float64)
    frames = []
    for k, name in enumerate(names):
        rows = np.flatnonzero(method == k)
        cube = np.full((n_models, n_examples), np.nan)
        w = np.zeros((n_models, n_examples))
        cube[model[rows], example[rows]] = correct[rows]
        w[model[rows], example[rows]] = weight[rows]
        present = np.unique(model[rows])
        out = {"method": name, "model_id": present}
        for s, mask in sets.items():
            m = mask[present] & np.isfinite(cube[present])
            wm = np.where(m, w[present], 0.0)
            with np.errstate(invalid="ignore"):
                out[f"{s}_accuracy"] = (np.where(m, cube[present], 0) * wm).sum(1) / wm.sum(1)
        frames.append(pd.DataFrame(out))
    return pd.concat(frames, ignore_index=True)


def _interval(x: np.ndarray, n_boot: int, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean, resampling models."""
    x = x[np.isfinite(x)]
    if len(x) < 2 or n_boot < 1:
        return float("nan"), float("nan")
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(1)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return float(np.percentile(means, lo)), float(np.percentile(means, hi))


def per_method(models: pd.DataFrame, methods: Sequence[str], n_boot: int = 100, seed: int = 0) -> pd.DataFrame:
    """Per method (controls first): mean accuracies with 95% intervals over models, the test drop
    from the originals (``none``) and the retain and test ratios to the retrains (``retrain``).
    The challenge columns are left nan for ``attack_tables`` to fill."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in ["none", "retrain", *methods]:
        g = models[models.method == m]
        if not len(g):
            continue
        row = {"method": m, "n_models": len(g)}
        for s in SPLITS:
            x = g[f"{s}_accuracy"].to_numpy()
            row[f"{s}_accuracy"] = float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")
            row[f"{s}_accuracy_ci_low"], row[f"{s}_accuracy_ci_high"] = _interval(x, n_boot, rng)
        rows.append(row)
    out = pd.DataFrame(rows).set_index("method", drop=False)
    ref = out.loc["retrain"] if "retrain" in out.index else None
    orig = out.loc["none"] if "none" in out.index else None
    out["test_drop"] = (orig.test_accuracy - out.test_accuracy) if orig is not None else np.nan
    out["retain_ratio"] = out.retain_accuracy / ref.retain_accuracy if ref is not None else np.nan
    out["test_ratio"] = out.test_accuracy / ref.test_accuracy if ref is not None else np.nan
    out["challenge_forget_score"] = np.nan
    out["challenge_score"] = np.nan
    return out.reset_index(drop=True)[PER_METHOD]
