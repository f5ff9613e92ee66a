"""The built-in unlearning methods, each written once over its task's ``Context``.

finetune, gradient_ascent and neggrad_plus serve both tasks; random_labels, l1_sparse, scrub,
salun and per_example_stop are for classifiers (images), npo for language models (the tasks each
applies to are in umia.registry.METHODS). Settings are ``unlearn.<name>`` in the config.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from umia.methods import Context, Data, steps_of
from umia.tasks.optim import batch_indices
from umia.tasks.score import padded

log = logging.getLogger(__name__)


def descend(ctx: Context, model: nn.Module, data: Data, s: Mapping, gen: torch.Generator) -> None:
    """Minimise the task's loss on ``data`` for ``s["epochs"]`` passes: the optimiser of
    ``ctx`` at ``s["lr"]`` (and ``s["weight_decay"]`` where set), batches of ``s["batch_size"]``."""
    n = ctx.size(data)
    if n == 0:
        return
    bs, total = steps_of(s, n)
    opt = ctx.optimiser(model, s["lr"], total, s.get("weight_decay"))
    model.train()
    for batch in ctx.batches(data, bs, total, gen):
        opt.step(ctx.loss(model, batch))


def finetune(ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator) -> None:
    """Fine-tune on the retain set only: F is forgotten by interference (Golatkar et al. 2020)."""
    descend(ctx, model, retain, s, gen)


def gradient_ascent(
    ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator
) -> None:
    """Gradient ascent on the forget set (NegGrad; Golatkar et al. 2020, Thudi et al. 2022; for
    language models Jang et al., ACL 2023, the TOFU baseline); no weight decay."""
    n = ctx.size(forget)
    if n == 0:
        return
    bs, total = steps_of(s, n)
    opt = ctx.optimiser(model, s["lr"], total, 0.0)
    model.train()
    for batch in ctx.batches(forget, bs, total, gen):
        opt.step(-ctx.loss(model, batch))


def neggrad_plus(ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator) -> None:
    """NegGrad+ (Kurmanji et al., NeurIPS 2023; TOFU's grad_diff): descend on a retain batch while
    ascending on a forget batch, loss = alpha L(retain) - (1 - alpha) L(forget); ``epochs``
    passes over the retain set, forget batches of the same size (one shape)."""
    if ctx.size(forget) == 0:
        return finetune(ctx, model, forget, retain, s, gen)
    bs, total = steps_of(s, ctx.size(retain))
    alpha = s["alpha"]
    opt = ctx.optimiser(model, s["lr"], total)
    model.train()
    pairs = zip(ctx.batches(retain, bs, total, gen), ctx.batches(forget, bs, total, gen), strict=True)
    for br, bf in pairs:
        opt.step(alpha * ctx.loss(model, br) - (1 - alpha) * ctx.loss(model, bf))


def _wrong_labels(y: torch.Tensor, n_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random label other than the true one, for each example."""
    shift = torch.randint(1, n_classes, y.shape, generator=gen, device=y.device)
    return (y + shift) % n_classes


def _relabel_loop(ctx: Context, model, forget: Data, retain: Data, s: Mapping, gen, mask=None, weight_decay=None):
    """Fine-tune on the model's training set D_i with the forget examples relabelled at random
    (a wrong class, drawn anew each time an example is drawn): ``epochs`` passes over D_i, the
    forget examples drawn in their share of it, as in the SalUn reference code."""
    x, y = ctx.cat(forget, retain)
    is_forget = torch.arange(len(x), device=x.device) < ctx.size(forget)
    bs, total = steps_of(s, len(x))
    opt = ctx.optimiser(model, s["lr"], total, weight_decay)
    opt.mask = mask
    model.train()
    for _ in range(total):
        i = torch.randint(0, len(x), (bs,), generator=gen, device=x.device)
        target = torch.where(is_forget[i], _wrong_labels(y[i], ctx.n_classes, gen), y[i])
        opt.step(ctx.loss(model, ctx.augment((x[i], target), gen)))


def random_labels(ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator) -> None:
    """Random labels (Graves et al., AAAI 2021, "Amnesiac Machine Learning"): fine-tune on the
    training set with the forget examples relabelled with random wrong classes."""
    if ctx.size(forget):
        _relabel_loop(ctx, model, forget, retain, s, gen)


def l1_sparse(ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator) -> None:
    """l1-sparse unlearning (Jia et al., NeurIPS 2023, "Model Sparsity Can Simplify Machine
    Unlearning"): fine-tune on the retain set with an L1 penalty gamma_t ||w||_1 on the weights,
    gamma_t decaying linearly from ``l1`` to zero."""
    bs, total = steps_of(s, ctx.size(retain))
    opt = ctx.optimiser(model, s["lr"], total)
    weights = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    model.train()
    for step in range(total):
        gamma = s["l1"] * (1 - step / total)
        opt.step(ctx.loss(model, ctx.sample(retain, bs, gen)) + gamma * sum(w.abs().sum() for w in weights))


def _kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher || student) at temperature t, scaled by t^2 as in distillation."""
    kl = F.kl_div(
        F.log_softmax(student_logits.float() / t, 1),
        F.log_softmax(teacher_logits.float() / t, 1),
        reduction="batchmean",
        log_target=True,
    )
    return kl * t * t


def scrub(ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator) -> None:
    """SCRUB (Kurmanji et al., NeurIPS 2023, "Towards Unbounded Machine Unlearning"): the
    original is a frozen teacher; the student alternates max steps (move away from the teacher
    on the forget set) for the first ``max_epochs`` epochs with min steps (stay close to the
    teacher on the retain set: alpha KL + gamma CE). The max objective is unbounded, so the
    gradient norm is clipped at ``clip`` (0: off)."""
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    bs = min(s["batch_size"], ctx.size(retain))
    n_f = -(-ctx.size(forget) // bs) if ctx.size(forget) else 0
    n_r = -(-ctx.size(retain) // bs)
    opt = ctx.optimiser(model, s["lr"], s["epochs"] * n_r + min(s["max_epochs"], s["epochs"]) * n_f)
    opt.clip = s["clip"]
    t = s["temperature"]
    model.train()
    for epoch in range(s["epochs"]):
        if epoch < s["max_epochs"]:
            for _ in range(n_f):
                batch = ctx.sample(forget, bs, gen)
                with torch.no_grad():
                    target = ctx.logits(teacher, batch)
                opt.step(-_kl(ctx.logits(model, batch), target, t))
        for _ in range(n_r):
            batch = ctx.sample(retain, bs, gen)
            with torch.no_grad():
                target = ctx.logits(teacher, batch)
            out = ctx.logits(model, batch)
            ce = F.cross_entropy(out.float(), batch[1], label_smoothing=s.get("label_smoothing", 0.0))
            opt.step(s["alpha"] * _kl(out, target, t) + s["gamma"] * ce)


def saliency_mask(ctx: Context, model: nn.Module, forget: Data, sparsity: float) -> dict[str, torch.Tensor]:
    """SalUn's weight saliency: the ``sparsity`` share of weights with the largest |gradient| of
    the forget loss (one global threshold over all parameters). Returns a 0/1 mask per parameter."""
    x, y = forget
    model.zero_grad(set_to_none=True)
    model.eval()  # batch statistics of the forget set must not leak into BN running stats
    for i in range(0, len(x), 1024):
        xb, yb = x[i : i + 1024], y[i : i + 1024]
        weight = (torch.arange(len(padded(yb)), device=yb.device) < len(yb)).float()  # padding counts 0
        logits = ctx.logits(model, (padded(xb),)).float()
        (F.cross_entropy(logits, padded(yb), reduction="none") * weight).sum().backward()
    grads = {n: p.grad.abs() for n, p in model.named_parameters() if p.grad is not None}
    flat = torch.cat([g.flatten() for g in grads.values()])
    k = max(1, int(round(sparsity * len(flat))))
    threshold = torch.topk(flat, k, sorted=False).values.min()
    model.zero_grad(set_to_none=True)
    model.train()
    return {
        n: (grads[n] >= threshold).to(p.dtype) if n in grads else torch.zeros_like(p)
        for n, p in model.named_parameters()
    }


def salun(ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator) -> None:
    """SalUn (Fan et al., ICLR 2024, "SalUn: Empowering Machine Unlearning via Gradient-based
    Weight Saliency"): random-label fine-tuning that updates only the salient weights."""
    if ctx.size(forget):
        mask = saliency_mask(ctx, model, forget, s["sparsity"])
        _relabel_loop(ctx, model, forget, retain, s, gen, mask=mask, weight_decay=0.0)


def per_example_stop(
    ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator
) -> None:
    """A naive per-example stopping criterion (Hayes et al. 2024, Sec. "rates of unlearning"):
    NegGrad+ steps, but each forget example leaves the forget set once its phi (mean over the
    views) has fallen to the mean phi that the retrain models give it (``s["target_phi"]``, in
    the order of ``forget``, added by the shard job). Checked every ``check_every`` steps; the run
    stops once no forget example is left."""
    if ctx.size(forget) == 0:
        return
    target = s["target_phi"]
    bs, total = steps_of(s, ctx.size(retain))
    alpha = s["alpha"]
    opt = ctx.optimiser(model, s["lr"], total)
    active = torch.ones(ctx.size(forget), dtype=torch.bool, device=ctx.device)
    model.train()
    for step in range(total):
        if step % s["check_every"] == 0:  # one host sync per check
            active &= ctx.phi(model, forget).mean(0) > target
            if not bool(active.any()):
                log.info("per_example_stop: every forget example reached its retrain mean at step %d/%d", step, total)
                break
        jf = torch.multinomial(active.float(), bs, replacement=True, generator=gen)  # active examples only
        loss_f = ctx.loss(model, ctx.augment(ctx.take(forget, jf), gen))
        opt.step(alpha * ctx.loss(model, ctx.sample(retain, bs, gen)) - (1 - alpha) * loss_f)
    else:
        left = int(active.sum())
        log.info("per_example_stop: %d of %d forget examples still above their retrain mean", left, len(active))


def npo_loss(loglik: torch.Tensor, ref_loglik: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO's loss (Zhang et al., COLM 2024), (2/beta) mean log(1 + (pi/pi_ref)^beta), from sequence
    log-likelihoods of the model and of the reference, (B,) each; written as softplus(beta *
    log-ratio), which is stable; it is (2/beta) log 2 where pi = pi_ref."""
    return (2 / beta) * F.softplus(beta * (loglik - ref_loglik)).mean()


def npo(ctx: Context, model: nn.Module, forget: Data, retain: Data, s: Mapping, gen: torch.Generator) -> None:
    """Negative Preference Optimization (Zhang et al. 2024, "Negative Preference Optimization:
    From Catastrophic Collapse to Effective Unlearning"): minimise ``npo_loss`` over forget
    batches, the reference being the starting model (its log-likelihoods of the forget set are
    computed once, before the first step), plus ``retain_weight`` L(retain) when it is positive
    (NPO+RT)."""
    n = ctx.size(forget)
    if n == 0:
        return
    beta, w = s["beta"], s["retain_weight"]
    bs, total = steps_of(s, n)
    model.eval()
    with torch.no_grad():
        ref = torch.cat([-ctx.loss(model, ctx.take(forget, slice(i, i + bs)), "none") for i in range(0, n, bs)])
    opt = ctx.optimiser(model, s["lr"], total, s.get("weight_decay"))
    idx = batch_indices(n, bs, total, gen).to(ctx.device)
    use_retain = w > 0 and ctx.size(retain) > 0
    retain_batches = ctx.batches(retain, min(s["batch_size"], ctx.size(retain)), total, gen) if use_retain else None
    model.train()
    for step in range(total):
        j = idx[step]
        loss = npo_loss(-ctx.loss(model, ctx.take(forget, j), "none"), ref[j], beta)
        if use_retain:
            loss = loss + w * ctx.loss(model, next(retain_batches))
        opt.step(loss)
