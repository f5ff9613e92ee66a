"""How many shadow models a study needs: every attack refit on subsets of the study's models.

For each size N' and each of ``repeats`` random subsets, the attacker of every fold is fit on N'
shadow models drawn (in pairs) from the other folds, and the fold's models are attacked as in
the study (the targets stay held out, every model a target once). Per (method, attack, N'): the
mean accuracy, AUC and TPR at 1% FPR over the subsets with the 2.5-97.5% range of the subsets as
the interval, beside the full study's (``n_shadow`` the other folds' models). Marked per attack:
the smallest N' at which the controls hold (``retrain`` at chance, ``none`` above it, within the
verdict's tolerance), and per (method, attack) the smallest N' that keeps 90% of the full study's
advantage over chance. The population loss attack fits no shadow model: its row is the same at
every N'.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from umia import attacks, io, registry
from umia.attacks.run import StudyArrays, attack
from umia.config import shadow_pool
from umia.errors import UmiaError

log = logging.getLogger(__name__)

COLUMNS = [
    "method",
    "attack",
    "n_shadow",
    "full",
    "n_subsets",
    *(f"{k}{s}" for k in ("accuracy", "auc", "tpr_at_1pct_fpr") for s in ("", "_low", "_high")),
    "controls_hold_from",
    "keeps_90pct_from",
]
CHANCE_TOLERANCE = 0.03  # as umia.report.verdict's
NO_SHADOWS = ("population_loss",)  # fit on the target model itself


class EfficiencyError(UmiaError):
    """Subset sizes a study cannot give."""


def sizes(n_models: int, n_folds: int, asked: Sequence[int] | None = None) -> list[int]:
    """The subset sizes N': ``asked``, or 2, 4, 8, ... below the pool; every one even and within the
    pool (``EfficiencyError``, one line, otherwise)."""
    pool = shadow_pool(n_models, n_folds)
    if pool < 2:
        raise EfficiencyError(
            f"efficiency: n_models={n_models} with attacks.n_folds={n_folds} leaves {pool} shadow models a fold, "
            "too few for a single subset; raise n_models"
        )
    if asked is None:
        out, k = [], 2
        while k < pool:
            out.append(k)
            k *= 2
        return out
    for k in asked:
        if k % 2 or k < 2:
            raise EfficiencyError(
                f"config key 'efficiency.sizes': {k} is not an even number of at least 2 (models come in pairs)"
            )
        if k > pool:
            raise EfficiencyError(
                f"config key 'efficiency.sizes': {k} is more than the {pool} shadow models a fold has "
                f"(n_models={n_models}, attacks.n_folds={n_folds}); lower it"
            )
    return sorted(set(asked))


def _metrics(t) -> dict:
    m = attacks.summarize(*t.flat(), t.threshold)
    return {"accuracy": m["accuracy"], "auc": m["auc"], "tpr_at_1pct_fpr": m["tpr_at_1pct_fpr"]}


def efficiency(
    study: StudyArrays, methods: Sequence[str], subset_sizes: Sequence[int], repeats: int, seed: int, threads: int = 0
) -> pd.DataFrame:
    """The efficiency table (``COLUMNS``) of every attack on every method of ``study``."""
    pool = shadow_pool(study.n_models, study.n_folds)
    todo = [m for m in ["none", "retrain", *methods] if m in study.cube]
    names = [a for a in registry.ATTACKS if a != "lira_retained"]  # on the candidates: the study's question

    def one_method(m: str) -> list[dict]:
        rows = []
        full = study.evidence(m)
        for name in names:
            t = attack(name)(full)
            if t is None:
                continue
            rows.append({"method": m, "attack": name, "n_shadow": pool, "full": True, "repeat": 0, **_metrics(t)})
            if name in NO_SHADOWS:
                continue
            for k in subset_sizes:
                for r in range(repeats):
                    x = study.evidence(
                        m, shadows=k, shadow_seed=int(np.random.SeedSequence([seed, k, r]).generate_state(1)[0])
                    )
                    rows.append(
                        {
                            "method": m,
                            "attack": name,
                            "n_shadow": k,
                            "full": False,
                            "repeat": r,
                            **_metrics(attack(name)(x)),
                        }
                    )
        return rows

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with ThreadPoolExecutor(max(1, min(len(todo), threads or cores))) as pool_:
        raw = pd.DataFrame([r for rows in pool_.map(one_method, todo) for r in rows])
    keys = ["method", "attack", "n_shadow", "full"]
    g = raw.groupby(keys, sort=False)
    out = g.size().rename("n_subsets").reset_index()
    for k in ("accuracy", "auc", "tpr_at_1pct_fpr"):
        out[k] = g[k].mean().to_numpy()
        out[f"{k}_low"] = g[k].quantile(0.025).to_numpy()
        out[f"{k}_high"] = g[k].quantile(0.975).to_numpy()
    return _marks(out)


def _marks(t: pd.DataFrame) -> pd.DataFrame:
    """The smallest N' at which each attack's controls hold, and at which each (method, attack)
    keeps 90% of its full study's advantage over chance (NaN: at no size asked)."""
    t = t.copy()
    t["controls_hold_from"] = np.nan
    t["keeps_90pct_from"] = np.nan
    sub = t[~t.full]
    for name in t.attack.unique():
        r = sub[(sub.method == "retrain") & (sub.attack == name)].set_index("n_shadow").accuracy
        n = sub[(sub.method == "none") & (sub.attack == name)].set_index("n_shadow").accuracy
        ok = [
            k for k in sorted(r.index) if abs(r[k] - 0.5) <= CHANCE_TOLERANCE and n.get(k, 0) > 0.5 + CHANCE_TOLERANCE
        ]
        held = next((k for k in sorted(r.index) if all(j in ok for j in r.index if j >= k)), np.nan)
        t.loc[t.attack == name, "controls_hold_from"] = held
        for m in t.method.unique():
            rows = t[(t.method == m) & (t.attack == name)]
            full = rows[rows.full].accuracy
            if not len(full) or not full.iloc[0] > 0.5:
                continue
            target = 0.5 + 0.9 * (full.iloc[0] - 0.5)
            part = rows[~rows.full].set_index("n_shadow").accuracy.sort_index()
            keeps = next((k for k in part.index if (part[part.index >= k] >= target).all()), np.nan)
            t.loc[(t.method == m) & (t.attack == name), "keeps_90pct_from"] = keeps
    return t[COLUMNS]


def efficiency_table(
    *,
    scores: str,
    membership: str,
    out: str,
    methods: Sequence[str],
    n_folds: int,
    sizes_asked: Sequence[int] | None,
    repeats: int,
    seed: int,
    config_hash: str,
    rmia_a: float = 0.3,
    lm_stats: str | None = None,
    threads: int = 0,
) -> pd.DataFrame:
    """The efficiency rule: tables/efficiency.csv from the gathered scores (no model)."""
    s = io.read_table(scores, io.SCORES, config_hash, columns=attacks.SCORE_COLUMNS)
    m = io.read_table(membership, io.MEMBERSHIP, config_hash).to_pandas()
    lm = None if lm_stats is None else io.read_table(lm_stats, io.LM_STATS, config_hash, columns=attacks.LM_COLUMNS)
    n_models = int(m["model_id"].max()) + 1
    asked = sizes(n_models, n_folds, sizes_asked)
    study = StudyArrays(s, m, lm, n_folds, 5, seed, rmia_a)
    del s
    table = efficiency(study, methods, asked, repeats, seed, threads)
    for (name,), rows in table[table.method == "none"].groupby(["attack"]):
        log.info("%s: controls hold from N'=%s", name, rows.controls_hold_from.iloc[0])
    with io.atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table
