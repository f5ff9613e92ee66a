"""Scores: LiRA's logit-scaled confidence phi, the loss and correctness, per model x view x example."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from umia.train import Workbench

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


@torch.no_grad()
def score_model(
    bench: Workbench, model: torch.nn.Module, views: Sequence[str], batch: int = 4096
) -> dict[str, np.ndarray]:
    """Score a model on the pool and the test split. Returns arrays of shape (V, n_pool + n_test)."""
    model.eval()
    x_all = (bench.x_pool, bench.x_test)
    y_all = torch.cat([bench.y_pool, bench.y_test])
    out = {k: [] for k in ("phi", "loss", "correct")}
    for v in views:
        logits = []
        for x in x_all:
            for i in range(0, len(x), batch):
                with bench.autocast:
                    logits.append(model(view(x[i : i + batch], v)).float())
        phi, loss, correct = phi_loss(torch.cat(logits), y_all)
        out["phi"].append(phi)
        out["loss"].append(loss)
        out["correct"].append(correct)
    return {k: torch.stack(v).cpu().numpy() for k, v in out.items()}


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


@torch.no_grad()
def phi_of(
    bench: Workbench, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, views: Sequence[str], batch: int = 4096
) -> torch.Tensor:
    """phi of a few examples under each view, on the device: (V, n). Leaves the model in the mode
    it was in (unlearning scores its forget set mid-run)."""
    was_training = model.training
    model.eval()
    out = []
    for v in views:
        logits = []
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            with bench.autocast:
                logits.append(model(view(padded(xb), v))[: len(xb)].float())
        out.append(phi_loss(torch.cat(logits) if logits else x.new_zeros(0, bench.n_classes), y)[0])
    model.train(was_training)
    return torch.stack(out)


def scores_frame(
    s: dict[str, np.ndarray], bench: Workbench, model_id: int, stage: str, method: str, views: Sequence[str]
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
