"""Unlearning methods, and the shard job that applies one to K originals and scores the results.

A method is one function ``(bench, model, forget, retain, settings, gen) -> None`` that changes
``model`` in place, registered in ``METHODS``; its settings come from the config's ``unlearn``
section. ``forget`` and ``retain`` are (x, y) pairs of tensors on the device.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from umia import io, plan
from umia.score import score_model, scores_frame
from umia.train import (
    Recipe,
    Workbench,
    augment,
    cpu_state,
    fit,
    load_models,
    save_models,
    sgd,
    test_accuracy,
)

log = logging.getLogger(__name__)

Pair = tuple[torch.Tensor, torch.Tensor]
Method = Callable[[Workbench, nn.Module, Pair, Pair, Mapping, torch.Generator], None]


def finetune(bench: Workbench, model: nn.Module, forget: Pair, retain: Pair, s: Mapping, gen: torch.Generator) -> None:
    """Fine-tune on the retain set only (catastrophic forgetting of F), e.g. Golatkar et al. 2020."""
    rec = Recipe(
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        lr=s["lr"],
        momentum=0.9,
        weight_decay=5e-4,
        warmup=0.0,
        label_smoothing=s.get("label_smoothing", 0.0),
        flip=s.get("flip", False),
        translate=s.get("translate", 0),
    )
    fit(bench, model, *retain, rec, gen)


def gradient_ascent(
    bench: Workbench, model: nn.Module, forget: Pair, retain: Pair, s: Mapping, gen: torch.Generator
) -> None:
    """Gradient ascent on the forget set (NegGrad; Golatkar et al. 2020, Thudi et al. 2022)."""
    x, y = forget
    if len(x) == 0:
        return
    n = len(x)
    bs = min(s["batch_size"], n)
    ls = s.get("label_smoothing", 0.0)
    total = max(1, round(s["epochs"] * (n // bs)))
    opt, sched = sgd(model, s["lr"], 0.9, 0.0, total, 0.0)
    model.train()
    step = 0
    while step < total:
        perm = torch.randperm(n, generator=gen, device=x.device)
        for i in range(0, (n // bs) * bs, bs):
            if step >= total:
                break
            idx = perm[i : i + bs]
            with bench.autocast:
                loss = -F.cross_entropy(model(_aug(x[idx], s, gen)).float(), y[idx], label_smoothing=ls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1


def neggrad_plus(
    bench: Workbench, model: nn.Module, forget: Pair, retain: Pair, s: Mapping, gen: torch.Generator
) -> None:
    """NegGrad+ (Kurmanji et al., NeurIPS 2023): descend on retain batches while ascending on
    forget batches, loss = alpha * CE(retain) - (1 - alpha) * CE(forget)."""
    (xf, yf), (xr, yr) = forget, retain
    if len(xf) == 0:
        return finetune(bench, model, forget, retain, dict(s, epochs=s["epochs"]), gen)
    bs, alpha, ls = s["batch_size"], s["alpha"], s.get("label_smoothing", 0.0)
    total = max(1, round(s["epochs"] * math.ceil(len(xr) / bs)))
    opt, sched = sgd(model, s["lr"], 0.9, 5e-4, total, 0.0)
    model.train()
    for _ in range(total):
        ir = torch.randint(0, len(xr), (bs,), generator=gen, device=xr.device)
        jf = torch.randint(0, len(xf), (bs,), generator=gen, device=xf.device)  # fixed shape: one cuDNN plan
        with bench.autocast:
            lr_ = F.cross_entropy(model(_aug(xr[ir], s, gen)).float(), yr[ir], label_smoothing=ls)
            lf = F.cross_entropy(model(_aug(xf[jf], s, gen)).float(), yf[jf], label_smoothing=ls)
        loss = alpha * lr_ - (1 - alpha) * lf
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


def _aug(x: torch.Tensor, s: Mapping, gen: torch.Generator) -> torch.Tensor:
    """The training recipe's augmentation (inherited flip and translate) on one batch."""
    return augment(x, gen, s.get("flip", False), s.get("translate", 0))


def _plan(model: nn.Module, s: Mapping, n: int, weight_decay: float = 5e-4):
    """Batch size, number of steps (``epochs`` passes over n examples) and the optimiser."""
    bs = min(s["batch_size"], n)
    total = max(1, round(s["epochs"] * math.ceil(n / bs)))
    opt, sched = sgd(model, s["lr"], 0.9, weight_decay, total, 0.0)
    return bs, total, opt, sched


def _step(
    opt, sched, loss: torch.Tensor, model: nn.Module | None = None, mask: dict | None = None, clip: float = 0.0
) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if mask is not None:  # update only the masked (salient) weights
        for name, p in model.named_parameters():
            if p.grad is not None:
                p.grad.mul_(mask[name])
    opt.step()
    sched.step()


def _batch(x: torch.Tensor, bs: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of a batch of fixed size bs drawn with replacement (one shape: one cuDNN plan)."""
    return torch.randint(0, len(x), (bs,), generator=gen, device=x.device)


def _wrong_labels(y: torch.Tensor, n_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random label other than the true one, for each example."""
    shift = torch.randint(1, n_classes, y.shape, generator=gen, device=y.device)
    return (y + shift) % n_classes


def _relabel_loop(bench, model, forget, retain, s, gen, mask=None, weight_decay=5e-4) -> None:
    """Fine-tune on the model's training set D_i with the forget examples relabelled at random
    (a wrong class, drawn anew each time an example is drawn): ``epochs`` passes over D_i, the
    forget examples drawn in their share of it, as in the SalUn reference code."""
    (xf, yf), (xr, yr) = forget, retain
    x, y = torch.cat([xf, xr]), torch.cat([yf, yr])
    is_forget = torch.arange(len(x), device=x.device) < len(xf)
    bs, total, opt, sched = _plan(model, s, len(x), weight_decay)
    ls = s.get("label_smoothing", 0.0)
    model.train()
    for _ in range(total):
        i = _batch(x, bs, gen)
        target = torch.where(is_forget[i], _wrong_labels(y[i], bench.n_classes, gen), y[i])
        with bench.autocast:
            loss = F.cross_entropy(model(_aug(x[i], s, gen)).float(), target, label_smoothing=ls)
        _step(opt, sched, loss, model, mask)


def random_labels(
    bench: Workbench, model: nn.Module, forget: Pair, retain: Pair, s: Mapping, gen: torch.Generator
) -> None:
    """Random labels (Graves et al., AAAI 2021, "Amnesiac Machine Learning"): fine-tune on the
    training set with the forget examples relabelled with random wrong classes."""
    if len(forget[0]):
        _relabel_loop(bench, model, forget, retain, s, gen)


def l1_sparse(bench: Workbench, model: nn.Module, forget: Pair, retain: Pair, s: Mapping, gen: torch.Generator) -> None:
    """l1-sparse unlearning (Jia et al., NeurIPS 2023, "Model Sparsity Can Simplify Machine
    Unlearning"): fine-tune on the retain set with an L1 penalty gamma_t * ||w||_1 on the weights,
    gamma_t decaying linearly from ``l1`` to zero."""
    xr, yr = retain
    bs, total, opt, sched = _plan(model, s, len(xr))
    ls = s.get("label_smoothing", 0.0)
    weights = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    model.train()
    for step in range(total):
        ir = _batch(xr, bs, gen)
        with bench.autocast:
            loss = F.cross_entropy(model(_aug(xr[ir], s, gen)).float(), yr[ir], label_smoothing=ls)
        gamma = s["l1"] * (1 - step / total)
        _step(opt, sched, loss + gamma * sum(w.abs().sum() for w in weights))


def _kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher || student) at temperature t, scaled by t^2 as in distillation."""
    return (
        F.kl_div(
            F.log_softmax(student_logits.float() / t, 1),
            F.log_softmax(teacher_logits.float() / t, 1),
            reduction="batchmean",
            log_target=True,
        )
        * t
        * t
    )


def scrub(bench: Workbench, model: nn.Module, forget: Pair, retain: Pair, s: Mapping, gen: torch.Generator) -> None:
    """SCRUB (Kurmanji et al., NeurIPS 2023, "Towards Unbounded Machine Unlearning"): the
    original is a frozen teacher; the student alternates max steps (move away from the teacher
    on the forget set) for the first ``max_epochs`` epochs with min steps (stay close to the
    teacher on the retain set: alpha * KL + gamma * CE). The max objective is unbounded, so the
    gradient norm is clipped at ``clip`` (0: off) to keep the student from running away."""
    (xf, _), (xr, yr) = forget, retain
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    bs = min(s["batch_size"], len(xr))
    n_f = math.ceil(len(xf) / bs) if len(xf) else 0
    n_r = math.ceil(len(xr) / bs)
    opt, sched = sgd(model, s["lr"], 0.9, 5e-4, s["epochs"] * n_r + s["max_epochs"] * n_f, 0.0)
    ls, t = s.get("label_smoothing", 0.0), s["temperature"]
    model.train()
    for epoch in range(s["epochs"]):
        if epoch < s["max_epochs"]:
            for _ in range(n_f):
                xb = _aug(xf[_batch(xf, bs, gen)], s, gen)
                with bench.autocast, torch.no_grad():
                    target = teacher(xb)
                with bench.autocast:
                    _step(opt, sched, -_kl(model(xb), target, t), model, clip=s["clip"])
        for _ in range(n_r):
            ir = _batch(xr, bs, gen)
            xb = _aug(xr[ir], s, gen)
            with bench.autocast, torch.no_grad():
                target = teacher(xb)
            with bench.autocast:
                out = model(xb)
            loss = s["alpha"] * _kl(out, target, t) + s["gamma"] * F.cross_entropy(
                out.float(), yr[ir], label_smoothing=ls
            )
            _step(opt, sched, loss, model, clip=s["clip"])


def saliency_mask(bench: Workbench, model: nn.Module, forget: Pair, sparsity: float) -> dict[str, torch.Tensor]:
    """SalUn's weight saliency: the ``sparsity`` share of weights with the largest |gradient| of
    the forget loss (one global threshold over all parameters). Returns a 0/1 mask per parameter."""
    x, y = forget
    model.zero_grad(set_to_none=True)
    model.eval()  # batch statistics of the forget set must not leak into BN running stats
    for i in range(0, len(x), 1024):
        with bench.autocast:
            F.cross_entropy(model(x[i : i + 1024]).float(), y[i : i + 1024], reduction="sum").backward()
    grads = {n: p.grad.abs() for n, p in model.named_parameters() if p.grad is not None}
    flat = torch.cat([g.flatten() for g in grads.values()])
    k = max(1, int(round(sparsity * len(flat))))
    threshold = torch.topk(flat, k, sorted=False).values.min()
    model.zero_grad(set_to_none=True)
    return {
        n: (grads[n] >= threshold).to(p.dtype) if n in grads else torch.zeros_like(p)
        for n, p in model.named_parameters()
    }


def salun(bench: Workbench, model: nn.Module, forget: Pair, retain: Pair, s: Mapping, gen: torch.Generator) -> None:
    """SalUn (Fan et al., ICLR 2024, "SalUn: Empowering Machine Unlearning via Gradient-based
    Weight Saliency"): random-label fine-tuning that updates only the salient weights."""
    if len(forget[0]):
        mask = saliency_mask(bench, model, forget, s["sparsity"])
        _relabel_loop(bench, model, forget, retain, s, gen, mask=mask, weight_decay=0.0)


METHODS: dict[str, Method] = {
    "finetune": finetune,
    "gradient_ascent": gradient_ascent,
    "neggrad_plus": neggrad_plus,
    "random_labels": random_labels,
    "l1_sparse": l1_sparse,
    "scrub": scrub,
    "salun": salun,
}


def unlearn_shard(
    *,
    data: str,
    candidates: str,
    originals: str,
    out_scores: str,
    out_ckpt: str | None,
    method: str,
    method_name: str,
    settings: Mapping,
    shard: int,
    shard_size: int,
    seed: int,
    network: str,
    width: int,
    views: Sequence[str],
    device: str,
    config_hash: str,
    threads: int = 0,
) -> None:
    """Apply one unlearning method to each original of a shard (U_i = m(O_i, F_i, D_i \\ F_i)),
    score the unlearned models, and write their scores (and checkpoints, if asked)."""
    if method_name not in METHODS:
        raise ValueError(f"unknown unlearning method {method_name!r}; known: {', '.join(METHODS)}")
    bench = Workbench(data, candidates, device, config_hash, threads)
    states, meta = load_models(originals, bench.device)
    if meta["config_hash"] != config_hash:
        raise io.TableError(f"{originals}: written by another config; use a new experiment name")
    frames, out_states = [], {}
    for model_id in plan.shard_models(shard, shard_size):
        train, forget = bench.masks(seed, model_id)
        model = bench.new_model(network, width, 0)
        model.load_state_dict(states[model_id])
        t0 = time.perf_counter()
        METHODS[method_name](
            bench,
            model,
            (bench.x_pool[forget], bench.y_pool[forget]),
            (bench.x_pool[train & ~forget], bench.y_pool[train & ~forget]),
            settings,
            bench.generator(plan.derive_seed(seed, "unlearn", method, model_id)),
        )
        if bench.device.type == "cuda":
            torch.cuda.synchronize()
        log.info(
            "%s model %d: forgot %d examples in %.2f s, test accuracy %.4f",
            method,
            model_id,
            int(forget.sum()),
            time.perf_counter() - t0,
            test_accuracy(bench, model),
        )
        frames.append(scores_frame(score_model(bench, model, views), bench, model_id, "unlearned", method, views))
        if out_ckpt:
            out_states[model_id] = cpu_state(model)
    io.write_table(pd.concat(frames, ignore_index=True), out_scores, io.SCORES, config_hash)
    if out_ckpt:
        save_models(
            out_ckpt,
            out_states,
            {
                "stage": "unlearned",
                "method": method,
                "network": network,
                "width": width,
                "seed": seed,
                "config_hash": config_hash,
            },
        )
