"""The image task: data on the device, batched augmentation, training of the shadow models (SGD with
a warm-up/linear-decay schedule, optionally Lookahead, a faster rate for BatchNorm biases,
airbench's alternating flips, several fastcnns at once), scoring under views, and ``ImageTask``,
what the shard jobs and the unlearning methods use."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umia import models, optim, plan, plugins
from umia.data import load_prepared
from umia.device import autocast, setup
from umia.score import padded, phi_loss, scores_frame, view
from umia.tasks import Bench

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
    stack: int = 1  # fastcnn: train up to this many models at once (grouped convolutions); same models

    @classmethod
    def from_mapping(cls, m: Mapping) -> Recipe:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in m.items() if k in names})


class ImageTask(Bench):
    """The image task of one job: the pool and test split on the device as normalised float tensors,
    the network to build, and the views models are scored under.

    x_pool: (n_pool, C, H, W) float32; y_pool: (n_pool,) int64; likewise x_test, y_test.
    ``network`` is a registry name or a plug-in ``module:callable`` returning an ``nn.Module`` for
    ``(in_shape, n_classes, width)``.
    """

    name = "image"

    def __init__(
        self,
        data: str,
        candidates: str | None,
        device: str,
        config_hash: str | None,
        threads: int = 0,
        network: str = "mlp",
        width: int = 256,
        views: Sequence[str] = ("identity", "mirror"),
    ):
        self.device = setup(device, threads)
        a = load_prepared(data)
        self.n_classes = a.n_classes
        x_pool = torch.from_numpy(a.x_train).to(self.device).permute(0, 3, 1, 2).float() / 255
        x_test = torch.from_numpy(a.x_test).to(self.device).permute(0, 3, 1, 2).float() / 255
        mean = x_pool.mean(dim=(0, 2, 3), keepdim=True)
        std = x_pool.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)  # a constant channel stays finite
        self.x_pool = (x_pool - mean) / std
        self.x_test = (x_test - mean) / std
        self.y_pool = torch.from_numpy(a.y_train).to(self.device)
        self.y_test = torch.from_numpy(a.y_test).to(self.device)
        self.labels = np.concatenate([a.y_train, a.y_test])
        self.n_pool, self.n_test = len(a.y_train), len(a.y_test)
        self._read_candidates(candidates, config_hash)
        self.in_shape = tuple(self.x_pool.shape[1:])
        self.autocast = autocast(self.device)
        self.network, self.width, self.views = network, width, tuple(views)
        self._checked = False

    # --------------------------------------------------------------------------------- models
    def new_model(self, init_seed: int, x_init: torch.Tensor | None = None) -> nn.Module:
        """A freshly initialised network (weights from ``init_seed``) on the device."""
        torch.manual_seed(init_seed)
        if self._checked:
            net = models.build(self.network, self.in_shape, self.n_classes, self.width)
        else:  # once a job: a module giving (batch, n_classes) logits (a plug-in above all)
            build = lambda *a: models.build(self.network, *a)  # noqa: E731
            net = plugins.check_network(build, self.network, self.in_shape, self.n_classes, self.width)
            self._checked = True
        if isinstance(net, models.FastCNN) and x_init is not None:
            net.init_whitening(x_init[:5000])
        net = net.to(self.device)
        if self.device.type == "cuda" and self.network != "mlp":
            net = net.to(memory_format=torch.channels_last)
        return net

    def load_model(self, state: dict) -> nn.Module:
        model = self.new_model(0)
        model.load_state_dict(state)
        return model

    def pool(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool images where ``keep`` (n_pool,) is True, as (x, y)."""
        return self.x_pool[keep], self.y_pool[keep]

    def train(self, keep: dict[int, torch.Tensor], recipe: Mapping, seed: int):
        """Train a model per {model_id: mask over the pool} with the recipe; fastcnns in stacks of
        ``recipe["stack"]``. Yields (model_id, model, seconds a model) in model order per stack."""
        rec = Recipe.from_mapping(recipe)
        stack = rec.stack if self.network == "fastcnn" else 1
        sizes = [int(k.sum()) for k in keep.values()]
        for chunk in stacks(list(keep), sizes, rec.batch_size, stack):
            t0 = time.perf_counter()
            nets, xs, ys, gens = [], [], [], []
            for model_id in chunk:
                x, y = self.pool(keep[model_id])
                xs.append(x)
                ys.append(y)
                nets.append(self.new_model(plan.derive_seed(seed, "init", model_id), x))
                gens.append(self.generator(plan.derive_seed(seed, "order", model_id)))
            fit_stacked(self, nets, xs, ys, rec, gens)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - t0) / len(chunk)
            yield from ((model_id, net, seconds) for model_id, net in zip(chunk, nets, strict=True))

    # ------------------------------------------------------------------------- what methods use
    def logits(self, model: nn.Module, batch) -> torch.Tensor:
        with self.autocast:
            return model(batch[0])

    def loss(self, model: nn.Module, batch, settings: Mapping, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy with the recipe's label smoothing: a scalar, or (B,) with reduction "none"."""
        x, y = batch
        logits = self.logits(model, batch).float()
        return F.cross_entropy(logits, y, label_smoothing=settings.get("label_smoothing", 0.0), reduction=reduction)

    def augment(self, batch, settings: Mapping, gen: torch.Generator):
        x, *rest = batch
        return (augment(x, gen, settings.get("flip", False), settings.get("translate", 0)), *rest)

    def optimiser(self, model: nn.Module, lr: float, steps: int, weight_decay: float | None = None) -> optim.Optimiser:
        """SGD with Nesterov momentum 0.9, weight decay 5e-4 unless given, linear decay to zero;
        on a GPU the fused kernel, as training uses (one launch a step for all parameters)."""
        wd = 5e-4 if weight_decay is None else weight_decay
        return optim.sgd(model, lr, steps, momentum=0.9, weight_decay=wd, fused=self.device.type == "cuda")

    # --------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, model: nn.Module, batch: int = 4096) -> dict[str, np.ndarray]:
        """phi, loss and correctness on the pool and the test split under each view: (V, n_pool + n_test).
        With the identity and mirror views, also ``tta_correct`` (n_test,): the test predictions of
        the two views' summed logits (mirror-TTA), from the same passes."""
        model.eval()
        y_all = torch.cat([self.y_pool, self.y_test])
        out = {k: [] for k in ("phi", "loss", "correct")}
        test_logits = {}
        for v in self.views:
            logits = []
            for x in (self.x_pool, self.x_test):
                for i in range(0, len(x), batch):
                    with self.autocast:
                        logits.append(model(view(x[i : i + batch], v)).float())
            z = torch.cat(logits)
            test_logits[v] = z[self.n_pool :]
            for k, t in zip(("phi", "loss", "correct"), phi_loss(z, y_all), strict=True):
                out[k].append(t)
        scored = {k: torch.stack(v).cpu().numpy() for k, v in out.items()}
        if {"identity", "mirror"} <= test_logits.keys():
            tta = (test_logits["identity"] + test_logits["mirror"]).argmax(1) == self.y_test
            scored["tta_correct"] = tta.cpu().numpy()
        return scored

    @torch.no_grad()
    def phi(self, model: nn.Module, data, batch: int = 4096) -> torch.Tensor:
        """phi of a few examples under each view, on the device: (V, n). Leaves the model in the
        mode it was in; batches are padded to a few shapes (``score.padded``)."""
        x, y = data[0], data[1]
        was_training = model.training
        model.eval()
        out = []
        for v in self.views:
            logits = []
            for i in range(0, len(x), batch):
                xb = x[i : i + batch]
                with self.autocast:
                    logits.append(model(view(padded(xb), v))[: len(xb)].float())
            out.append(phi_loss(torch.cat(logits) if logits else x.new_zeros(0, self.n_classes), y)[0])
        model.train(was_training)
        return torch.stack(out)

    def tables(self, scored: Mapping[str, np.ndarray], model_id: int, stage: str, method: str) -> dict:
        return {"scores": scores_frame(scored, self, model_id, stage, method, self.views)}

    def describe(self, model: nn.Module, scored: Mapping[str, np.ndarray], keep: torch.Tensor) -> str:
        """Test accuracy, plain and mirror-TTA: from ``scored`` where it has both views (no more passes)."""
        if "tta_correct" in scored:
            plain = float(scored["correct"][self.views.index("identity"), self.n_pool :].mean())
            tta = float(scored["tta_correct"].mean())
        else:
            plain, tta = test_accuracy(self, model), test_accuracy(self, model, tta=True)
        return f"test accuracy {plain:.4f} (mirror-TTA {tta:.4f})"


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


def fit(
    bench: ImageTask, model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, gen: torch.Generator
) -> None:
    """Train ``model`` on (x, y) on the device. One host sync per epoch (the logged loss)."""
    _fit(bench, model, [x], [y], recipe, [gen])


def batch_plan(n: int, batch_size: int) -> tuple[int, int]:
    """(batch size, steps an epoch) of a training set of n examples: full batches only, one input
    shape, so cuDNN tunes once per job."""
    bs = min(batch_size, n)
    return bs, n // bs


def stacks(ids: Sequence[int], sizes: Sequence[int], batch_size: int, stack: int) -> list[list[int]]:
    """``ids`` in stacks of up to ``stack`` models whose training sets (of ``sizes``) share their
    ``batch_plan``, so that each model of a stack trains as it would alone; in order of the ids
    within each plan (one at a time: simply in order)."""
    if stack == 1:
        return [[i] for i in ids]
    by_plan: dict[tuple[int, int], list[int]] = {}
    for i, n in zip(ids, sizes, strict=True):
        by_plan.setdefault(batch_plan(n, batch_size), []).append(i)
    return [group[j : j + stack] for group in by_plan.values() for j in range(0, len(group), stack)]


def fit_stacked(
    bench: ImageTask,
    nets: Sequence[models.FastCNN],
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    recipe: Recipe,
    gens: Sequence[torch.Generator],
) -> None:
    """Train FastCNN ``nets[k]`` on (xs[k], ys[k]) with generator gens[k], all at once as one
    ``StackedFastCNN``: the same updates as ``fit`` on each (each model its own batches, augmentation
    and order; the loss is the sum of the models' losses, so no gradient crosses models), up to
    floating-point rounding. Every set must give the same batch size and steps an epoch
    (``batch_plan``; ``stacks`` groups models so)."""
    plans = {batch_plan(len(x), recipe.batch_size) for x in xs}
    if len(plans) > 1:
        raise ValueError(f"models of one stack must share batch size and steps an epoch, not {sorted(plans)}")
    if len(nets) == 1:
        return fit(bench, nets[0], xs[0], ys[0], recipe, gens[0])
    stacked = models.StackedFastCNN(list(nets))
    if bench.device.type == "cuda":
        stacked = stacked.to(memory_format=torch.channels_last)
    _fit(bench, stacked, xs, ys, recipe, gens)
    stacked.unstack(list(nets))


def _fit(
    bench: ImageTask,
    model: nn.Module,
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    recipe: Recipe,
    gens: Sequence[torch.Generator],
) -> None:
    """The training loop of ``fit`` (one model) and ``fit_stacked`` (a StackedFastCNN of len(xs))."""
    k = len(xs)
    bs, steps_per_epoch = batch_plan(min(len(x) for x in xs), recipe.batch_size)
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
    if isinstance(model, (models.FastCNN, models.StackedFastCNN)) and recipe.whiten_bias_epochs is not None:
        stem_bias, freeze_at = model.whiten.bias, round(recipe.whiten_bias_epochs * steps_per_epoch)
        stem_bias.requires_grad_(freeze_at > 0)
    if cuda:  # what autocast feeds the first convolution anyway: half the traffic
        xs = [x.to(torch.bfloat16) for x in xs]
    augs = [EpochAugmenter(x, g, recipe.flip, recipe.translate, recipe.alt_flip) for x, g in zip(xs, gens, strict=True)]
    used = steps_per_epoch * bs
    model.train()
    step, epoch = 0, 0
    while step < total:
        # each model's augmented, shuffled epoch (its own generator), side by side along channels
        xe, ye = [], []
        for aug, x, y, g in zip(augs, xs, ys, gens, strict=True):
            xa = aug.next()
            perm = torch.randperm(len(x), generator=g, device=x.device)[:used]
            xe.append(xa[perm])
            ye.append(y[perm])
        xe = xe[0] if k == 1 else torch.cat(xe, dim=1)  # (used, K*C, H, W)
        ye = ye[0] if k == 1 else torch.stack(ye, dim=1)  # (used, K)
        loss_sum = torch.zeros((), device=xe.device)
        for i in range(0, used, bs):
            if step >= total:
                break
            if stem_bias is not None and step == freeze_at:
                stem_bias.requires_grad_(False)
            with bench.autocast:
                logits = model(xe[i : i + bs])  # (B, classes) or (B, K, classes)
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                ye[i : i + bs].reshape(-1),
                label_smoothing=recipe.label_smoothing,
            )
            if k > 1:
                loss = loss * k  # the sum of the K models' mean losses
            opt.step(loss)
            loss_sum += loss.detach() / k
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


def test_accuracy(bench: ImageTask, model: nn.Module, tta: bool = False) -> float:
    """Accuracy on the test split; with ``tta`` the prediction averages the logits of each image
    and its mirror image (the two views the attacks score)."""
    model.eval()
    correct = 0
    with torch.no_grad(), bench.autocast:
        for i in range(0, bench.n_test, 4096):  # score_model's chunks: shapes cuDNN has tuned already
            xb = bench.x_test[i : i + 4096]
            logits = model(xb).float()
            if tta:
                logits = logits + model(xb.flip(-1)).float()
            correct += (logits.argmax(1) == bench.y_test[i : i + 4096]).sum()
    return float(correct) / bench.n_test
