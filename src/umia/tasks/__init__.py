"""Tasks: what a shard job needs of images or text, behind one interface.

A task holds a job's data on its device (the pool and the test split) and knows how to build,
train and score its models and the loss, optimiser and augmentation the unlearning methods use
(umia.methods.Context). ``build(name, ...)`` makes one; ``umia.jobs`` drives it.

The interface (duck-typed, as ``ImageTask`` and ``TextTask`` implement it):

- ``device``, ``autocast``, ``n_classes``, ``n_pool``, ``n_test``, ``labels`` ((n_pool + n_test,))
- ``masks(seed, model_id)``: (D_i, F_i) boolean masks over the pool, on the device
- ``pool(keep)``: the pool examples where ``keep`` is True, as the task's data tuple
- ``train(keep, recipe, seed)``: for {model_id: keep mask}, yields (model_id, model, seconds)
- ``load_model(state)``: a model with a checkpoint's state dict
- ``state(model)``: what a checkpoint keeps of a model (its state dict; for an adapter, the adapter's)
- ``loss(model, batch, settings, reduction)``, ``logits(model, batch)``, ``augment(batch, settings, gen)``
- ``optimiser(model, lr, steps, weight_decay)``: an ``umia.optim.Optimiser``
- ``score(model)``: {"phi", "loss", "correct"}: (V, n_pool + n_test) arrays, plus the task's own
- ``phi(model, data)``: (V, n) tensor, eval mode
- ``tables(scored, model_id, stage, method)``: {output name: DataFrame} ("scores", text: "lm_stats")
- ``describe(model, scored, keep)``: a log line's worth of utility (test accuracy, perplexity)
"""

from __future__ import annotations

import numpy as np
import torch

from umia import io, plan


class Bench:
    """The part of a task that is the same for both: pool size, candidates, the masks."""

    device: torch.device
    n_pool: int
    n_test: int
    labels: np.ndarray  # (n_pool + n_test,) int64
    candidate_ids: np.ndarray

    def _read_candidates(self, candidates: str | None, config_hash: str | None) -> None:
        self.candidate_ids = np.zeros(0, np.int64)
        if candidates is not None:
            self.candidate_ids = io.read_table(candidates, io.CANDIDATES, config_hash).column("example_id").to_numpy()

    def masks(self, seed: int, model_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(D_i, F_i) as boolean masks over the pool, on the device."""
        train = plan.train_mask(seed, model_id, self.n_pool)
        forget = plan.forget_mask(train, self.candidate_ids)
        return torch.from_numpy(train).to(self.device), torch.from_numpy(forget).to(self.device)

    def state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps of ``model``: its state dict, on the CPU."""
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)


def build(task: str, **kwargs):
    """The task named ``task`` ("image" or "text") for one job; ``kwargs`` are its constructor's."""
    if task == "image":
        from umia.tasks.image import ImageTask

        return ImageTask(**kwargs)
    if task == "text":
        from umia.tasks.text import TextTask

        return TextTask(**kwargs)
    raise ValueError(f"unknown task {task!r}; known: image, text")
