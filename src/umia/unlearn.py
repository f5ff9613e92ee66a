"""Unlearning methods, and the shard job that applies one to K originals and scores the results.

A method is one function ``(bench, model, forget, retain, settings, gen) -> None`` that changes
``model`` in place, registered in ``METHODS``; its settings come from the config's ``unlearn``
section. ``forget`` and ``retain`` are (x, y) pairs of tensors on the device.
"""

from __future__ import annotations

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
                loss = -F.cross_entropy(model(x[idx]).float(), y[idx], label_smoothing=ls)
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
        jf = torch.randint(0, len(xf), (min(bs, len(xf)),), generator=gen, device=xf.device)
        with bench.autocast:
            lr_ = F.cross_entropy(model(xr[ir]).float(), yr[ir], label_smoothing=ls)
            lf = F.cross_entropy(model(xf[jf]).float(), yf[jf], label_smoothing=ls)
        loss = alpha * lr_ - (1 - alpha) * lf
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


METHODS: dict[str, Method] = {
    "finetune": finetune,
    "gradient_ascent": gradient_ascent,
    "neggrad_plus": neggrad_plus,
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
) -> None:
    """Apply one unlearning method to each original of a shard (U_i = m(O_i, F_i, D_i \\ F_i)),
    score the unlearned models, and write their scores (and checkpoints, if asked)."""
    if method_name not in METHODS:
        raise ValueError(f"unknown unlearning method {method_name!r}; known: {', '.join(METHODS)}")
    bench = Workbench(data, candidates, device, config_hash)
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
