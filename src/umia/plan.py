"""The plan: balanced membership masks, forget candidates and forget sets.

Everything is a pure function of the experiment seed and the model id, so a job can rebuild the
mask of its own models without reading a shared plan file, and raising N never changes a mask
that already exists.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def derive_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed derived from the experiment seed and any tags (strings or ints)."""
    key = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
    return int(np.random.SeedSequence([seed, *key]).generate_state(2, np.uint64)[0] >> 1)


def train_mask(seed: int, model_id: int, n_pool: int) -> np.ndarray:
    """D_i as a boolean mask over the pool, shape (n_pool,).

    Models 2k and 2k+1 split the pool into two complementary seeded halves, so every example is
    in exactly N/2 training sets for every even N.
    """
    rng = np.random.default_rng(derive_seed(seed, "mask", model_id // 2))
    first = np.zeros(n_pool, dtype=bool)
    first[rng.permutation(n_pool)[: n_pool // 2]] = True
    return first if model_id % 2 == 0 else ~first


def train_masks(seed: int, model_ids: Sequence[int], n_pool: int) -> np.ndarray:
    """Stacked masks, shape (len(model_ids), n_pool)."""
    return np.stack([train_mask(seed, int(m), n_pool) for m in model_ids])


def candidates(candidates: Mapping, seed: int, pool_labels: np.ndarray) -> np.ndarray:
    """The forget candidates C: sorted pool indices."""
    if candidates["mode"] == "class":
        return np.flatnonzero(pool_labels == candidates["class"])
    rng = np.random.default_rng(derive_seed(seed, "candidates"))
    return np.sort(rng.choice(len(pool_labels), size=candidates["size"], replace=False))


def forget_mask(train: np.ndarray, candidate_ids: np.ndarray) -> np.ndarray:
    """F_i = D_i ∩ C, as a mask of the same shape as ``train``."""
    in_c = np.zeros(train.shape[-1], dtype=bool)
    in_c[candidate_ids] = True
    return train & in_c


def membership(seed: int, n_models: int, n_pool: int, candidate_ids: np.ndarray) -> pd.DataFrame:
    """One row per (model, pool example): model_id, example_id, in_train, in_forget."""
    train = train_masks(seed, range(n_models), n_pool)  # (N, n_pool)
    forget = forget_mask(train, candidate_ids)
    return pd.DataFrame(
        {
            "model_id": np.repeat(np.arange(n_models, dtype=np.int32), n_pool),
            "example_id": np.tile(np.arange(n_pool, dtype=np.int64), n_models),
            "in_train": train.ravel(),
            "in_forget": forget.ravel(),
        }
    )


def shard_models(shard: int, shard_size: int) -> list[int]:
    return list(range(shard * shard_size, (shard + 1) * shard_size))
