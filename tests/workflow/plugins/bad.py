"""Test plug-ins that break the contract, each in its own way (tests/workflow/test_bad_input.py)."""

import torch

from umia.plugins import method

not_callable = 3


def wrong_args(model, forget):
    """Takes two arguments where a method takes six."""


@method(settings={"lr": 0.1})
def raises(ctx, model, forget, retain, s, gen):
    raise RuntimeError("the plug-in's own bug")


@method()
def nan_weights(ctx, model, forget, retain, s, gen):
    """Leaves non-finite weights, as a method that diverged would."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
