"""Scores of both tasks: LiRA's logit-scaled confidence phi of a classifier, the views, and the
score table's long format (one row per model x view x example)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

VIEWS = ("identity", "mirror")


def phi_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """phi = log p_y - log sum_{j != y} p_j, the cross-entropy loss and correctness, from logits.

    Computed from logits without forming p, so phi stays finite and exact as p_y -> 1:
    phi = z_y - logsumexp_{j != y} z_j. logits: (B, K); y: (B,). Returns three (B,) tensors.
    """
    z = logits.float()
    z_y = z.gather(1, y[:, None]).squeeze(1)  # (B,)
    others = z.scatter(1, y[:, None], float("-inf"))  # (B, K) with the true class masked
    phi = z_y - torch.logsumexp(others, dim=1)
    loss = torch.logsumexp(z, dim=1) - z_y
    correct = z.argmax(1) == y
    return phi, loss, correct


def view(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "identity":
        return x
    if name == "mirror":
        return x.flip(-1)
    raise ValueError(f"unknown view {name!r}; known: {', '.join(VIEWS)}")


def padded(x: torch.Tensor, multiple: int = 256) -> torch.Tensor:
    """``x`` with its first rows repeated at the end up to a multiple of ``multiple`` rows (at
    most ``multiple`` - 1 more). Forget sets differ in size from model to model; padded to a few
    shapes, their batches reuse cuDNN's autotuned plans instead of tuning anew for every model.
    Only for eval-mode passes (no batch statistics) whose extra rows are dropped or weighted 0."""
    short = -len(x) % multiple
    if short == 0 or len(x) == 0:
        return x
    reps = -(-short // len(x))
    return torch.cat([x, x.repeat(reps, *([1] * (x.ndim - 1)))[:short]])


def scores_frame(
    s: dict[str, np.ndarray], bench, model_id: int, stage: str, method: str, views: Sequence[str]
) -> pd.DataFrame:
    """Long format: one row per (view, example), in the io.SCORES columns."""
    n_v, n = s["phi"].shape
    split = np.array(["pool"] * bench.n_pool + ["test"] * bench.n_test)
    return pd.DataFrame(
        {
            "model_id": np.full(n_v * n, model_id, dtype=np.int32),
            "stage": stage,
            "method": method,
            "example_id": np.tile(np.arange(n, dtype=np.int64), n_v),
            "split": np.tile(split, n_v),
            "label": np.tile(bench.labels.astype(np.int16), n_v),
            "view": np.repeat(np.asarray(views), n),
            "phi": s["phi"].ravel().astype(np.float32),
            "loss": s["loss"].ravel().astype(np.float32),
            "correct": s["correct"].ravel(),
        }
    )
