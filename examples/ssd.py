"""Selective Synaptic Dampening as a umia plug-in: an unlearning method that umia does not ship.

J. Foster, S. Schoepf, A. Brintrup. "Fast Machine Unlearning Without Retraining Through Selective
Synaptic Dampening." AAAI 2024 (arXiv 2308.07707).

SSD needs no optimiser steps. It estimates each parameter's importance to the training data D
and to the forget set F as the diagonal of the Fisher information (the mean squared gradient of
the loss), and dampens the parameters that matter far more to F than to D:

    where  I_F[i] > alpha * I_D[i]:   theta[i] <- min(lam * I_D[i] / I_F[i], 1) * theta[i]

The model's training set D_i is the forget set plus the retain set. Run it with

    methods: ["examples/ssd.py:ssd", "examples/ssd.py:ssd@alpha=5"]

It works for images and for text alike: it touches only ``ctx.loss`` and the model's parameters.
"""

import torch

from umia.plugins import method


def importance(ctx, model, data, batch_size):
    """The squared gradient of the loss, averaged over batches, per parameter: the authors'
    estimate of the Fisher diagonal (the batch-mean gradient squared, so it depends on the
    batch size, as theirs does)."""
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    n = ctx.size(data)
    batches = range(0, n, batch_size)
    model.eval()  # no BatchNorm statistics from the forget set, no dropout
    for i in batches:
        model.zero_grad(set_to_none=True)
        # plain cross-entropy, as the paper's: no label smoothing from the training recipe
        ctx.loss(model, ctx.take(data, slice(i, i + batch_size)), label_smoothing=0.0).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                total[name] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    return {name: t / max(1, len(batches)) for name, t in total.items()}


@method(
    settings={"alpha": 10.0, "lam": 1.0, "batch_size": 64},
    checks={
        "alpha": {"exclusiveMinimum": 0},
        "lam": {"exclusiveMinimum": 0},
        "batch_size": {"type": "integer", "minimum": 1},
    },
    label="SSD",
)
def ssd(ctx, model, forget, retain, s, gen):
    """Dampen the parameters specialised to the forget set (Foster et al. 2024)."""
    if ctx.size(forget) == 0:
        return
    i_d = importance(ctx, model, ctx.cat(forget, retain), s["batch_size"])
    i_f = importance(ctx, model, forget, s["batch_size"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in i_f:
                continue
            selected = i_f[name] > s["alpha"] * i_d[name]
            beta = (s["lam"] * i_d[name] / i_f[name].clamp_min(1e-30)).clamp(max=1.0)
            p.mul_(torch.where(selected, beta, torch.ones_like(beta)))
    model.train()
