"""Tasks: what a shard job needs of images or text, behind one interface.

A task holds a job's data on its device (the pool and the test split) and knows how to build,
train and score its models and the loss, optimiser and augmentation the unlearning methods use
(umia.methods.Context). ``build(name, ...)`` makes one; ``umia.stages.shards`` drives it. Each
task owns its code: ``umia.tasks.image`` (data, networks, training recipe) and
``umia.tasks.text`` (corpus, language models, adapters). A task's data side (``data_side``:
prepare, pool labels, the candidates' examples) imports no torch; the registry names where each
task's code lives (``umia.registry.TASK_CODE``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from umia import registry

if TYPE_CHECKING:
    import torch

    from umia.tasks.optim import Optimiser


@runtime_checkable
class Task(Protocol):
    """The interface of a task, as ``ImageTask`` and ``TextTask`` implement it (on ``TaskBase``).

    ``labels`` is (n_pool + n_test,) int64; a batch is the task's data tuple (images: (x, y);
    text: (ids, mask)); score arrays are (V, n_pool + n_test) over the task's ``views``.
    """

    name: str
    device: torch.device
    autocast: AbstractContextManager
    n_classes: int
    n_pool: int
    n_test: int
    labels: np.ndarray
    views: tuple[str, ...]

    def masks(self, seed: int, model_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(D_i, F_i) boolean masks over the pool, on the device."""

    def pool(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool examples where ``keep`` is True, as the task's data tuple."""

    def train(self, keep: dict[int, torch.Tensor], recipe: Mapping, seed: int) -> Iterator:
        """For {model_id: keep mask}, yields (model_id, model, seconds)."""

    def load_model(self, state: dict) -> torch.nn.Module:
        """A model with a checkpoint's state dict."""

    def state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps of a model (its state dict; for an adapter, the adapter's)."""

    def loss(self, model: torch.nn.Module, batch: Any, settings: Mapping, reduction: str = "mean") -> torch.Tensor:
        """What methods differentiate: a scalar, or (B,) with ``reduction="none"``."""

    def logits(self, model: torch.nn.Module, batch: Any) -> torch.Tensor: ...

    def augment(self, batch: Any, settings: Mapping, gen: torch.Generator) -> Any: ...

    def optimiser(self, model: torch.nn.Module, lr: float, steps: int, weight_decay: float | None = None) -> Optimiser:
        """The task's optimiser for ``steps`` steps (steps known: probing needs no patch)."""

    def score(self, model: torch.nn.Module) -> dict[str, np.ndarray]:
        """{"phi", "loss", "correct"}: (V, n_pool + n_test) arrays, plus the task's own."""

    def phi(self, model: torch.nn.Module, data: Any) -> torch.Tensor:
        """(V, n) phi of a few examples, eval mode."""

    def tables(self, scored: Mapping[str, np.ndarray], model_id: int, stage: str, method: str) -> dict:
        """{output name: DataFrame}: "scores" (io.SCORES), and the task's own (text: "lm_stats")."""

    def describe(self, model: torch.nn.Module, scored: Mapping[str, np.ndarray], keep: torch.Tensor) -> str:
        """A log line's worth of utility (test accuracy, perplexity)."""

    def generator(self, seed: int) -> torch.Generator: ...


class TaskData(Protocol):
    """A task's data side (no torch): what the light stages ask of it."""

    def prepare(self, dataset: Mapping, seed: int, out: str) -> Any:
        """Read the dataset and write its prepared file atomically."""

    def pool_labels(self, path: str) -> np.ndarray:
        """Class labels of the pool P, (n_pool,) int64, from the prepared file."""

    def examples(self, path: str, ids: np.ndarray, dataset: str) -> pd.DataFrame:
        """The examples ``ids`` of the pool as io.EXAMPLES rows (pixels or text, class names)."""


def data_side(task: str) -> TaskData:
    """The data side of ``task`` (a module with ``TaskData``'s functions)."""
    if task not in registry.TASK_CODE:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(registry.TASK_CODE)}")
    return registry.load(registry.TASK_CODE[task].data)


def build(task: str, **kwargs) -> Task:
    """The task named ``task`` ("image" or "text") for one job; ``kwargs`` are its constructor's."""
    if task not in registry.TASK_CODE:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(registry.TASK_CODE)}")
    return registry.load(registry.TASK_CODE[task].task)(**kwargs)
