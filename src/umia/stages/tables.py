"""The attack stage: every attack from the gathered tables into the summary, per-example, ROC and
utility tables (umia.attacks.run, umia.stages.utility)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from umia import attacks, io
from umia.stages import utility

log = logging.getLogger(__name__)


def attack_tables(
    *,
    scores: str,
    membership: str,
    out_summary: str,
    out_per_example: str,
    out_roc: str,
    out_utility: str,
    methods: Sequence[str],
    n_folds: int,
    loss_cv_folds: int,
    n_bootstrap: int,
    seed: int,
    config_hash: str,
    lm_stats: str | None = None,
    threads: int = 0,
    attack_epsilons: bool = True,
    rmia_a: float = 0.3,
) -> pd.DataFrame:
    """Every attack from the score table (and, for text, the LM statistics table: the population
    zlib-ratio and Min-K% attacks) into the summary, per-example and ROC tables, and the models'
    accuracies into the utility table (umia.stages.utility) whose ratios make the challenge's final
    scores; the methods run on up to ``threads`` threads (0: one a core). ``attack_epsilons``:
    see umia.attacks.run."""
    s = io.read_table(scores, io.SCORES, config_hash, columns=[*attacks.SCORE_COLUMNS, "correct"])
    m = io.read_table(membership, io.MEMBERSHIP, config_hash).to_pandas()
    lm = None if lm_stats is None else io.read_table(lm_stats, io.LM_STATS, config_hash, columns=attacks.LM_COLUMNS)
    tokens = None if lm_stats is None else io.read_table(lm_stats, io.LM_STATS, config_hash, columns=utility.LM_COLUMNS)
    util = utility.per_method(utility.per_model(s, m, tokens), methods, n_bootstrap, seed)
    ratio = dict(zip(util.method, util.retain_ratio * util.test_ratio, strict=True))
    summary, per_example, roc = attacks.run(
        s,
        m,
        methods,
        n_folds=n_folds,
        loss_cv_folds=loss_cv_folds,
        seed=seed,
        n_bootstrap=n_bootstrap,
        lm_stats=lm,
        threads=threads,
        utility_ratio=ratio,
        attack_epsilons=attack_epsilons,
        rmia_a=rmia_a,
    )
    first = summary.drop_duplicates("method").set_index("method")
    util["challenge_forget_score"] = util.method.map(first.challenge_forget_score)
    util["challenge_score"] = util.method.map(first.challenge_score)
    log.info("utility:\n%s", util.to_string(index=False, float_format="%.3f"))
    log.info("summary:\n%s", summary[["method", "attack", "accuracy", "auc", "tpr_at_1pct_fpr"]].to_string(index=False))
    io.write_table(per_example, out_per_example, io.PER_EXAMPLE, config_hash)
    io.write_table(roc, out_roc, io.ROC, config_hash)
    with io.atomic_path(out_utility) as tmp:
        util.to_csv(tmp, index=False, float_format="%.6g")
    with io.atomic_path(out_summary) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    return summary
