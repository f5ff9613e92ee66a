"""A test plug-in: gradient ascent on the forget set with an Adam optimiser it builds itself
(not ctx.optimiser), declaring its step count with ctx.plan, so the probe must count the steps
of an optimiser umia never saw."""

import torch

from umia.plugins import method


@method(
    settings={"lr": 0.001, "steps": 8},
    checks={"lr": {"exclusiveMinimum": 0}, "steps": {"type": "integer", "minimum": 1}},
)
def adam_ascent(ctx, model, forget, retain, s, gen):
    if ctx.size(forget) == 0:
        return
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    ctx.plan(s["steps"])
    model.train()
    for batch in ctx.batches(forget, 16, s["steps"], gen):
        opt.zero_grad()
        (-ctx.loss(model, batch)).backward()
        opt.step()
