"""Every registered attack on every method: the table of attacks (``umia.registry.ATTACKS``)
run over one method's ``Evidence`` at a time, into the summary, per-example and ROC tables.

An attack is one function of the ``Evidence`` and one registry entry: ``run`` knows no attack by
name.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from umia import registry
from umia.attacks import challenge
from umia.attacks.evidence import Evidence, ScoreCube, cubes, lm_cubes
from umia.attacks.metrics import bootstrap, per_example_accuracy, roc_points, summarize
from umia.attacks.privacy import (
    challenge_epsilon,
    challenge_grid_warning,
    challenge_input_epsilon,
    challenge_thresholds,
    population_size,
    single_threshold_epsilon,
)
from umia.attacks.trials import Trials
from umia.io import codes

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "method",
    "attack",
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "accuracy_best",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "tpr_at_0.1pct_fpr",
    "tpr_at_0.1pct_fpr_ci_low",
    "tpr_at_0.1pct_fpr_ci_high",
    "tpr_at_1pct_fpr",
    "tpr_at_1pct_fpr_ci_low",
    "tpr_at_1pct_fpr_ci_high",
    "epsilon_median",
    "epsilon_single_threshold_median",
    "forget_score",
    "score",
    "challenge_forget_score",
    "challenge_score",
    "challenge_thresholds",
    "n_targets",
    "n_trials",
    "n_nonfinite",
    "diverged_models",
    "null_accuracy",
    "null_accuracy_ci_low",
    "null_accuracy_ci_high",
]
BOOTSTRAP_TRIALS = 200_000  # the intervals resample models; trials past this are subsampled
Z_POPULATION = 5_000  # U-RMIA's population: test examples spread evenly over the test split


@functools.cache
def attack(name: str) -> Callable[[Evidence], Trials | None]:
    """The function of the registered attack ``name`` (``umia.registry.ATTACKS``)."""
    return registry.load(registry.ATTACKS[name].function)


def _median(x: np.ndarray) -> float:
    return float(np.nanmedian(x)) if np.isfinite(x).any() else float("nan")


def _row(t: Trials, n_boot: int, seed: int, eps: np.ndarray, eps_single: np.ndarray, ratio: float) -> dict:
    labels, score = t.flat()
    row = summarize(labels, score, t.threshold)
    models = t.models()
    if len(score) > BOOTSTRAP_TRIALS:
        keep = np.random.default_rng(seed).choice(len(score), BOOTSTRAP_TRIALS, replace=False)
        labels, score, models = labels[keep], score[keep], models[keep]
    for k, (lo, hi) in bootstrap(labels, score, models, t.threshold, n_boot, seed).items():
        row[f"{k}_ci_low"], row[f"{k}_ci_high"] = lo, hi
    row["epsilon_median"] = _median(eps)
    row["epsilon_single_threshold_median"] = _median(eps_single)
    row["forget_score"] = challenge.forget_score(eps, population_size(t)) if np.isfinite(eps).any() else np.nan
    row["score"] = row["forget_score"] * ratio
    row["null_accuracy"] = row["null_accuracy_ci_low"] = row["null_accuracy_ci_high"] = np.nan
    if t.null is not None:  # the attack's own chance level (the loss attack's cross-validation)
        labels, score, models = t.null
        row["null_accuracy"] = summarize(labels, score, t.threshold)["accuracy"]
        lo, hi = bootstrap(labels, score, models, t.threshold, n_boot, seed)["accuracy"]
        row["null_accuracy_ci_low"], row["null_accuracy_ci_high"] = lo, hi
    return row


class StudyArrays:
    """The arrays every method's evidence is cut from: memberships, labels and the score cubes."""

    def __init__(
        self,
        table: pa.Table,
        membership: pd.DataFrame,
        lm_stats,
        n_folds: int,
        loss_cv_folds: int,
        seed: int,
        rmia_a: float = 0.3,
    ):
        self.n_models = int(membership["model_id"].max()) + 1
        n_pool = int(membership["example_id"].max()) + 1
        names = codes(table["view"])[1]
        views = [v for v in ("identity", "mirror") if v in set(names)]
        views += sorted(set(names) - set(views))
        n_examples = int(pc.max(table["example_id"]).as_py()) + 1
        self.labels = np.zeros(n_examples, np.int64)
        self.labels[np.asarray(table["example_id"])] = np.asarray(table["label"])
        self.in_train = np.zeros((self.n_models, n_pool), bool)
        in_forget = np.zeros((self.n_models, n_pool), bool)
        ix = (membership["model_id"].to_numpy(), membership["example_id"].to_numpy())
        self.in_train[ix], in_forget[ix] = membership["in_train"].to_numpy(), membership["in_forget"].to_numpy()
        self.cand = np.flatnonzero(in_forget.any(axis=0))  # (c,)
        self.kept = np.setdiff1d(np.arange(n_pool), self.cand)  # retained examples: never in a forget set
        self.is_in, self.is_out = in_forget[:, self.cand].T, ~self.in_train[:, self.cand].T  # (c, N)
        self.test_ids = np.arange(n_pool, n_examples)
        self.cube: dict[str, ScoreCube] = cubes(table, self.n_models, views, n_examples)
        self.lm = None if lm_stats is None else lm_cubes(lm_stats, self.n_models, n_examples)
        if "retrain" not in self.cube:
            raise ValueError("the score table has no retrain models; the OUT distributions come from them")
        self.s_out = self.cube["retrain"].phi[:, :, self.cand].transpose(2, 0, 1)  # (c, N, V)
        self.n_folds, self.loss_cv_folds, self.seed, self.rmia_a = n_folds, loss_cv_folds, seed, rmia_a
        self.z = self.test_ids[:: max(1, len(self.test_ids) // Z_POPULATION)][:Z_POPULATION]  # U-RMIA's z
        self.z_out = self.cube["retrain"].phi[:, :, self.z].transpose(2, 0, 1) if len(self.z) else None

    def evidence(self, m: str, shadows: int | None = None, shadow_seed: int = 0) -> Evidence:
        """Method ``m``'s evidence (``none``: the originals, ``retrain``: the retrains); ``shadows``:
        every attacker fit on that many shadow models (umia.attacks.trials.shadow_models)."""
        phi, cand, kept = self.cube[m].phi, self.cand, self.kept
        loss = self.cube[m].loss[:, 0, :]  # (N, n_examples): first view
        lm_in, lm_out = {}, {}
        if self.lm is not None and m in self.lm and "retrain" in self.lm:
            lm_in = {k: v[:, cand].T for k, v in self.lm[m].items()}  # (c, N)
            lm_out = {k: v[:, cand].T for k, v in self.lm["retrain"].items()}
        return Evidence(
            s_in=phi[:, :, cand].transpose(2, 0, 1),
            s_out=self.s_out,
            is_in=self.is_in,
            is_out=self.is_out,
            n_folds=self.n_folds,
            candidates=cand,
            loss_in=loss[:, cand].T,
            candidate_labels=self.labels[cand],
            loss_test=loss[:, self.test_ids].T,
            test_labels=self.labels[self.test_ids],
            loss_cv_folds=self.loss_cv_folds,
            seed=self.seed,
            kept=kept,
            kept_phi=phi[:, :, kept].transpose(2, 0, 1) if len(kept) else None,  # (kept, N, V)
            kept_member=self.in_train[:, kept].T if len(kept) else None,
            lm_in=lm_in,
            lm_out=lm_out,
            z_in=phi[:, :, self.z].transpose(2, 0, 1) if self.z_out is not None else None,  # (n_z, N, V)
            z_out=self.z_out,
            rmia_a=self.rmia_a,
            shadows=shadows,
            shadow_seed=shadow_seed,
        )


def run(
    scores: pd.DataFrame | pa.Table,
    membership: pd.DataFrame,
    methods: Sequence[str],
    n_folds: int = 4,
    loss_cv_folds: int = 5,
    seed: int = 0,
    n_bootstrap: int = 100,
    lm_stats: pd.DataFrame | pa.Table | None = None,
    threads: int = 0,
    utility_ratio: Mapping[str, float] | None = None,
    attack_epsilons: bool = True,
    rmia_a: float = 0.3,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every attack on every method (controls included), the methods on up to ``threads``
    threads (0: one a CPU core). Returns (summary, per_example, roc).

    On the forget candidates: U-LiRA (online, offline, fixed variance), the population Gaussian
    and the population loss U-MIA; with ``lm_stats`` (the text task's io.LM_STATS rows, columns
    ``LM_COLUMNS``) also the LM population attacks ``population_zlib`` and ``population_min_k``
    (``population_threshold`` on the zlib ratio and the Min-K% probability). On the retained
    pool examples (outside C): plain LiRA (``lira_retained``: members D_i minus F_i vs
    non-members) on the method's own models, so its ``none`` row is the originals' vulnerability
    and each method's row shows how unlearning moved it.

    Every row carries the challenge's forget score of the attack's per-example epsilons
    (``forget_score``) and of its own input (``challenge_forget_score``: phi of the method's models
    against the retrains', umia.attacks.challenge), and, with ``utility_ratio`` (method -> retain ratio x
    test ratio, umia.stages.utility), the final scores ``score`` and ``challenge_score``, and
    ``challenge_thresholds``, how many of that test's thresholds the median example's range of phi
    spans (under ``CHALLENGE_MIN_THRESHOLDS`` it is too coarse: ``challenge_grid_warning``). Without
    ``attack_epsilons`` the attacks' challenge epsilons (about 1 ms an example and attack, most of
    the time here) are left NaN, and with them ``epsilon``, ``forget_score`` and ``score``: the
    tuning stage, which reads none of them, runs so; the challenge's own test is always computed.
    """
    table = scores if isinstance(scores, pa.Table) else pa.Table.from_pandas(scores, preserve_index=False)
    study = StudyArrays(table, membership, lm_stats, n_folds, loss_cv_folds, seed, rmia_a)
    del table
    n_models = study.n_models
    grid = challenge_thresholds(study.s_out[..., 0], study.is_out)
    if warning := challenge_grid_warning(study.s_out[..., 0], study.is_out):
        log.warning(warning)

    def one_method(m: str) -> tuple[list, list, list]:
        rows, per_ex, rocs = [], [], []
        x = study.evidence(m)
        diverged = int((~np.isfinite(study.cube[m].phi).all(axis=(1, 2))).sum())
        if diverged:
            log.warning("method %s: %d of %d models have non-finite scores (diverged)", m, diverged, n_models)
        ratio = (utility_ratio or {}).get(m, np.nan)
        eps_input, n_pop = challenge_input_epsilon(x.s_in, x.s_out, x.is_in, x.is_out)
        input_score = challenge.forget_score(eps_input, n_pop)
        for name, spec in registry.ATTACKS.items():
            t = attack(name)(x)
            if t is None:
                continue  # its inputs are not in this study
            ids = study.cand if t.examples is None else t.examples
            on = attack_epsilons and spec.challenge_epsilon
            eps = challenge_epsilon(t) if on else np.full(len(ids), np.nan)
            eps_single = single_threshold_epsilon(t)
            rows.append(
                {
                    "method": m,
                    "attack": name,
                    **_row(t, n_bootstrap, seed, eps, eps_single, ratio),
                    "challenge_forget_score": input_score,
                    "challenge_score": input_score * ratio,
                    "challenge_thresholds": grid,
                    "n_targets": n_models,
                    "diverged_models": diverged,
                }
            )
            acc, n = per_example_accuracy(t)
            per_ex.append(
                pd.DataFrame(
                    {
                        "method": m,
                        "attack": name,
                        "example_id": ids,
                        "label": study.labels[ids],
                        "accuracy": acc,
                        "epsilon": eps,
                        "epsilon_single_threshold": eps_single,
                        "n_trials": n,
                    }
                )
            )
            rocs.append(roc_points(*t.flat(), t.threshold).assign(method=m, attack=name))
        return rows, per_ex, rocs

    todo = []
    for m in ["none", "retrain", *methods]:
        if m not in study.cube:
            log.warning("method %s has no scores; left out of the tables", m)
        else:
            todo.append(m)
    # methods are independent: threads (numpy, scipy and scikit-learn release the GIL in their
    # heavy parts) share the score cube; the tables keep the method order
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(len(todo), threads or cores))
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one_method, todo))
    rows = [r for d in done for r in d[0]]
    per_ex = [p for d in done for p in d[1]]
    rocs = [r for d in done for r in d[2]]
    summary = pd.DataFrame(rows)[SUMMARY_COLUMNS]
    roc = pd.concat(rocs, ignore_index=True)[["method", "attack", "fpr", "tpr"]]
    return summary, pd.concat(per_ex, ignore_index=True), roc
