"""The light stages between the model jobs: plan tables, gathering scores, attack tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pandas as pd
import pyarrow.parquet as pq

from umia import attacks, io, plan
from umia.data import load_prepared

log = logging.getLogger(__name__)


def write_candidates(*, data: str, out: str, candidates: Mapping, seed: int, config_hash: str) -> None:
    a = load_prepared(data)
    ids = plan.candidates(candidates, seed, a.y_train)
    log.info("%d forget candidates (%s mode)", len(ids), candidates["mode"])
    io.write_table(pd.DataFrame({"example_id": ids, "label": a.y_train[ids]}), out, io.CANDIDATES, config_hash)


def write_membership(*, data: str, candidates: str, out: str, n_models: int, seed: int, config_hash: str) -> None:
    n_pool = len(load_prepared(data).y_train)
    cand = io.read_table(candidates, io.CANDIDATES, config_hash).column("example_id").to_numpy()
    df = plan.membership(seed, n_models, n_pool, cand)
    log.info("membership of %d models over %d pool examples", n_models, n_pool)
    io.write_table(df, out, io.MEMBERSHIP, config_hash)


def gather(*, parts: Sequence[str], out: str, config_hash: str) -> None:
    """Concatenate shard score files into one Parquet file, streaming one part at a time.

    Every part is checked against the schema and the config hash first: a part from another
    config stops the gather before anything is written.
    """
    for p in parts:
        meta = pq.read_schema(p).metadata or {}
        found = meta.get(io.HASH_KEY, b"").decode()
        if found != config_hash:
            raise io.TableError(
                f"{p}: written by another config (hash {found or 'none'}, this config {config_hash}); "
                "use a new experiment name, or move the old results away"
            )
    schema = io.SCORES.with_metadata({io.HASH_KEY: config_hash.encode()})
    rows = 0
    with io.atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for p in parts:
            table = io.read_table(p, io.SCORES, config_hash).replace_schema_metadata(schema.metadata)
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
    methods: Sequence[str],
    n_folds: int,
    loss_cv_folds: int,
    n_bootstrap: int,
    seed: int,
    config_hash: str,
) -> pd.DataFrame:
    s = io.read_table(scores, io.SCORES, config_hash, columns=attacks.SCORE_COLUMNS)
    m = io.read_table(membership, io.MEMBERSHIP, config_hash).to_pandas()
    summary, per_example, roc = attacks.run(
        s, m, methods, n_folds=n_folds, loss_cv_folds=loss_cv_folds, seed=seed, n_bootstrap=n_bootstrap
    )
    log.info("summary:\n%s", summary[["method", "attack", "accuracy", "auc", "tpr_at_1pct_fpr"]].to_string(index=False))
    io.write_table(per_example, out_per_example, io.PER_EXAMPLE, config_hash)
    io.write_table(roc, out_roc, io.ROC, config_hash)
    with io.atomic_path(out_summary) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    return summary
