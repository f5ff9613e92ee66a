"""The light stages before the models: the prepared data, the forget candidates, the membership
plan and the candidates' examples, for either task through its data side (umia.tasks.data_side)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from umia import io, plan, registry, tasks

log = logging.getLogger(__name__)


def prepare_data(dataset: Mapping, seed: int, out: str) -> None:
    """The prepare job of either task: images into the prepared .npz (umia.tasks.image.data),
    reviews into the corpus Parquet (umia.tasks.text.corpus)."""
    tasks.data_side(registry.task_of(dataset["name"])).prepare(dataset, seed, out)


def pool_labels(data: str, task: str) -> np.ndarray:
    """Class labels of the pool P, (n_pool,) int64, from the prepared data of either task."""
    return tasks.data_side(task).pool_labels(data)


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
    examples = tasks.data_side(registry.task_of(dataset)).examples(data, ids, dataset)
    io.write_table(examples, out, io.EXAMPLES, config_hash)
