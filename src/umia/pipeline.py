"""The light stages between the model jobs: plan tables, gathering scores, attack tables."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from umia import attacks, data, io, plan, provenance, registry, utility
from umia import corpus as text
from umia.data import load_prepared

log = logging.getLogger(__name__)


def prepare_data(dataset: Mapping, seed: int, out: str) -> None:
    """The prepare job of either task: images into the prepared .npz (umia.data), reviews into the
    corpus Parquet (umia.corpus)."""
    if registry.task_of(dataset["name"]) == "text":
        text.prepare(dataset, seed, out)
    else:
        data.prepare(dataset, seed, out)


def pool_labels(data: str, task: str) -> np.ndarray:
    """Class labels of the pool P, (n_pool,) int64, from the prepared data of either task."""
    if task == "text":
        return text.read_corpus(data).pool["label"].to_numpy(np.int64)
    return load_prepared(data).y_train


def write_candidates(
    *, data: str, out: str, candidates: Mapping, seed: int, config_hash: str, task: str = "image"
) -> None:
    y_pool = pool_labels(data, task)
    ids = plan.candidates(candidates, seed, y_pool)
    log.info("%d forget candidates (%s mode)", len(ids), candidates["mode"])
    io.write_table(pd.DataFrame({"example_id": ids, "label": y_pool[ids]}), out, io.CANDIDATES, config_hash)


def write_membership(
    *, data: str, candidates: str, out: str, n_models: int, seed: int, config_hash: str, task: str = "image"
) -> None:
    n_pool = len(pool_labels(data, task))
    cand = io.read_table(candidates, io.CANDIDATES, config_hash).column("example_id").to_numpy()
    df = plan.membership(seed, n_models, n_pool, cand)
    log.info("membership of %d models over %d pool examples", n_models, n_pool)
    io.write_table(df, out, io.MEMBERSHIP, config_hash)


def write_examples(*, data: str, candidates: str, out: str, dataset: str, config_hash: str) -> None:
    """The forget candidates' images (for text: their reviews, with no pixels and height, width
    and channels 0) and class names, so figures need no dataset file."""
    ids = io.read_table(candidates, io.CANDIDATES, config_hash).column("example_id").to_numpy()
    if registry.task_of(dataset) == "text":
        pool = text.read_corpus(data).pool
        y = pool["label"].to_numpy(np.int64)[ids]
        names = registry.DATASETS[dataset].class_names
        df = pd.DataFrame(
            {
                "example_id": ids,
                "label": y,
                "label_name": [names[k] for k in y],
                "height": 0,
                "width": 0,
                "channels": 0,
                "pixels": [b""] * len(ids),
                "text": pool["text"].to_numpy()[ids],
            }
        )
        io.write_table(df, out, io.EXAMPLES, config_hash)
        return
    a = load_prepared(data)
    x, y = a.x_train[ids], a.y_train[ids]  # (c, H, W, C) uint8
    names = a.class_names or tuple(str(i) for i in range(a.n_classes))
    _, h, w, c = x.shape
    df = pd.DataFrame(
        {
            "example_id": ids,
            "label": y,
            "label_name": [names[k] for k in y],
            "height": h,
            "width": w,
            "channels": c,
            "pixels": [img.tobytes() for img in x],
            "text": None,
        }
    )
    io.write_table(df, out, io.EXAMPLES, config_hash)


def _readable_schema(path: str) -> pa.Schema:
    """A shard file's schema; a file that does not read (cut short by a crash on a filesystem
    without atomic renames, say) is set aside as ``<name>.broken``, so the next run redoes its job,
    and the gather stops with one line saying so."""
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        aside = f"{path}.broken"
        os.replace(path, aside)
        raise io.TableError(
            f"{path}: not a readable Parquet file ({type(e).__name__}); set aside as {Path(aside).name}: "
            "run snakemake again and its job is redone"
        ) from e


def gather(*, parts: Sequence[str], out: str, config_hash: str, schema: pa.Schema = io.SCORES) -> None:
    """Concatenate shard files (scores, or trajectories) into one Parquet file, streaming one part
    at a time.

    Every part is checked against the schema and the config hash first: a part from another
    config stops the gather before anything is written.
    """
    stamps = []
    for p in parts:
        meta = _readable_schema(p).metadata or {}
        if io.PROVENANCE_KEY in meta:
            stamps.append(meta[io.PROVENANCE_KEY].decode())
        found = meta.get(io.HASH_KEY, b"").decode()
        if found != config_hash:
            raise io.TableError(
                f"{p}: written by another config (hash {found or 'none'}, this config {config_hash}); "
                "use a new experiment name, or move the old results away"
            )
    meta = {io.HASH_KEY: config_hash.encode()}
    if stamps:
        meta[io.PROVENANCE_KEY] = provenance.merge(stamps).encode()
    base, schema = schema, schema.with_metadata(meta)
    rows = 0
    with io.atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for p in parts:
            table = io.read_table(p, base, config_hash).replace_schema_metadata(schema.metadata)
            writer.write_table(table)
            rows += table.num_rows
    log.info("gathered %d rows from %d shard files", rows, len(parts))


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
) -> pd.DataFrame:
    """Every attack from the score table (and, for text, the LM statistics table: the population
    zlib-ratio and Min-K% attacks) into the summary, per-example and ROC tables, and the models'
    accuracies into the utility table (umia.utility) whose ratios make the challenge's final
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
