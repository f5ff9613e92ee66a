"""Unlearning methods: the contract every method has, built-in or plug-in, and the probe that
records a run's trajectory.

A method is one function ``method(ctx, model, forget, retain, s, gen) -> None`` that changes
``model`` in place:

- ``ctx`` (``Context``): the task's loss, optimisers, batches, augmentation, device and autocast;
- ``model``: the original O_i (an ``nn.Module`` on ``ctx.device``, in train mode);
- ``forget``, ``retain``: F_i and D_i minus F_i as tuples of tensors on the device, whose first
  dimension is the example: images ``(x (n, C, H, W) float, y (n,) int64)``, text
  ``(ids (n, T) int64, mask (n, T) bool)``; ``ctx.size(data)`` is n, ``ctx.take(data, idx)`` a subset;
- ``s``: the method's settings (its declared or schema defaults, the config's overrides, and the
  training recipe's ``label_smoothing``, ``flip`` and ``translate``, which ``ctx`` applies);
- ``gen``: a ``torch.Generator`` on the device, seeded from the experiment seed, the method and
  the model id: draw every random number from it, so a rerun gives the same model.

Steps are counted by an optimiser step hook, so any ``torch.optim.Optimizer`` that updates the
model is probed for the rates of unlearning; ``ctx.optimiser(...)`` declares its planned step
count itself, and a method that builds its own optimiser calls ``ctx.plan(total_steps)`` once,
for the whole run, before its first step. A method that takes no step (or declares none) gets
only the trajectory's two ends.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from umia import plugins, registry
from umia.registry import MethodSpec
from umia.tasks import optim

log = logging.getLogger(__name__)

Data = tuple[torch.Tensor, ...]
Method = Callable[..., None]


@dataclass
class Probe:
    """Counts optimiser steps during one method run and calls ``callback(point, step, planned)``
    once the steps reach each fraction point / n_points (point = 1 .. n_points - 1) of the planned
    steps. ``planned`` is what the run declared (``Context.optimiser`` and ``Context.plan``)."""

    n_points: int
    callback: Callable[[int, int, int], None]
    steps: int = 0
    planned: int = 0
    next_point: int = 1

    def plan(self, steps: int) -> None:
        self.planned += int(steps)

    def _after_step(self, *_: Any) -> None:
        self.steps += 1
        while self.planned and self.next_point < self.n_points:
            if self.steps < max(1, round(self.next_point * self.planned / self.n_points)):
                break
            self.callback(self.next_point, self.steps, self.planned)
            self.next_point += 1

    @contextlib.contextmanager
    def active(self, model: nn.Module) -> Iterator[Probe]:
        """Count the steps of every torch optimiser that updates ``model`` while the block runs
        (one that trains something else, a teacher or a probe, is not counted)."""
        mine = {id(p) for p in model.parameters()}
        seen: dict[int, bool] = {}

        def hook(opt, args, kwargs) -> None:
            if id(opt) not in seen:
                seen[id(opt)] = any(id(p) in mine for g in opt.param_groups for p in g["params"])
            if seen[id(opt)]:
                self._after_step()

        handle = register_optimizer_step_post_hook(hook)
        try:
            yield self
        finally:
            handle.remove()


@dataclass
class Context:
    """What a method gets from its task (umia.tasks): see the module's docstring.

    ``loss(model, batch)`` is the task's training loss of a batch (images: cross-entropy with the
    recipe's label smoothing; text: the causal LM loss over real tokens), a scalar;
    ``loss(model, batch, reduction="none")`` one loss per example (text: the sequence's summed
    negative log-likelihood). ``logits(model, batch)`` the model's outputs under autocast.
    """

    task: Any  # umia.tasks.Task
    settings: Mapping[str, Any] = field(default_factory=dict)
    probe: Probe | None = None

    @property
    def device(self) -> torch.device:
        return self.task.device

    @property
    def autocast(self):
        return self.task.autocast

    @property
    def n_classes(self) -> int:
        return self.task.n_classes

    def size(self, data: Data) -> int:
        return len(data[0])

    def take(self, data: Data, idx: torch.Tensor) -> Data:
        return tuple(t[idx] for t in data)

    def cat(self, *parts: Data) -> Data:
        return tuple(torch.cat(ts) for ts in zip(*parts, strict=True))

    def augment(self, batch: Data, gen: torch.Generator) -> Data:
        """The training recipe's augmentation of one batch (images: flips, translations)."""
        return self.task.augment(batch, self.settings, gen)

    def loss(self, model: nn.Module, batch: Data, reduction: str = "mean", **settings: Any) -> torch.Tensor:
        """The task's loss; ``settings`` override the recipe's (e.g. ``label_smoothing=0.0``)."""
        return self.task.loss(model, batch, {**self.settings, **settings}, reduction)

    def logits(self, model: nn.Module, batch: Data) -> torch.Tensor:
        return self.task.logits(model, batch)

    def phi(self, model: nn.Module, data: Data) -> torch.Tensor:
        """The attack statistic phi of each example under each view, (V, n), in eval mode."""
        return self.task.phi(model, data)

    def plan(self, steps: int) -> None:
        """Declare the optimiser steps the run will take (for the trajectory's fraction points)."""
        if self.probe is not None:
            self.probe.plan(steps)

    def optimiser(self, model: nn.Module, lr: float, steps: int, weight_decay: float | None = None) -> optim.Optimiser:
        """The task's optimiser for ``steps`` steps at peak rate ``lr`` (images: SGD with Nesterov
        momentum 0.9, weight decay 5e-4 unless given; text: AdamW, weight decay 0 unless given,
        gradient norm clipped at 1), a linear decay to zero; its steps are declared to the probe."""
        self.plan(steps)
        return self.task.optimiser(model, lr, steps, weight_decay)

    def batches(self, data: Data, batch_size: int, steps: int, gen: torch.Generator) -> Iterator[Data]:
        """``steps`` augmented batches of ``batch_size`` examples: seeded passes over ``data``
        without replacement, joined end to end (every batch one shape)."""
        if self.size(data) == 0:
            return  # an empty forget set (a model whose half holds no candidate) has no batches
        idx = optim.batch_indices(self.size(data), batch_size, steps, gen).to(data[0].device)
        for i in range(steps):
            yield self.augment(self.take(data, idx[i]), gen)

    def sample(self, data: Data, batch_size: int, gen: torch.Generator) -> Data:
        """One augmented batch drawn with replacement."""
        if self.size(data) == 0:
            raise ValueError("cannot draw a batch from no examples; check ctx.size(data) first")
        idx = torch.randint(0, self.size(data), (batch_size,), generator=gen, device=data[0].device)
        return self.augment(self.take(data, idx), gen)


def steps_of(s: Mapping, n: int) -> tuple[int, int]:
    """Batch size and number of steps of ``s["epochs"]`` passes over n examples."""
    bs = max(1, min(s["batch_size"], n))
    return bs, max(1, round(s["epochs"] * -(-n // bs)))


def resolve(name: str, settings: Mapping[str, Any]) -> tuple[Method, MethodSpec, dict[str, Any]]:
    """The function, its spec and its full settings of a built-in method or a plug-in
    (``file.py:function`` or ``module:function``: the declared defaults under ``settings``)."""
    if plugins.is_plugin(name):
        fn, declared = plugins.load_method(name)
        spec = MethodSpec(name, declared.tasks, declared.needs_retrain_scores)
        return fn, spec, {**declared.settings, **settings}
    spec = registry.METHODS[name]
    module, _, attr = spec.function.partition(":")
    return getattr(importlib.import_module(module), attr), spec, dict(settings)
