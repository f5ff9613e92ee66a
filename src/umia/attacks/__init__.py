"""U-MIAs fit from the score table, one package with one table of attacks.

- ``evidence``: the score cubes, and ``Evidence``, one method's arrays as every attack reads them;
- ``trials``: ``Trials`` (what an attack returns) and ``cross_fit``, the K-fold loop over models;
- ``ulira``: the Gaussian likelihood-ratio test as an estimator, and U-LiRA's variants, the
  population Gaussian attack and LiRA on the retained examples;
- ``population``: the population loss attack and the threshold test of the LM statistics;
- ``metrics``: accuracy, AUC, TPR at low FPR, bootstrap intervals, per-example accuracy, ROC;
- ``challenge`` and ``privacy``: the NeurIPS 2023 challenge's scorer and per-example epsilons;
- ``run``: every attack of ``umia.registry.ATTACKS`` on every method, into the tables.

An attack is one function ``f(evidence) -> Trials | None`` and one ``registry.ATTACKS`` entry.
"""

from umia.attacks.evidence import LM_COLUMNS, SCORE_COLUMNS, Evidence, ScoreCube, cubes, lm_cubes
from umia.attacks.metrics import bootstrap, per_example_accuracy, roc_points, summarize, tpr_at_fpr
from umia.attacks.population import (
    BestThreshold,
    best_threshold,
    population_loss,
    population_min_k,
    population_threshold,
    population_zlib,
)
from umia.attacks.privacy import (
    CHALLENGE_MIN_THRESHOLDS,
    EPSILON_CAP,
    challenge_epsilon,
    challenge_grid_warning,
    challenge_input_epsilon,
    challenge_thresholds,
    population_size,
    single_threshold_epsilon,
)
from umia.attacks.run import SUMMARY_COLUMNS, attack, run
from umia.attacks.trials import Trials, cross_fit, fold_of
from umia.attacks.ulira import (
    GaussianLRT,
    lira_retained,
    population_gaussian,
    ulira,
    ulira_fixed_variance,
    ulira_half_out,
    ulira_offline,
)

__all__ = [
    "CHALLENGE_MIN_THRESHOLDS",
    "EPSILON_CAP",
    "LM_COLUMNS",
    "SCORE_COLUMNS",
    "SUMMARY_COLUMNS",
    "BestThreshold",
    "Evidence",
    "GaussianLRT",
    "ScoreCube",
    "Trials",
    "attack",
    "best_threshold",
    "bootstrap",
    "challenge_epsilon",
    "challenge_grid_warning",
    "challenge_input_epsilon",
    "challenge_thresholds",
    "cross_fit",
    "cubes",
    "fold_of",
    "lira_retained",
    "lm_cubes",
    "per_example_accuracy",
    "population_gaussian",
    "population_loss",
    "population_min_k",
    "population_size",
    "population_threshold",
    "population_zlib",
    "roc_points",
    "run",
    "single_threshold_epsilon",
    "summarize",
    "tpr_at_fpr",
    "ulira",
    "ulira_fixed_variance",
    "ulira_half_out",
    "ulira_offline",
]
