"""The image task's training recipe: its settings (``Recipe``), batched augmentation (flips and
translations, airbench's alternating flips), Lookahead, and the training loop of one shadow
model (SGD with a warm-up/linear-decay schedule and a faster rate for BatchNorm biases)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from umia.tasks import optim
from umia.tasks.image import networks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """One training (or unlearning) recipe. Learning rates are peak values of the schedule."""

    epochs: float = 40  # passes over the training set; fractions allowed
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    warmup: float = 0.1  # share of steps with a linear rise; then linear decay to zero
    flip: bool = False  # random horizontal flips
    translate: int = 0  # random translations of up to this many pixels
    width: int = 256  # network width (hidden units / base channels)
    alt_flip: bool = False  # with flip: flip a random half once, then all examples every other epoch
    lr_start: float = 0.0  # schedule's factor at step 0 (the rise goes from here to 1)
    lr_end: float = 0.0  # schedule's factor at the last step (the decay goes from 1 to here)
    bn_bias_lr_scale: float = 1.0  # BatchNorm biases: learning rate x this, same decay per step
    whiten_bias_epochs: float | None = None  # fastcnn: train the stem's bias this long; None = always
    lookahead: int = 0  # every this many steps pull the weights to a slow average (0 = off)

    @classmethod
    def from_mapping(cls, m: Mapping) -> Recipe:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in m.items() if k in names})


def augment(x: torch.Tensor, gen: torch.Generator, flip: bool, translate: int) -> torch.Tensor:
    """Random flips and translations of a whole batch (B, C, H, W) with tensor ops, no loop over
    examples. Translation pads by reflection and picks one of 2t+1 offsets per axis per image."""
    if flip:
        x = _random_flip(x, gen)
    if translate:
        x = _crop(F.pad(x, (translate,) * 4, mode="reflect"), translate, gen)
    return x


def _random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mask = torch.rand(len(x), 1, 1, 1, generator=gen, device=x.device) < 0.5
    return torch.where(mask, x.flip(-1), x)


def _crop(padded: torch.Tensor, t: int, gen: torch.Generator) -> torch.Tensor:
    """A random (H, W) window of each image of ``padded`` (B, C, H+2t, W+2t)."""
    b, (h, w) = len(padded), (padded.shape[-2] - 2 * t, padded.shape[-1] - 2 * t)
    dx = torch.randint(0, 2 * t + 1, (b, 1, 1, 1), generator=gen, device=padded.device)
    dy = torch.randint(0, 2 * t + 1, (b, 1, 1, 1), generator=gen, device=padded.device)
    cols = padded[..., :w]
    for s in range(1, 2 * t + 1):
        cols = torch.where(dx == s, padded[..., s : s + w], cols)  # (B, C, H+2t, W)
    x = cols[..., :h, :]
    for s in range(1, 2 * t + 1):
        x = torch.where(dy == s, cols[..., s : s + h, :], x)  # (B, C, H, W)
    return x


class EpochAugmenter:
    """The training set's augmented copy for each epoch: ``augment``'s independent flips, or with
    ``alternate`` airbench's scheme (a random half flipped once, then every image flipped on odd
    epochs, so each image alternates orientation); reflection padding is done once."""

    def __init__(self, x: torch.Tensor, gen: torch.Generator, flip: bool, translate: int, alternate: bool):
        self.gen, self.flip, self.t, self.alternate = gen, flip, translate, alternate and flip
        self.epoch = 0
        self.x = x
        if self.alternate:
            self.x = _random_flip(x, gen)
        if translate and not (flip and not self.alternate):
            self.x = F.pad(self.x, (translate,) * 4, mode="reflect")  # pad once, crop every epoch

    def next(self) -> torch.Tensor:
        epoch, self.epoch = self.epoch, self.epoch + 1
        if self.flip and not self.alternate:
            return augment(self.x, self.gen, True, self.t)  # flip then pad, as augment always did
        x = _crop(self.x, self.t, self.gen) if self.t else self.x
        return x.flip(-1) if self.alternate and epoch % 2 else x


class Lookahead:
    """Lookahead (Zhang et al. 2019) with airbench's ramp: after every ``every``-th step the slow
    copy moves towards the weights, slow += (1 - d) (w - slow) with d = decay^every (step/total)^3,
    and the weights are reset to it; ``finish`` leaves the weights at the slow copy. Covers every
    floating-point tensor of the state dict (BatchNorm running statistics too)."""

    def __init__(self, model: nn.Module, every: int, total: int, decay: float = 0.95):
        self.every, self.total, self.decay = every, total, decay
        self.fast = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.slow = [t.detach().clone() for t in self.fast]

    @torch.no_grad()
    def step(self, step: int) -> None:
        """Call after optimiser step number ``step`` (1-based)."""
        if self.every and step % self.every == 0:
            d = self.decay**self.every * (step / self.total) ** 3
            torch._foreach_lerp_(self.slow, self.fast, 1 - d)
            torch._foreach_copy_(self.fast, self.slow)

    @torch.no_grad()
    def finish(self) -> None:
        torch._foreach_copy_(self.fast, self.slow)


def fit(bench, model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, gen: torch.Generator) -> None:
    """Train ``model`` on (x, y) on the device with ``recipe``, batches and augmentation drawn from
    ``gen``. One host sync per epoch (the logged loss)."""
    bs, steps_per_epoch = batch_plan(len(x), recipe.batch_size)
    total = max(1, round(recipe.epochs * steps_per_epoch))
    cuda = bench.device.type == "cuda"
    opt = optim.sgd(
        model,
        recipe.lr,
        total,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        warmup=recipe.warmup,
        lr_start=recipe.lr_start,
        lr_end=recipe.lr_end,
        bn_bias_lr_scale=recipe.bn_bias_lr_scale,
        fused=cuda,
    )
    lookahead = Lookahead(model, recipe.lookahead, total) if recipe.lookahead else None
    stem_bias, freeze_at = None, total
    if isinstance(model, networks.FastCNN) and recipe.whiten_bias_epochs is not None:
        stem_bias, freeze_at = model.whiten.bias, round(recipe.whiten_bias_epochs * steps_per_epoch)
        stem_bias.requires_grad_(freeze_at > 0)
    if cuda:  # what autocast feeds the first convolution anyway: half the traffic
        x = x.to(torch.bfloat16)
    aug = EpochAugmenter(x, gen, recipe.flip, recipe.translate, recipe.alt_flip)
    used = steps_per_epoch * bs
    model.train()
    step, epoch = 0, 0
    while step < total:
        xa = aug.next()  # the epoch's augmented copy, then its shuffled order
        perm = torch.randperm(len(x), generator=gen, device=x.device)[:used]
        xe, ye = xa[perm], y[perm]
        loss_sum = torch.zeros((), device=xe.device)
        for i in range(0, used, bs):
            if step >= total:
                break
            if stem_bias is not None and step == freeze_at:
                stem_bias.requires_grad_(False)
            with bench.autocast:
                logits = model(xe[i : i + bs])  # (B, classes)
            loss = F.cross_entropy(logits.float(), ye[i : i + bs], label_smoothing=recipe.label_smoothing)
            opt.step(loss)
            loss_sum += loss.detach()
            step += 1
            if lookahead is not None:
                lookahead.step(step)
        epoch += 1
        if epoch == 1 or step >= total or epoch % 10 == 0:
            log.info("epoch %d step %d/%d loss %.4f", epoch, step, total, (loss_sum / steps_per_epoch).item())
    if lookahead is not None:
        lookahead.finish()
    if stem_bias is not None:
        stem_bias.requires_grad_(True)


def batch_plan(n: int, batch_size: int) -> tuple[int, int]:
    """(batch size, steps an epoch) of a training set of n examples: full batches only, one input
    shape, so cuDNN tunes once per job."""
    bs = min(batch_size, n)
    return bs, n // bs
