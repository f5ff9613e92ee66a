"""Shared fixtures of the unit tests.

BLAS/OpenMP thread pools are limited to one thread: the attack tests fit many tiny logistic
regressions, and on a 2-core machine a second BLAS thread makes each ~25x slower (spin-waiting),
which would take the suite well past a minute. torch runs on one thread too, for the same reason
(the models here are tiny) and so that CPU results do not depend on the host's core count.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from threadpoolctl import threadpool_limits

threadpool_limits(1)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "config.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="session")
def schema() -> dict:
    from umia.config import load_schema

    return load_schema(SCHEMA)


@pytest.fixture
def raw_config() -> dict:
    """The repository's config/config.yaml as a fresh dict (tests may mutate it)."""
    with open(CONFIG) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """scikit-learn's digits (bundled: no download) prepared with test fraction 0.25: a pool of
    1,347 8x8 grey images and 450 test images."""
    from umia.tasks.image.data import prepare

    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    prepare({"name": "digits", "test_fraction": 0.25}, 0, str(path))
    return path


# A tiny image experiment on the digits: two MLPs of width 32 (shard 0 of size 2), 40 candidates.
DIGITS_JOB = {
    "seed": 0,
    "shard": 0,
    "shard_size": 2,
    "config_hash": "digits-h",
    "device": "cpu",
    "task_args": {"network": "mlp", "width": 32, "views": ["identity", "mirror"]},
}
DIGITS_RECIPE = {"epochs": 8, "batch_size": 64, "lr": 0.05, "warmup": 0.1}


@pytest.fixture(scope="session")
def digits_originals(tmp_path_factory, digits):
    """The originals of DIGITS_JOB trained by the shard job (umia.stages.shards.train_shard), with their
    scores and checkpoint: a dict of the job's inputs, outputs (paths as str) and ``job``."""
    import numpy as np
    import pandas as pd

    from umia import io
    from umia.stages.shards import train_shard

    root = tmp_path_factory.mktemp("digits-job")
    cand = root / "candidates.parquet"
    ids = np.arange(0, 80, 2)  # 40 candidates: about 20 in each model's half
    frame = pd.DataFrame({"example_id": ids, "label": np.zeros(len(ids), np.int16)})
    io.write_table(frame, cand, io.CANDIDATES, DIGITS_JOB["config_hash"])
    outputs = {"scores": str(root / "original.parquet"), "ckpt": str(root / "original.pt")}
    train_shard(
        task="image",
        data=str(digits),
        candidates=str(cand),
        outputs=outputs,
        stage="original",
        recipe=DIGITS_RECIPE,
        **DIGITS_JOB,
    )
    return {"root": root, "data": str(digits), "candidates": str(cand), "job": DIGITS_JOB, **outputs}
