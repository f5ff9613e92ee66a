"""What an attacker on one method may read: the score cubes cut from the long score table, and
``Evidence``, the arrays of one method that every attack function takes.

Notation, for one unlearning method m over the forget candidates C (c examples), N models and
V views:

- ``s_in``  (c, N, V): phi of method m's models (originals for ``none``, retrains for ``retrain``);
  meaningful where ``is_in`` (x in F_i: trained, then unlearned);
- ``s_out`` (c, N, V): phi of the retrain models; meaningful where ``is_out`` (x not in D_i: never
  trained);
- ``is_in``, ``is_out`` (c, N) boolean. For a candidate every model is one or the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from umia.io import codes

SCORE_COLUMNS = ["model_id", "method", "example_id", "label", "view", "phi", "loss"]  # what the attacks read
LM_COLUMNS = ["model_id", "method", "example_id", "min_k", "zlib_ratio"]  # of the text task's LM statistics
LM_STATISTICS = ("zlib_ratio", "min_k")


@dataclass(frozen=True)
class Evidence:
    """One method's scores as the attacks read them (shapes in the module's docstring).

    The candidates' phi (``s_in``, ``s_out``) and trials (``is_in``, ``is_out``); the first view's
    loss of the method's models on the candidates (``loss_in`` (c, N)) and on the test split
    (``loss_test`` (n_test, N)) with their class labels; phi on the retained pool examples outside
    C (``kept_phi`` (k, N, V)) and their membership (``kept_member`` (k, N)); for text, the LM
    statistics of the method's models and of the retrains on the candidates (name -> (c, N)); phi
    of a population of non-members (the test split) on the method's models and on the retrains
    (``z_in``, ``z_out``), for U-RMIA. With ``shadows``, every attacker is fit on that many shadow
    models of the other folds (the efficiency analysis). An attack whose inputs are missing (no
    retained examples, no LM statistics) returns None.
    """

    s_in: np.ndarray
    s_out: np.ndarray
    is_in: np.ndarray
    is_out: np.ndarray
    n_folds: int = 4
    candidates: np.ndarray | None = None
    loss_in: np.ndarray | None = None
    candidate_labels: np.ndarray | None = None
    loss_test: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    loss_cv_folds: int = 5
    seed: int = 0
    kept: np.ndarray | None = None
    kept_phi: np.ndarray | None = None
    kept_member: np.ndarray | None = None
    lm_in: Mapping[str, np.ndarray] = field(default_factory=dict)
    lm_out: Mapping[str, np.ndarray] = field(default_factory=dict)
    z_in: np.ndarray | None = None  # (n_z, N, V) phi of population examples (the test split) on the method's models
    z_out: np.ndarray | None = None  # (n_z, N, V) the same on the retrains
    rmia_a: float = 0.3  # offline U-RMIA's a: p(x) ~ (1 + a) / 2 p_OUT(x) + (1 - a) / 2
    shadows: int | None = None  # fit every attacker on this many shadow models (None: all the other folds')
    shadow_seed: int = 0

    @classmethod
    def of(cls, s_in: np.ndarray, s_out: np.ndarray, is_in: np.ndarray, is_out: np.ndarray, n_folds: int = 4):
        """Evidence with only the candidates' phi and trials (what the Gaussian attacks read)."""
        return cls(s_in, s_out, is_in, is_out, n_folds)


@dataclass
class ScoreCube:
    """phi and loss of every model of one (stage, method): arrays (N, V, n_examples)."""

    phi: np.ndarray
    loss: np.ndarray


def _getter(table: pd.DataFrame | pa.Table):
    return (lambda c: table[c]) if isinstance(table, pa.Table) else (lambda c: table[c].to_numpy())


def cubes(
    scores: pd.DataFrame | pa.Table, n_models: int, views: Sequence[str], n_examples: int
) -> dict[str, ScoreCube]:
    """Split the long score table into a cube per method (``none`` = originals, ``retrain``)."""
    get = _getter(scores)
    method, names = codes(get("method"))
    view, _ = codes(get("view"), views)
    model = np.asarray(get("model_id"))
    example = np.asarray(get("example_id"))
    phi_all, loss_all = np.asarray(get("phi")), np.asarray(get("loss"))
    out = {}
    for k, name in enumerate(names):
        rows = np.flatnonzero(method == k)
        shape = (n_models, len(views), n_examples)
        phi, loss = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
        ix = (model[rows], view[rows], example[rows])
        phi[ix], loss[ix] = phi_all[rows], loss_all[rows]
        out[name] = ScoreCube(phi, loss)
    return out


def lm_cubes(lm_stats: pd.DataFrame | pa.Table, n_models: int, n_examples: int) -> dict[str, dict[str, np.ndarray]]:
    """The LM statistics (``LM_STATISTICS``) of every model of each method: method -> statistic ->
    (N, n_examples) float32, nan where no row."""
    get = _getter(lm_stats)
    method, names = codes(get("method"))
    model, example = np.asarray(get("model_id")), np.asarray(get("example_id"))
    out: dict[str, dict[str, np.ndarray]] = {}
    for k, name in enumerate(names):
        rows = np.flatnonzero(method == k)
        out[name] = {}
        for stat in LM_STATISTICS:
            cube = np.full((n_models, n_examples), np.nan, np.float32)
            cube[model[rows], example[rows]] = np.asarray(get(stat))[rows]
            out[name][stat] = cube
    return out
