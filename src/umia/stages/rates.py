"""The rates stage: how fast each forget example's phi falls to its retrain mean during unlearning,
from the trajectory table and the retrains' scores."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from umia import io

log = logging.getLogger(__name__)


def retrain_moments(scores: pa.Table, example_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the retrain models of the view-mean phi of each example
    in ``example_ids``: two (len(example_ids),) arrays (the retrain distribution the rates are
    measured against; every candidate is OUT of every retrain model)."""
    t = scores.filter(pc.equal(scores["method"], "retrain"))
    df = pd.DataFrame({"model_id": t["model_id"].to_numpy(), "example_id": t["example_id"].to_numpy()})
    df["phi"] = t["phi"].to_numpy()
    per_model = df[df["example_id"].isin(example_ids)].groupby(["example_id", "model_id"])["phi"].mean()
    g = per_model.groupby(level="example_id")
    return g.mean().reindex(example_ids).to_numpy(), g.std(ddof=1).reindex(example_ids).to_numpy()


def rate_tables(trajectory: pd.DataFrame, mean: pd.Series, sd: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rates of unlearning, from the forget examples' phi during unlearning.

    ``trajectory``: the io.TRAJECTORY rows; ``mean``/``sd``: the retrain distribution of each
    example's view-mean phi, indexed by example_id. Returns

    - rates: one row per (method, example, point): the median over the models that forgot the
      example of its view-mean phi, and of z = (phi - retrain mean) / retrain sd;
    - reach: one row per (method, example): the share of the run (and optimiser steps) after which
      the example's phi first fell to its retrain mean, the median over those models (inf where
      most never got there), and the share of models in which it got there at all.
    """
    t = trajectory.groupby(["method", "model_id", "example_id", "point"], observed=True, sort=True).agg(
        phi=("phi", "mean"), fraction=("fraction", "first"), step=("step", "first")
    )
    t = t.reset_index()
    t["retrain_mean"] = mean.reindex(t["example_id"]).to_numpy()
    t["retrain_sd"] = sd.reindex(t["example_id"]).to_numpy()
    t["z"] = (t["phi"] - t["retrain_mean"]) / t["retrain_sd"]
    rates = (
        t.groupby(["method", "example_id", "point"], observed=True)
        .agg(
            fraction=("fraction", "first"),
            phi=("phi", "median"),
            z=("z", "median"),
            retrain_mean=("retrain_mean", "first"),
            retrain_sd=("retrain_sd", "first"),
            n_models=("model_id", "size"),
        )
        .reset_index()
    )
    t["reached"] = t["phi"] <= t["retrain_mean"]
    first = t[t["reached"]].groupby(["method", "model_id", "example_id"], observed=True)[["fraction", "step"]].min()
    models = t.groupby(["method", "model_id", "example_id"], observed=True).size().rename("n").reset_index()
    m = models.merge(first.reset_index(), on=["method", "model_id", "example_id"], how="left")
    m[["fraction", "step"]] = m[["fraction", "step"]].astype(float).fillna(np.inf)
    reach = (
        m.groupby(["method", "example_id"], observed=True)
        .agg(
            reach_fraction=("fraction", "median"),
            reach_step=("step", "median"),
            share_reached=("fraction", lambda f: float(np.isfinite(f).mean())),
            n_models=("n", "size"),
        )
        .reset_index()
    )
    return rates, reach


def rate_files(*, trajectory: str, scores: str, out_rates: str, out_reach: str, config_hash: str) -> None:
    traj = io.read_table(trajectory, io.TRAJECTORY, config_hash).to_pandas()
    ids = np.unique(traj["example_id"].to_numpy())
    s = io.read_table(scores, io.SCORES, config_hash, columns=["model_id", "method", "example_id", "phi"])
    mean, sd = retrain_moments(s, ids)
    rates, reach = rate_tables(traj, pd.Series(mean, index=ids), pd.Series(sd, index=ids))
    for method, r in reach.groupby("method", observed=True):
        f = r["reach_fraction"]
        log.info(
            "%s: %.0f%% of forget examples reach their retrain mean (median over models); median share of "
            "the run needed %.2f",
            method,
            100 * np.isfinite(f).mean(),
            float(np.median(f)) if len(f) else float("nan"),
        )
    io.write_table(rates, out_rates, io.RATES, config_hash)
    io.write_table(reach, out_reach, io.REACH, config_hash)
