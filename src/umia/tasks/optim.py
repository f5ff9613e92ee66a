"""Optimisers for both tasks: one learning-rate schedule, SGD (images) and AdamW (language models),
the step every training and unlearning loop takes, and seeded batch indices.

``Optimiser.step(loss)`` is the whole step: zero the gradients, backpropagate, optionally mask
and clip them, step the optimiser and its schedule. It syncs with the host nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn


def schedule(
    total: int, warmup: float, start: float = 0.0, end: float = 0.0, decay: str = "linear"
) -> Callable[[int], float]:
    """Learning-rate factor of step ``step``: a linear rise over ``warmup`` of the steps (from
    ``start``; none when warmup is 0), then a linear or cosine decay to ``end`` at ``total``."""
    rise = max(1, round(warmup * total)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < rise:
            return start + (1 - start) * (step + 1) / rise
        frac = min(1.0, max(0.0, (step - rise) / max(1, total - rise)))
        left = 0.5 * (1 + math.cos(math.pi * frac)) if decay == "cosine" else 1.0 - frac
        return end + (1 - end) * left

    return factor


class Optimiser:
    """A torch optimiser with its schedule (``.torch``, ``.scheduler``) and the step of every loop.

    ``clip``: the gradient-norm clip (0: off); ``mask``: parameter name -> 0/1 tensor, gradients
    are multiplied by it before the step (only the masked weights change).
    """

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, sched, clip: float = 0.0):
        self.model, self.torch, self.scheduler, self.clip = model, opt, sched, clip
        self.mask: Mapping[str, torch.Tensor] | None = None

    def step(self, loss: torch.Tensor) -> None:
        self.torch.zero_grad(set_to_none=True)
        loss.backward()
        if self.mask is not None:
            for name, p in self.model.named_parameters():
                if p.grad is not None and name in self.mask:
                    p.grad.mul_(self.mask[name])
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)  # no host sync
        self.torch.step()
        self.scheduler.step()


def _trainable(model: nn.Module, params: Iterable[nn.Parameter] | None) -> list[nn.Parameter]:
    return [p for p in (model.parameters() if params is None else params) if p.requires_grad]


def sgd(
    model: nn.Module,
    lr: float,
    total_steps: int,
    *,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    warmup: float = 0.0,
    lr_start: float = 0.0,
    lr_end: float = 0.0,
    bn_bias_lr_scale: float = 1.0,
    fused: bool = False,
    clip: float = 0.0,
) -> Optimiser:
    """SGD with Nesterov momentum and ``schedule``. With ``bn_bias_lr_scale`` != 1 the BatchNorm
    biases get that multiple of the learning rate (and their weight decay per step stays the same)."""
    params = _trainable(model, None)
    groups: list[dict] = [{"params": params}]
    if bn_bias_lr_scale != 1:
        norm = [m.bias for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.affine]
        norm_ids = {id(p) for p in norm if p.requires_grad}
        groups = [
            {"params": [p for p in params if id(p) not in norm_ids]},
            {
                "params": [p for p in params if id(p) in norm_ids],
                "lr": lr * bn_bias_lr_scale,
                "weight_decay": weight_decay / bn_bias_lr_scale,
            },
        ]
        groups = [g for g in groups if g["params"]]
    opt = torch.optim.SGD(
        groups, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay, fused=fused or None
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(total_steps, warmup, lr_start, lr_end))
    return Optimiser(model, opt, sched, clip)


def adamw(
    model: nn.Module,
    lr: float,
    total_steps: int,
    *,
    weight_decay: float = 0.0,
    warmup: float = 0.0,
    decay: str = "linear",
    betas: tuple[float, float] = (0.9, 0.999),
    clip: float = 1.0,
) -> Optimiser:
    """AdamW with weight decay on matrices only (not biases or norms) and ``schedule``."""
    params = _trainable(model, None)
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(total_steps, warmup, decay=decay))
    return Optimiser(model, opt, sched, clip)


def batch_indices(n: int, batch_size: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of ``steps`` batches of ``batch_size`` examples out of n: seeded passes without
    replacement, joined end to end (so every batch has one shape). (steps, batch_size) int64 on
    the generator's device."""
    if n < 1:
        raise ValueError("no examples to draw batches from")
    passes = math.ceil(steps * batch_size / n)
    perm = torch.cat([torch.randperm(n, generator=gen, device=gen.device) for _ in range(passes)])
    return perm[: steps * batch_size].view(steps, batch_size)
