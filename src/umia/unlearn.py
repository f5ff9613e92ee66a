"""Unlearning methods, and the shard job that applies one to K originals and scores the results.

A method is one function ``(bench, model, forget, retain, settings, gen) -> None`` that changes
``model`` in place, registered in ``METHODS``; its settings come from the config's ``unlearn``
section. ``forget`` and ``retain`` are (x, y) pairs of tensors on the device.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from umia import io, plan, provenance
from umia.config import NEEDS_RETRAIN_SCORES
from umia.score import padded, phi_of, score_model, scores_frame
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
        xb, yb = x[i : i + 1024], y[i : i + 1024]
        weight = (torch.arange(len(padded(yb)), device=yb.device) < len(yb)).float()  # padding counts 0
        with bench.autocast:
            logits = model(padded(xb)).float()
        (F.cross_entropy(logits, padded(yb), reduction="none") * weight).sum().backward()
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


def per_example_stop(
    bench: Workbench, model: nn.Module, forget: Pair, retain: Pair, s: Mapping, gen: torch.Generator
) -> None:
    """A naive per-example stopping criterion (Hayes et al. 2024, Sec. "rates of unlearning"):
    NegGrad+ steps, but each forget example leaves the forget set once its phi (mean over the
    views) has fallen to the mean phi that the retrain models give it, estimated from the shadow
    retrains. Checked every ``check_every`` steps; the run stops once no forget example is left.

    The shard job adds ``target_phi`` ((n_forget,) tensor, the retrain mean of each forget
    example, in the order of ``forget``) and ``views`` to the settings.
    """
    (xf, yf), (xr, yr) = forget, retain
    if len(xf) == 0:
        return
    target, views = s["target_phi"], s["views"]
    bs, alpha, ls = s["batch_size"], s["alpha"], s.get("label_smoothing", 0.0)
    total = max(1, round(s["epochs"] * math.ceil(len(xr) / bs)))
    opt, sched = sgd(model, s["lr"], 0.9, 5e-4, total, 0.0)
    active = torch.ones(len(xf), dtype=torch.bool, device=xf.device)
    model.train()
    for step in range(total):
        if step % s["check_every"] == 0:  # one host sync per check
            active &= phi_of(bench, model, xf, yf, views).mean(0) > target
            if not bool(active.any()):
                log.info("per_example_stop: every forget example reached its retrain mean at step %d/%d", step, total)
                break
        ir = _batch(xr, bs, gen)
        jf = torch.multinomial(active.float(), bs, replacement=True, generator=gen)  # active examples only
        with bench.autocast:
            lr_ = F.cross_entropy(model(_aug(xr[ir], s, gen)).float(), yr[ir], label_smoothing=ls)
            lf = F.cross_entropy(model(_aug(xf[jf], s, gen)).float(), yf[jf], label_smoothing=ls)
        _step(opt, sched, alpha * lr_ - (1 - alpha) * lf)
    else:
        log.info(
            "per_example_stop: %d of %d forget examples still above their retrain mean at the end",
            int(active.sum()),
            len(xf),
        )


METHODS: dict[str, Method] = {
    "finetune": finetune,
    "gradient_ascent": gradient_ascent,
    "neggrad_plus": neggrad_plus,
    "random_labels": random_labels,
    "l1_sparse": l1_sparse,
    "scrub": scrub,
    "salun": salun,
    "per_example_stop": per_example_stop,
}


@dataclass
class Probe:
    """What a probed run did: optimiser steps taken, and the steps planned by the optimisers that
    stepped at least once."""

    steps: int = 0
    planned: int = 0


@contextlib.contextmanager
def probe_points(n_points: int, callback: Callable[[int, int, int], None]) -> Iterator[Probe]:
    """While active, call ``callback(point, step, total)`` after the optimiser step nearest to each
    fraction point / n_points (point = 1 .. n_points - 1) of the planned steps of every optimiser
    that carries ``umia_total_steps`` (train.sgd sets it). Methods need not know they are probed;
    the callback must not change the model or draw random numbers (scoring does neither)."""
    counts: dict[int, int] = {}
    marks: dict[int, dict[int, int]] = {}
    probe = Probe()

    def hook(opt: torch.optim.Optimizer, args, kwargs) -> None:
        total = getattr(opt, "umia_total_steps", None)
        if total is None:
            return
        key = id(opt)
        if key not in marks:
            marks[key] = {max(1, round(k * total / n_points)): k for k in range(1, n_points)}
            probe.planned += total
        counts[key] = step = counts.get(key, 0) + 1
        probe.steps += 1
        if step in marks[key]:
            callback(marks[key][step], step, total)

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield probe
    finally:
        handle.remove()


def retrain_means(paths: Sequence[str], n_pool: int, config_hash: str) -> np.ndarray:
    """Mean phi over the retrain models and the views, per pool example: (n_pool,), NaN where
    no retrain score exists. Every candidate is OUT of every retrain model."""
    total, count = np.zeros(n_pool), np.zeros(n_pool)
    for p in paths:
        t = io.read_table(p, io.SCORES, config_hash, columns=["example_id", "split", "phi"])
        t = t.filter(pc.equal(t["split"], "pool"))
        ids, phi = t["example_id"].to_numpy(), t["phi"].to_numpy().astype(np.float64)
        ok = np.isfinite(phi)
        np.add.at(total, ids[ok], phi[ok])
        np.add.at(count, ids[ok], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def unlearn_shard(
    *,
    data: str,
    candidates: str,
    originals: str,
    out_scores: str,
    out_ckpt: str | None,
    out_trajectory: str,
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
    rate_points: int = 4,
    retrain_scores: Sequence[str] = (),
    threads: int = 0,
) -> None:
    """Apply one unlearning method to each original of a shard (U_i = m(O_i, F_i, D_i \\ F_i)),
    score the unlearned models, and write their scores (and checkpoints, if asked).

    The forget examples' phi is also scored before unlearning, at every 1/rate_points of the
    run and at its end, into ``out_trajectory`` (the rates of unlearning)."""
    if method_name not in METHODS:
        raise ValueError(f"unknown unlearning method {method_name!r}; known: {', '.join(METHODS)}")
    bench = Workbench(data, candidates, device, config_hash, threads)
    states, meta = load_models(originals, bench.device)
    if meta["config_hash"] != config_hash:
        raise io.TableError(f"{originals}: written by another config; use a new experiment name")
    if method_name in NEEDS_RETRAIN_SCORES:
        if not retrain_scores:
            raise ValueError(f"{method_name} needs the retrain models' scores (retrain_scores)")
        target_all = torch.from_numpy(retrain_means(retrain_scores, bench.n_pool, config_hash)).float()
        settings = dict(settings, views=list(views))
    frames, trajectory, out_states = [], [], {}
    for model_id in plan.shard_models(shard, shard_size):
        train, forget = bench.masks(seed, model_id)
        model = bench.new_model(network, width, 0)
        model.load_state_dict(states[model_id])
        xf, yf = bench.x_pool[forget], bench.y_pool[forget]
        forget_ids = torch.nonzero(forget).squeeze(1).cpu().numpy()
        if method_name in NEEDS_RETRAIN_SCORES:
            settings = dict(settings, target_phi=target_all[forget_ids].to(bench.device))

        def record(point: int, step: int, total: int, model=model, xf=xf, yf=yf, i=model_id, ids=forget_ids) -> None:
            phi = phi_of(bench, model, xf, yf, views).cpu().numpy()  # (V, n_forget)
            trajectory.append((i, ids, point, step, total, phi))

        record(0, 0, 0)
        t0 = time.perf_counter()
        with probe_points(rate_points, record) as probe:
            METHODS[method_name](
                bench,
                model,
                (xf, yf),
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
        scored = score_model(bench, model, views)
        finish_trajectory(trajectory, model_id, forget_ids, rate_points, probe, scored["phi"][:, forget_ids])
        frames.append(scores_frame(scored, bench, model_id, "unlearned", method, views))
        if out_ckpt:
            out_states[model_id] = cpu_state(model)
    stamp = provenance.job(bench.device)
    io.write_table(pd.concat(frames, ignore_index=True), out_scores, io.SCORES, config_hash, stamp)
    io.write_table(trajectory_frame(trajectory, method, views, rate_points), out_trajectory, io.TRAJECTORY, config_hash)
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


def finish_trajectory(
    records: list, model_id: int, ids: np.ndarray, rate_points: int, probe: Probe, phi: np.ndarray
) -> None:
    """Add a model's last point (the unlearned model's phi: (V, n)), and the same phi at every
    middle point its run never reached: a run that stopped early (or planned fewer steps than
    points) no longer changes the model, so its state at those points is the final one."""
    seen = {r[2] for r in records if r[0] == model_id}
    for point in range(1, rate_points + 1):
        if point not in seen:
            records.append((model_id, ids, point, probe.steps, probe.planned, phi))


def trajectory_frame(records: list, method: str, views: Sequence[str], rate_points: int) -> pd.DataFrame:
    """Long format of the probe records (model_id, example ids, point, step, total, phi (V, n))."""
    frames = []
    for model_id, ids, point, step, total, phi in records:
        n_v, n = phi.shape
        frames.append(
            pd.DataFrame(
                {
                    "model_id": np.full(n_v * n, model_id, np.int32),
                    "method": method,
                    "example_id": np.tile(ids.astype(np.int64), n_v),
                    "view": np.repeat(np.asarray(views), n),
                    "point": np.full(n_v * n, point, np.int16),
                    "step": np.full(n_v * n, step, np.int32),
                    "total_steps": np.full(n_v * n, total, np.int32),
                    "fraction": np.full(n_v * n, point / rate_points, np.float32),
                    "phi": phi.ravel().astype(np.float32),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
