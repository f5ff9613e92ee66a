"""Training: data on the device, batched augmentation, SGD with a warm-up/linear-decay schedule,
and the shard jobs that train K originals or retrains in one process and score them."""

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

from umia import io, models, plan
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
    b = len(x)
    if flip:
        mask = torch.rand(b, 1, 1, 1, generator=gen, device=x.device) < 0.5
        x = torch.where(mask, x.flip(-1), x)
    if translate:
        t, (h, w) = translate, x.shape[-2:]
        padded = F.pad(x, (t, t, t, t), mode="reflect")
        dx = torch.randint(0, 2 * t + 1, (b, 1, 1, 1), generator=gen, device=x.device)
        dy = torch.randint(0, 2 * t + 1, (b, 1, 1, 1), generator=gen, device=x.device)
        cols = padded[..., :w]
        for s in range(1, 2 * t + 1):
            cols = torch.where(dx == s, padded[..., s : s + w], cols)  # (B, C, H+2t, W)
        x = cols[..., :h, :]
        for s in range(1, 2 * t + 1):
            x = torch.where(dy == s, cols[..., s : s + h, :], x)  # (B, C, H, W)
    return x


def schedule(total: int, warmup: float) -> Callable[[int], float]:
    """Linear rise over ``warmup`` of the steps, then linear decay to zero at ``total``."""
    rise = max(1, round(warmup * total))

    def factor(step: int) -> float:
        if step < rise:
            return (step + 1) / rise
        return max(0.0, (total - step) / max(1, total - rise))

    return factor


def sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float, total_steps: int, warmup: float):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    opt.umia_total_steps = total_steps  # read by unlearn.probe_points, which scores at fractions of a run
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule(total_steps, warmup))


def fit(
    bench: Workbench, model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, gen: torch.Generator
) -> None:
    """Train ``model`` on (x, y) on the device. One host sync per epoch (the logged loss)."""
    n = len(x)
    bs = min(recipe.batch_size, n)
    steps_per_epoch = n // bs  # full batches only: one input shape, so cuDNN tunes once per job
    total = max(1, round(recipe.epochs * steps_per_epoch))
    opt, sched = sgd(model, recipe.lr, recipe.momentum, recipe.weight_decay, total, recipe.warmup)
    model.train()
    step, epoch = 0, 0
    while step < total:
        xa = augment(x, gen, recipe.flip, recipe.translate)
        perm = torch.randperm(n, generator=gen, device=x.device)
        loss_sum = torch.zeros((), device=x.device)
        for i in range(0, steps_per_epoch * bs, bs):
            if step >= total:
                break
            idx = perm[i : i + bs]
            with bench.autocast:
                logits = model(xa[idx])
            loss = F.cross_entropy(logits.float(), y[idx], label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach()
            step += 1
        epoch += 1
        if epoch == 1 or step >= total or epoch % 10 == 0:
            log.info("epoch %d step %d/%d loss %.4f", epoch, step, total, (loss_sum / steps_per_epoch).item())


def test_accuracy(bench: Workbench, model: nn.Module) -> float:
    model.eval()
    correct = 0
    with torch.no_grad(), bench.autocast:
        for i in range(0, bench.n_test, 2048):
            correct += (model(bench.x_test[i : i + 2048]).argmax(1) == bench.y_test[i : i + 2048]).sum()
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
    frames, states = [], {}
    for model_id in plan.shard_models(shard, shard_size):
        train, forget = bench.masks(seed, model_id)
        keep = train & ~forget if stage == "retrain" else train
        x, y = bench.x_pool[keep], bench.y_pool[keep]
        t0 = time.perf_counter()
        model = bench.new_model(network, rec.width, plan.derive_seed(seed, "init", model_id), x)
        fit(bench, model, x, y, rec, bench.generator(plan.derive_seed(seed, "order", model_id)))
        if bench.device.type == "cuda":
            torch.cuda.synchronize()
        t_train = time.perf_counter() - t0
        log.info(
            "%s model %d: %d examples, %.2f s, test accuracy %.4f",
            stage,
            model_id,
            len(y),
            t_train,
            test_accuracy(bench, model),
        )
        method = "none" if stage == "original" else "retrain"
        frames.append(scores_frame(score_model(bench, model, views), bench, model_id, stage, method, views))
        if out_ckpt:
            states[model_id] = cpu_state(model)
    io.write_table(pd.concat(frames, ignore_index=True), out_scores, io.SCORES, config_hash)
    if out_ckpt:
        save_models(
            out_ckpt,
            states,
            {"stage": stage, "network": network, "width": rec.width, "seed": seed, "config_hash": config_hash},
        )
