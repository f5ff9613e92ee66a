"""Training: data on the device, batched augmentation, SGD with a warm-up/linear-decay schedule
(optionally Lookahead, a faster rate for BatchNorm biases, airbench's alternating flips), and the shard
jobs that train K originals or retrains in one process and score them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from umia import io, models, plan, provenance
from umia.data import load_prepared
from umia.errors import DeviceError
from umia.score import score_model, scores_frame

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


def pick_device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "config key 'device' is 'cuda' but no GPU is visible; set device: auto or cpu, or run on a GPU node"
        )
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


class Workbench:
    """A job's data, on its device: the pool and test split as normalised float tensors.

    x_pool: (n_pool, C, H, W) float32; y_pool: (n_pool,) int64; likewise x_test, y_test.
    """

    def __init__(
        self, data_path: str, candidates_path: str | None, device: str, config_hash: str | None, threads: int = 0
    ):
        if threads:
            torch.set_num_threads(threads)  # the job's share of the node; also fixes CPU results across hosts
        self.device = pick_device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        a = load_prepared(data_path)
        self.n_classes = a.n_classes
        x_pool = torch.from_numpy(a.x_train).to(self.device).permute(0, 3, 1, 2).float() / 255
        x_test = torch.from_numpy(a.x_test).to(self.device).permute(0, 3, 1, 2).float() / 255
        mean = x_pool.mean(dim=(0, 2, 3), keepdim=True)
        std = x_pool.std(dim=(0, 2, 3), keepdim=True)
        self.x_pool = (x_pool - mean) / std
        self.x_test = (x_test - mean) / std
        self.y_pool = torch.from_numpy(a.y_train).to(self.device)
        self.y_test = torch.from_numpy(a.y_test).to(self.device)
        self.labels = np.concatenate([a.y_train, a.y_test])
        self.n_pool, self.n_test = len(a.y_train), len(a.y_test)
        self.candidate_ids = np.zeros(0, np.int64)
        if candidates_path is not None:
            cand = io.read_table(candidates_path, io.CANDIDATES, config_hash)
            self.candidate_ids = cand.column("example_id").to_numpy()
        self.in_shape = tuple(self.x_pool.shape[1:])
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def masks(self, seed: int, model_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(D_i, F_i) as boolean masks over the pool, on the device."""
        train = plan.train_mask(seed, model_id, self.n_pool)
        forget = plan.forget_mask(train, self.candidate_ids)
        return torch.from_numpy(train).to(self.device), torch.from_numpy(forget).to(self.device)

    def new_model(self, network: str, width: int, init_seed: int, x_init: torch.Tensor | None = None) -> nn.Module:
        torch.manual_seed(init_seed)
        net = models.build(network, self.in_shape, self.n_classes, width)
        if isinstance(net, models.FastCNN) and x_init is not None:
            net.init_whitening(x_init[:5000])
        net = net.to(self.device)
        if self.device.type == "cuda" and network != "mlp":
            net = net.to(memory_format=torch.channels_last)
        return net

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)


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


def schedule(total: int, warmup: float, start: float = 0.0, end: float = 0.0) -> Callable[[int], float]:
    """Linear rise over ``warmup`` of the steps (from ``start``), then linear decay to ``end`` at
    ``total``; factors of the peak learning rate."""
    rise = max(1, round(warmup * total))

    def factor(step: int) -> float:
        if step < rise:
            return start + (1 - start) * (step + 1) / rise
        return end + (1 - end) * max(0.0, (total - step) / max(1, total - rise))

    return factor


def sgd(
    model: nn.Module,
    lr: float,
    momentum: float,
    weight_decay: float,
    total_steps: int,
    warmup: float,
    *,
    lr_start: float = 0.0,
    lr_end: float = 0.0,
    bn_bias_lr_scale: float = 1.0,
    fused: bool = False,
):
    """SGD with Nesterov momentum and the schedule above. With ``bn_bias_lr_scale`` != 1 the
    BatchNorm biases get that multiple of the learning rate and the same decay per step."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict] = [{"params": params}]
    if bn_bias_lr_scale != 1:
        norm = [m.bias for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.affine]
        norm_ids = {id(p) for p in norm if p.requires_grad}
        fast = [p for p in params if id(p) in norm_ids]
        groups = [
            {"params": [p for p in params if id(p) not in norm_ids]},
            {"params": fast, "lr": lr * bn_bias_lr_scale, "weight_decay": weight_decay / bn_bias_lr_scale},
        ]
        groups = [g for g in groups if g["params"]]
    opt = torch.optim.SGD(
        groups, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay, fused=fused or None
    )
    opt.umia_total_steps = total_steps  # read by unlearn.probe_points, which scores at fractions of a run
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule(total_steps, warmup, lr_start, lr_end))


def fit(
    bench: Workbench, model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, gen: torch.Generator
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
    bench: Workbench,
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
    bench: Workbench,
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
    opt, sched = sgd(
        model,
        recipe.lr,
        recipe.momentum,
        recipe.weight_decay,
        total,
        recipe.warmup,
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
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
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


def test_accuracy(bench: Workbench, model: nn.Module, tta: bool = False) -> float:
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


def save_models(path: str, states: dict[int, dict], meta: dict) -> None:
    """One checkpoint file per shard: {"models": {model_id: state_dict}, "meta": {...}}."""
    with io.atomic_path(path) as tmp:
        torch.save({"models": {str(k): v for k, v in states.items()}, "meta": meta}, tmp)


def load_models(path: str, device: torch.device) -> tuple[dict[int, dict], dict]:
    blob = torch.load(path, map_location=device, weights_only=True)
    return {int(k): v for k, v in blob["models"].items()}, blob["meta"]


def cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train_shard(
    *,
    data: str,
    candidates: str,
    out_scores: str,
    out_ckpt: str | None,
    stage: str,
    shard: int,
    shard_size: int,
    seed: int,
    network: str,
    recipe: Mapping,
    views: Sequence[str],
    device: str,
    config_hash: str,
    threads: int = 0,
) -> None:
    """Train and score the originals (stage "original", on D_i) or retrains (stage "retrain", on
    D_i minus F_i) of one shard of models, then write their scores and, if asked, checkpoints."""
    if stage not in ("original", "retrain"):
        raise ValueError(f"stage must be original or retrain, not {stage!r}")
    bench = Workbench(data, candidates, device, config_hash, threads)
    rec = Recipe.from_mapping(recipe)
    stack = rec.stack if network == "fastcnn" else 1
    keep = {}
    for model_id in plan.shard_models(shard, shard_size):
        train, forget = bench.masks(seed, model_id)
        keep[model_id] = train & ~forget if stage == "retrain" else train
    sizes = [int(k.sum()) for k in keep.values()]
    frames, states = {}, {}
    for chunk in stacks(list(keep), sizes, rec.batch_size, stack):
        t0 = time.perf_counter()
        nets, xs, ys, gens = [], [], [], []
        for model_id in chunk:
            xs.append(bench.x_pool[keep[model_id]])
            ys.append(bench.y_pool[keep[model_id]])
            nets.append(bench.new_model(network, rec.width, plan.derive_seed(seed, "init", model_id), xs[-1]))
            gens.append(bench.generator(plan.derive_seed(seed, "order", model_id)))
        fit_stacked(bench, nets, xs, ys, rec, gens)
        if bench.device.type == "cuda":
            torch.cuda.synchronize()
        t_train = (time.perf_counter() - t0) / len(chunk)
        for model_id, model, y in zip(chunk, nets, ys, strict=True):
            log.info(
                "%s model %d: %d examples, %.2f s, test accuracy %.4f (mirror-TTA %.4f)",
                stage,
                model_id,
                len(y),
                t_train,
                test_accuracy(bench, model),
                test_accuracy(bench, model, tta=True),
            )
            method = "none" if stage == "original" else "retrain"
            frames[model_id] = scores_frame(score_model(bench, model, views), bench, model_id, stage, method, views)
            if out_ckpt:
                states[model_id] = cpu_state(model)
    frames = [frames[i] for i in sorted(frames)]  # model order, however the stacks fell
    stamp = provenance.job(bench.device)
    io.write_table(pd.concat(frames, ignore_index=True), out_scores, io.SCORES, config_hash, stamp)
    if out_ckpt:
        save_models(
            out_ckpt,
            states,
            {"stage": stage, "network": network, "width": rec.width, "seed": seed, "config_hash": config_hash},
        )
