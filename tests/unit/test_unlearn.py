"""Each unlearning method runs and does what it claims on a small task: an MLP trained to
memorise a digits half, then asked to forget 60 of its training examples.

What "does what it claims" means here: every method raises the loss of the forget set relative
to `none` (the original) by at least 0.02 nats and 1.5x more than it raises the loss of the
retain set, and keeps
retain accuracy within a few points of the original's. The strengths are the test's own (strong
enough to see the effect on 60 examples in a few steps); the defaults are tuned in the configs.

Also here: the methods' contract (umia.methods: Context, Probe, resolve), the trajectory's
points, and the unlearning shard job (umia.stages.shards.unlearn_shard) on the digits originals of
conftest's ``digits_originals``.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.unit.conftest import DIGITS_RECIPE
from umia import io, methods, plan, plugins, registry
from umia.methods import Context, Probe, builtin, steps_of
from umia.methods.builtin import saliency_mask
from umia.stages.shards import finish_trajectory, load_models, retrain_means, trajectory_frame, unlearn_shard
from umia.tasks.image.task import ImageTask, Recipe, fit
from umia.tasks.score import padded, phi_loss

SETTINGS = {
    "finetune": dict(epochs=30, lr=0.2, batch_size=64),
    "gradient_ascent": dict(epochs=6, lr=0.04, batch_size=32),
    "neggrad_plus": dict(epochs=5, lr=0.05, batch_size=64, alpha=0.8),
    "random_labels": dict(epochs=2, lr=0.02, batch_size=64),
    "l1_sparse": dict(epochs=15, lr=0.2, batch_size=64, l1=5e-4),
    "scrub": dict(epochs=5, max_epochs=4, lr=0.4, batch_size=64, alpha=0.5, gamma=1.0, temperature=4.0, clip=1.0),
    "salun": dict(epochs=2, lr=0.02, batch_size=64, sparsity=0.5),
}


@pytest.fixture(scope="module")
def trained(digits):
    """(task, original, forget mask, retain mask): an MLP of width 128 trained on model 0's half
    of the digits pool; its first 60 training examples are the forget set. One view (identity)."""
    torch.manual_seed(0)
    task = ImageTask(str(digits), None, "cpu", None, network="mlp", width=128, views=("identity",))
    train = torch.from_numpy(plan.train_mask(0, 0, task.n_pool))
    idx = torch.nonzero(train).flatten()
    forget = torch.zeros_like(train)
    forget[idx[:60]] = True
    retain = train & ~forget
    model = task.new_model(1)
    fit(
        task,
        model,
        task.x_pool[train],
        task.y_pool[train],
        Recipe(epochs=60, lr=0.05, width=128),
        task.generator(0),
    )
    return task, model, forget, retain


def _losses(task, model, forget, retain):
    model.eval()
    with torch.no_grad():
        _, loss, correct = phi_loss(model(task.x_pool), task.y_pool)
    return loss[forget].mean().item(), loss[retain].mean().item(), correct[retain].float().mean().item()


def _pairs(task, forget, retain):
    return task.pool(forget), task.pool(retain)


def _unlearn(task, name, model, forget, retain, s, gen, probe=None) -> Context:
    """Run method ``name`` (resolved as the shard job does) on ``model`` in place; returns its context."""
    fn, _, s = methods.resolve(name, s)
    ctx = Context(task, s, probe)
    model.train()
    fn(ctx, model, *_pairs(task, forget, retain), s, gen)
    return ctx


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ------------------------------------------------------------------------------------ registry
def test_every_registered_method_resolves_to_a_function_of_the_contract(schema):
    for name, spec in registry.METHODS.items():
        fn, got, s = methods.resolve(name, {"lr": 1.0})
        assert got is spec and s == {"lr": 1.0}, name
        assert fn is getattr(builtin, name), name
        assert tuple(inspect.signature(fn).parameters) == plugins.METHOD_ARGS, name
        assert spec.tasks and set(spec.tasks) <= set(registry.TASKS), name
    assert set(schema["properties"]["unlearn"]["properties"]) == set(registry.METHODS)
    image = {m for m, spec in registry.METHODS.items() if "image" in spec.tasks}
    text = {m for m, spec in registry.METHODS.items() if "text" in spec.tasks}
    assert image == set(SETTINGS) | {"per_example_stop"}  # each is tested below
    assert text == {"finetune", "gradient_ascent", "neggrad_plus", "npo", "per_example_stop"}  # tested in test_text.py
    assert [m for m, spec in registry.METHODS.items() if spec.needs_retrain_scores] == ["per_example_stop"]


def test_resolve_a_plugin_adds_its_declared_defaults(tmp_path):
    path = tmp_path / "ascent.py"
    path.write_text(
        "from umia.plugins import method\n\n"
        "@method(settings={'lr': 0.1, 'steps': 3}, tasks=('image',), needs_retrain_scores=True)\n"
        "def ascent(ctx, model, forget, retain, s, gen):\n"
        "    pass\n"
    )
    fn, spec, s = methods.resolve(f"{path}:ascent", {"lr": 0.5, "flip": True})
    assert fn.__name__ == "ascent" and s == {"lr": 0.5, "steps": 3, "flip": True}
    assert spec.tasks == ("image",) and spec.needs_retrain_scores


# ------------------------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_method_forgets_the_forget_set_and_keeps_the_rest(trained, name):
    task, original, forget, retain = trained
    f0, r0, acc0 = _losses(task, original, forget, retain)
    model = copy.deepcopy(original)
    _unlearn(task, name, model, forget, retain, SETTINGS[name], task.generator(3))
    f1, r1, acc1 = _losses(task, model, forget, retain)
    assert all(np.isfinite([f1, r1]))
    assert f1 - f0 > 1.5 * (r1 - r0) and f1 - f0 > 0.02, (f0, f1, r0, r1)
    assert acc1 > acc0 - 0.05, (acc0, acc1)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_methods_are_deterministic(trained, name):
    """The generator is a method's only source of randomness: the same seed, the same model."""
    task, original, forget, retain = trained
    s = dict(SETTINGS[name], epochs=min(SETTINGS[name]["epochs"], 2))
    if name == "scrub":
        s["max_epochs"] = 1
    out = []
    for seed in (7, 7, 8):
        model = copy.deepcopy(original)
        _unlearn(task, name, model, forget, retain, s, task.generator(seed))
        out.append(_flat(model))
    assert torch.equal(out[0], out[1])
    assert not torch.equal(out[0], out[2])


def test_gradient_ascent_known_answer_of_two_full_batch_steps(trained):
    """A linear classifier, a forget set in one batch (its order cannot matter) and 2 epochs: two
    SGD steps on -CE, Nesterov momentum 0.9, no weight decay, learning rate factors 1 and 1/2
    (warmup 0: the decay 1 - step/2 starts at once). With g_t the CE gradient at step t:
    w1 = w0 + lr (g0 + 0.9 g0), w2 = w1 + lr/2 (g1 + 0.9 (0.9 g0 + g1))."""
    task, _, forget, _ = trained
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    xf, yf = task.pool(forget)

    def grad(m):
        m.zero_grad()
        F.cross_entropy(m(xf), yf).backward()
        return [p.grad.detach().clone() for p in m.parameters()]

    lr, w0 = 0.5, [p.detach().clone() for p in model.parameters()]
    hand = copy.deepcopy(model)
    g0 = grad(hand)
    with torch.no_grad():
        for p, g in zip(hand.parameters(), g0, strict=True):
            p += lr * 1.9 * g
    g1 = grad(hand)
    want = [
        w + lr * 1.9 * a + lr / 2 * (b + 0.9 * (0.9 * a + b)) for w, a, b in zip(w0, g0, g1, strict=True)
    ]  # w2 from w0
    s = {"epochs": 2, "lr": lr, "batch_size": 1000}
    probe = Probe(2, lambda *a: None)
    with probe.active(model):
        builtin.gradient_ascent(Context(task, s, probe), model, (xf, yf), task.pool(~forget), s, task.generator(0))
    assert probe.steps == probe.planned == 2
    for p, w in zip(model.parameters(), want, strict=True):
        torch.testing.assert_close(p.detach(), w, rtol=1e-4, atol=1e-5)


def test_salun_changes_only_salient_weights(trained):
    task, original, forget, retain = trained
    mask = saliency_mask(Context(task), copy.deepcopy(original), task.pool(forget), 0.3)
    share = sum(m.sum().item() for m in mask.values()) / sum(m.numel() for m in mask.values())
    assert share == pytest.approx(0.3, abs=0.01)
    model = copy.deepcopy(original)
    _unlearn(task, "salun", model, forget, retain, dict(SETTINGS["salun"], sparsity=0.3), task.generator(3))
    for (name, p0), p1 in zip(original.named_parameters(), model.parameters(), strict=True):
        moved = p0 != p1
        assert not (moved & (mask[name] == 0)).any(), name
        assert moved.any(), name


def test_padded_forget_passes_equal_unpadded(trained):
    """task.phi and the saliency gradient pad the forget set to a multiple of 256 rows (one cuDNN
    plan for all models); the padding changes neither the scores nor the gradient."""
    task, original, forget, _ = trained
    xf, yf = task.pool(forget)  # 60 rows: padded to 256
    assert len(padded(xf)) == 256 and torch.equal(padded(xf)[60:120], xf) and len(padded(xf[:0])) == 0
    assert len(padded(torch.zeros(512, 3))) == 512
    model = copy.deepcopy(original).eval()
    with torch.no_grad():
        direct = phi_loss(model(xf), yf)[0]
    torch.testing.assert_close(task.phi(model, (xf, yf))[0], direct)
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(xf), yf, reduction="sum").backward()
    grads = torch.cat([p.grad.abs().flatten() for p in model.parameters()])
    k = int(round(0.3 * len(grads)))
    want = grads >= torch.topk(grads, k).values.min()
    mask = saliency_mask(Context(task), copy.deepcopy(original), (xf, yf), 0.3)
    assert torch.equal(torch.cat([m.flatten() for m in mask.values()]).bool(), want)


def test_padded_passes_with_batchnorm_and_several_chunks(tmp_path):
    """A network with BatchNorm (statistics of the batch would mix padded rows in) and 1,100 forget
    rows (chunks of 1,024 and 76, the second padded to 256): the scores and the saliency mask equal
    those of one unpadded eval-mode pass."""
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "data.npz",
        x_train=rng.integers(0, 256, (1100, 16, 16, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, 1100),
        x_test=rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8),
        y_test=np.arange(10),
    )
    task = ImageTask(str(tmp_path / "data.npz"), None, "cpu", None, network="fastcnn", width=16, views=("identity",))
    x, y = task.x_pool, task.y_pool
    net = task.new_model(0, x)
    net.train()
    with torch.no_grad():
        net(x)  # BatchNorm running statistics away from their init
    net.eval()
    with torch.no_grad():
        direct = phi_loss(net(x), y)[0]
    torch.testing.assert_close(task.phi(net, (x, y))[0], direct, rtol=1e-4, atol=1e-4)
    assert not net.training  # phi leaves the mode as it found it
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y, reduction="sum").backward()
    grads = torch.cat([p.grad.abs().flatten() for p in net.parameters() if p.grad is not None])
    mask = saliency_mask(Context(task), copy.deepcopy(net), (x, y), 0.3)
    got = torch.cat([m.flatten() for n, m in mask.items() if dict(net.named_parameters())[n].grad is not None])
    threshold = torch.topk(grads, int(round(0.3 * len(grads)))).values.min()
    # equal up to rounding at the threshold: the chunked sum may reorder additions
    agree = (got.bool() == (grads >= threshold)).float().mean()
    assert agree > 0.999


STOP = dict(epochs=4, lr=0.1, batch_size=64, alpha=0.85, check_every=5)


def test_per_example_stop_stops_when_every_example_is_at_its_retrain_mean(trained):
    task, original, forget, retain = trained
    model = copy.deepcopy(original)
    settings = dict(STOP, target_phi=torch.full((int(forget.sum()),), float("inf")))
    probe = Probe(4, lambda *a: None)
    with probe.active(model):
        _unlearn(task, "per_example_stop", model, forget, retain, settings, task.generator(3), probe)
    assert probe.steps == 0
    for p0, p1 in zip(original.parameters(), model.parameters(), strict=True):
        assert torch.equal(p0, p1)


@dataclass
class _Watched(Context):
    """A context that keeps the phi of every check a method makes (ctx.phi), view-mean."""

    checks: list[torch.Tensor] = field(default_factory=list)

    def phi(self, model, data):
        out = super().phi(model, data)
        self.checks.append(out.mean(0))
        return out


def test_per_example_stop_drops_examples_and_forgets(trained):
    task, original, forget, retain = trained
    f0, r0, _ = _losses(task, original, forget, retain)
    xf, yf = task.pool(forget)
    phi0 = task.phi(original, (xf, yf)).mean(0)
    total = steps_of(STOP, int(retain.sum()))[1]
    # never reachable: the full NegGrad+ run. Five examples a little below where they start, the
    # rest already there: the ascent concentrates on those five, and the run stops early
    near = torch.full_like(phi0, float("inf"))
    near[:5] = phi0[:5] - 0.2
    for target, full in ((torch.full_like(phi0, -float("inf")), True), (near, False)):
        model = copy.deepcopy(original)
        settings = dict(STOP, target_phi=target)
        probe = Probe(4, lambda *a: None)
        fn, _, settings = methods.resolve("per_example_stop", settings)
        ctx = _Watched(task, settings, probe)
        with probe.active(model):
            fn(ctx, model, (xf, yf), task.pool(retain), settings, task.generator(3))
        f1, r1, _ = _losses(task, model, forget, retain)
        assert probe.planned == total
        assert (probe.steps == probe.planned) == full, (probe.steps, probe.planned)
        # a check every check_every (5) steps, the first before any step; an early stop right after one
        assert len(ctx.checks) == (-(-total // 5) if full else probe.steps // 5 + 1)
        if full:  # NegGrad+ all the way
            assert f1 - f0 > 0.02 and f1 - f0 > 1.5 * (r1 - r0), (f0, f1, r0, r1)
        else:  # it stopped early, at the first check by which every example had reached its target
            assert probe.steps % 5 == 0
            reached = torch.stack(ctx.checks) <= target  # (checks, n_forget): an example leaves once there
            assert bool(reached.any(0).all()) and not bool(reached[:-1].any(0).all())
            # no step after that check: the model is the one it scored (an example that left
            # earlier may have risen again since: it is no longer pushed down)
            torch.testing.assert_close(task.phi(model, (xf, yf)).mean(0), ctx.checks[-1])


# ------------------------------------------------------------------------------- the context
def test_context_batches_are_seeded_passes_of_one_shape(trained):
    """Batches of 4 out of 10 examples for 6 steps: 24 draws, two whole passes and a part of a
    third, each pass without replacement; the same generator seed gives the same batches."""
    task = trained[0]
    x = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 8, 8).contiguous()
    data = (x, torch.arange(10))
    ctx = Context(task, {"flip": False, "translate": 0})
    got = list(ctx.batches(data, 4, 6, task.generator(0)))
    assert len(got) == 6
    for xb, yb in got:
        assert xb.shape == (4, 1, 8, 8) and yb.shape == (4,) and yb.dtype == torch.int64
        assert torch.equal(xb[:, 0, 0, 0].long(), yb)  # images and labels stay paired
    order = torch.cat([yb for _, yb in got])
    assert sorted(order[:10].tolist()) == list(range(10)) and sorted(order[10:20].tolist()) == list(range(10))
    again = list(ctx.batches(data, 4, 6, task.generator(0)))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, again, strict=True))
    other = torch.cat([yb for _, yb in ctx.batches(data, 4, 6, task.generator(1))])
    assert not torch.equal(order, other)
    # the recipe's augmentation is applied to each batch: flips of the example itself
    img = torch.randn(10, 1, 8, 8)
    flipped = Context(task, {"flip": True, "translate": 0})
    for xb, yb in flipped.batches((img, torch.arange(10)), 5, 4, task.generator(2)):
        assert all(torch.equal(xb[i], img[yb[i]]) or torch.equal(xb[i], img[yb[i]].flip(-1)) for i in range(5))
    assert ctx.size(data) == 10 and torch.equal(ctx.take(data, torch.tensor([3, 1]))[1], torch.tensor([3, 1]))
    assert torch.equal(ctx.cat(data, data)[1], torch.cat([data[1], data[1]]))
    xs, ys = ctx.sample(data, 7, task.generator(0))
    assert xs.shape == (7, 1, 8, 8) and torch.equal(xs[:, 0, 0, 0].long(), ys)


def test_context_optimiser_declares_its_steps(trained):
    task, original, _, _ = trained
    probe = Probe(4, lambda *a: None)
    ctx = Context(task, {}, probe)
    opt = ctx.optimiser(copy.deepcopy(original), 0.2, 7)
    ctx.plan(3)  # a second optimiser, or a method's own, adds its steps
    assert probe.planned == 10
    group = opt.torch.param_groups[0]
    assert isinstance(opt.torch, torch.optim.SGD) and group["nesterov"] and group["momentum"] == 0.9
    assert group["weight_decay"] == 5e-4
    assert ctx.optimiser(original, 0.2, 7, weight_decay=0.0).torch.param_groups[0]["weight_decay"] == 0.0
    f = opt.scheduler.lr_lambdas[0]
    assert [f(k) for k in range(8)] == pytest.approx([1 - k / 7 for k in range(8)])
    Context(task).plan(5)  # no probe: nothing to declare to


# ------------------------------------------------------------------------------------ the probe
def test_probe_points_fire_at_fractions_of_each_run_and_change_nothing(trained):
    task, original, forget, retain = trained
    s = SETTINGS["neggrad_plus"]
    seen = []
    models = []
    for probed in (True, False):
        model = copy.deepcopy(original)
        if probed:
            probe = Probe(4, lambda k, step, total: seen.append((k, step, total)))
            with probe.active(model):
                _unlearn(task, "neggrad_plus", model, forget, retain, s, task.generator(5), probe)
        else:
            _unlearn(task, "neggrad_plus", model, forget, retain, s, task.generator(5))
        models.append(_flat(model))
    total = round(s["epochs"] * math.ceil(int(retain.sum()) / s["batch_size"]))
    assert seen == [(k, round(k * total / 4), total) for k in (1, 2, 3)]
    assert probe.steps == probe.planned == total
    assert torch.equal(models[0], models[1])  # scoring mid-run leaves the run unchanged
    # the hook is gone after the block: the same probe, outside it, counts nothing
    seen.clear()
    _unlearn(task, "neggrad_plus", copy.deepcopy(original), forget, retain, s, task.generator(5), probe)
    assert seen == [] and probe.steps == total


def _adam_ascent(steps: int, declare: bool):
    """A method with a torch Adam it builds itself (not ctx.optimiser), declaring its steps or not."""

    def adam_ascent(ctx, model, forget, retain, s, gen):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        if declare:
            ctx.plan(steps)
        model.train()
        for batch in ctx.batches(forget, 16, steps, gen):
            opt.zero_grad()
            (-ctx.loss(model, batch)).backward()
            opt.step()

    return adam_ascent


def test_probe_counts_the_steps_of_an_optimiser_built_by_hand(trained):
    """10 declared steps, 4 points: at round(2.5) = 2 (Python rounds half to even), 5 and
    round(7.5) = 8 steps."""
    task, original, forget, retain = trained
    seen = []
    probe = Probe(4, lambda *a: seen.append(a))
    model = copy.deepcopy(original)
    with probe.active(model):
        method = _adam_ascent(10, True)
        method(Context(task, {}, probe), model, *_pairs(task, forget, retain), {}, task.generator(0))
    assert seen == [(1, 2, 10), (2, 5, 10), (3, 8, 10)]
    assert (probe.steps, probe.planned) == (10, 10)


def test_an_undeclared_plan_gives_only_end_points(trained):
    task, original, forget, retain = trained
    seen = []
    probe = Probe(4, lambda *a: seen.append(a))
    model = copy.deepcopy(original)
    with probe.active(model):
        _adam_ascent(10, False)(Context(task, {}, probe), model, *_pairs(task, forget, retain), {}, task.generator(0))
    assert seen == [] and (probe.steps, probe.planned) == (10, 0)  # steps counted, no point reached
    ids = np.flatnonzero(forget.numpy())
    records = [(0, ids, 0, 0, 0, np.zeros((1, len(ids))))]
    final = task.phi(model, task.pool(forget)).numpy()
    finish_trajectory(records, 0, ids, 4, probe, final)
    assert [r[2] for r in records] == [0, 1, 2, 3, 4]
    assert all(r[3] == 10 and r[4] == 0 for r in records[1:])
    # no plan, no fraction of the run to place the middle points at: NaN there, the end is the end
    assert all(np.isnan(r[5]).all() for r in records[1:4]) and records[4][5] is final


def test_probe_fires_every_point_even_where_points_share_a_step():
    """2 planned steps, 4 points: points 1 and 2 fall on step max(1, round(0.5)) = round(1.0) = 1,
    point 3 on round(1.5) = 2."""
    seen = []
    probe = Probe(4, lambda *a: seen.append(a))
    probe.plan(2)
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with probe.active(net):
        for _ in range(3):  # one step more than planned: no point left to fire
            opt.zero_grad()
            net(torch.ones(1, 2)).sum().backward()
            opt.step()
    assert seen == [(1, 1, 2), (2, 1, 2), (3, 2, 2)] and probe.steps == 3


# ------------------------------------------------------------------------------- trajectories
def test_trajectory_frame_long_format():
    ids = np.array([4, 9])
    records = [
        (3, ids, 0, 0, 0, np.array([[1.0, 2.0], [3.0, 4.0]])),
        (3, ids, 2, 7, 10, np.array([[0.5, 0.0], [1, 1]])),
    ]
    df = trajectory_frame(records, "m", ["identity", "mirror"], 2)
    assert list(df["example_id"]) == [4, 9, 4, 9, 4, 9, 4, 9]
    assert list(df["view"][:4]) == ["identity", "identity", "mirror", "mirror"]
    assert list(df["fraction"]) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert list(df["phi"]) == [1, 2, 3, 4, 0.5, 0, 1, 1]
    assert list(df["step"][4:]) == [7] * 4 and list(df["total_steps"][4:]) == [10] * 4


def test_finish_trajectory_fills_the_points_a_stopped_run_never_reached():
    ids = np.array([3, 5])
    records = [(7, ids, 0, 0, 0, np.zeros((1, 2))), (7, ids, 1, 10, 100, np.ones((1, 2)))]
    final = np.full((1, 2), 2.0)
    finish_trajectory(records, 7, ids, 4, Probe(4, lambda *a: None, steps=30, planned=100), final)
    assert [r[2] for r in records] == [0, 1, 2, 3, 4]
    assert all(r[3] == 30 and r[5] is final for r in records[2:])  # the stopped run's last state
    df = trajectory_frame(records, "m", ["identity"], 4)
    assert list(df["fraction"]) == [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1]


def test_retrain_means_average_models_and_views_per_pool_example(tmp_path):
    def scores(model_id, phi):  # examples 0, 1 (pool), 2 (test); two views
        n = len(phi) // 2
        return pd.DataFrame(
            {
                "model_id": model_id,
                "stage": "retrain",
                "method": "retrain",
                "example_id": np.tile(np.arange(n), 2),
                "split": np.tile(["pool", "pool", "test"][:n], 2),
                "label": 0,
                "view": np.repeat(["identity", "mirror"], n),
                "phi": phi,
                "loss": 0.0,
                "correct": True,
            }
        )

    io.write_table(scores(0, [1.0, 2.0, 9.0, 3.0, np.nan, 9.0]), tmp_path / "a.parquet", io.SCORES, "h")
    io.write_table(scores(1, [5.0, np.inf, 9.0, 7.0, 4.0, 9.0]), tmp_path / "b.parquet", io.SCORES, "h")
    got = retrain_means([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], 4, "h")
    # example 0: (1 + 3 + 5 + 7) / 4; example 1: only the finite 2 and 4; 2 is a test example
    # (not read), 3 has no score
    np.testing.assert_array_equal(got, [4.0, 3.0, np.nan, np.nan])


# ------------------------------------------------------------------------------- the shard job
NEGGRAD = {"epochs": 2, "lr": 0.05, "batch_size": 64, "alpha": 0.8, "label_smoothing": 0.0, "flip": False}


def _unlearn_job(originals, out, method, method_name, settings, **change):
    job = {**originals["job"], **change}
    unlearn_shard(
        task="image",
        data=originals["data"],
        candidates=originals["candidates"],
        originals=originals["ckpt"],
        outputs=out,
        method=method,
        method_name=method_name,
        settings=settings,
        rate_points=4,
        **job,
    )


def _forget_ids(originals, model_id: int) -> np.ndarray:
    cand = pq.read_table(originals["candidates"]).column("example_id").to_numpy()
    train = plan.train_mask(originals["job"]["seed"], model_id, 1347)
    return np.flatnonzero(plan.forget_mask(train, cand))


def test_unlearn_shard_writes_scores_trajectory_and_checkpoint(digits_originals, tmp_path):
    o = digits_originals
    originals = pq.read_table(o["scores"]).to_pandas()
    assert sorted(originals["model_id"].unique()) == [0, 1] and set(originals["stage"]) == {"original"}
    assert len(originals) == 2 * 2 * 1797 and set(originals["method"]) == {"none"}
    out = {k: str(tmp_path / f"u.{k}") for k in ("scores", "trajectory", "ckpt")}
    _unlearn_job(o, out, "neggrad_plus@lr=0.05", "neggrad_plus", NEGGRAD)
    scores = io.read_table(out["scores"], io.SCORES, "digits-h").to_pandas()
    assert io.PROVENANCE_KEY in pq.read_schema(out["scores"]).metadata
    assert sorted(scores["model_id"].unique()) == [0, 1] and set(scores["stage"]) == {"unlearned"}
    assert set(scores["method"]) == {"neggrad_plus@lr=0.05"} and len(scores) == 2 * 2 * 1797
    traj = io.read_table(out["trajectory"], io.TRAJECTORY, "digits-h").to_pandas()
    assert set(traj["method"]) == {"neggrad_plus@lr=0.05"}
    for model_id in (0, 1):
        ids = _forget_ids(o, model_id)
        n_retain = int(plan.train_mask(0, model_id, 1347).sum()) - len(ids)
        total = steps_of(NEGGRAD, n_retain)[1]  # 2 epochs of batches of 64 over D_i minus F_i
        assert total == 2 * math.ceil(n_retain / 64)
        t = traj[traj["model_id"] == model_id]
        assert sorted(t["point"].unique()) == [0, 1, 2, 3, 4]
        steps = t.groupby("point")[["step", "total_steps", "fraction"]].first()
        assert steps["step"].tolist() == [0, *(round(k * total / 4) for k in (1, 2, 3)), total]
        assert steps["total_steps"].tolist() == [0, total, total, total, total]
        assert steps["fraction"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]
        for point, table, tol in ((0, originals, 1e-5), (4, scores, 0)):
            p = t[t["point"] == point].sort_values(["view", "example_id"])
            assert p["example_id"].tolist() == [*ids, *ids] and p["view"].tolist() == ["identity"] * len(ids) + [
                "mirror"
            ] * len(ids)
            want = table[(table["model_id"] == model_id) & table["example_id"].isin(ids)]
            want = want.sort_values(["view", "example_id"])["phi"].to_numpy()
            np.testing.assert_allclose(p["phi"].to_numpy(), want, rtol=tol, atol=tol)
        assert not np.allclose(t.loc[t["point"] == 0, "phi"], t.loc[t["point"] == 4, "phi"])
    states, meta = load_models(out["ckpt"], torch.device("cpu"))
    assert sorted(states) == [0, 1]
    assert meta["stage"] == "unlearned" and meta["method"] == "neggrad_plus@lr=0.05" and meta["network"] == "mlp"
    # a rerun (the generator is seeded by the experiment seed, the method and the model) is the same
    again = {k: str(tmp_path / f"again.{k}") for k in ("scores", "trajectory")}
    _unlearn_job(o, again, "neggrad_plus@lr=0.05", "neggrad_plus", NEGGRAD)
    pd.testing.assert_frame_equal(io.read_table(again["trajectory"], io.TRAJECTORY, "digits-h").to_pandas(), traj)
    pd.testing.assert_frame_equal(io.read_table(again["scores"], io.SCORES, "digits-h").to_pandas(), scores)


def test_an_unlearning_job_over_two_training_shards_gives_the_same_models(digits_originals, tmp_path):
    """unlearn_shard_size = 2 x shard_size: one job reads both training shards' checkpoints; each
    model comes out as the job of its own training shard makes it (seeds are per model)."""
    from umia.stages.shards import train_shard

    o = digits_originals
    second = {"scores": str(tmp_path / "original-1.parquet"), "ckpt": str(tmp_path / "original-1.pt")}
    job = {**o["job"], "shard": 1}
    train_shard(
        task="image", data=o["data"], candidates=o["candidates"], outputs=second, stage="original",
        recipe=DIGITS_RECIPE, **job,
    )  # fmt: skip
    both = {k: str(tmp_path / f"both.{k}") for k in ("scores", "trajectory")}
    unlearn_shard(
        task="image", data=o["data"], candidates=o["candidates"], originals=[o["ckpt"], second["ckpt"]],
        outputs=both, method="neggrad_plus", method_name="neggrad_plus", settings=NEGGRAD, rate_points=4,
        **{**o["job"], "shard_size": 4},
    )  # fmt: skip
    alone = {}
    for shard, ckpt in ((0, o["ckpt"]), (1, second["ckpt"])):
        out = {k: str(tmp_path / f"alone-{shard}.{k}") for k in ("scores", "trajectory")}
        _unlearn_job({**o, "ckpt": ckpt}, out, "neggrad_plus", "neggrad_plus", NEGGRAD, shard=shard)
        alone[shard] = out
    for table, schema in (("scores", io.SCORES), ("trajectory", io.TRAJECTORY)):
        got = io.read_table(both[table], schema, "digits-h").to_pandas()
        assert sorted(got["model_id"].unique()) == [0, 1, 2, 3]
        want = pd.concat([io.read_table(alone[s][table], schema, "digits-h").to_pandas() for s in (0, 1)])
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True))


PLUGIN = """
import torch
from umia.plugins import method


@method(settings={"steps": 6, "declare": True})
def adam_ascent(ctx, model, forget, retain, s, gen):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if s["declare"]:
        ctx.plan(s["steps"])
    model.train()
    for batch in ctx.batches(forget, 8, s["steps"], gen):
        opt.zero_grad()
        (-ctx.loss(model, batch)).backward()
        opt.step()
"""


def test_unlearn_shard_probes_a_plugin_and_warns_of_an_undeclared_plan(digits_originals, tmp_path, caplog):
    path = tmp_path / "adam_ascent.py"
    path.write_text(PLUGIN)
    frames = {}
    for declare in (True, False):
        out = {k: str(tmp_path / f"{declare}.{k}") for k in ("scores", "trajectory")}
        with caplog.at_level(logging.WARNING, logger="umia.stages.shards"):
            _unlearn_job(digits_originals, out, "adam_ascent", f"{path}:adam_ascent", {"declare": declare})
        frames[declare] = pq.read_table(out["trajectory"]).to_pandas()
        warned = "declared none (ctx.plan): the trajectory has only its ends" in caplog.text
        assert warned == (not declare)
        caplog.clear()
    steps = frames[True].groupby("point")[["step", "total_steps"]].first()
    assert steps["step"].tolist() == [0, 2, 3, 4, 6] and steps["total_steps"].tolist() == [0, 6, 6, 6, 6]
    t = frames[False]
    steps = t.groupby("point")[["step", "total_steps"]].first()
    assert steps["step"].tolist() == [0, 6, 6, 6, 6] and steps["total_steps"].tolist() == [0] * 5
    end = t[t["point"] == 4]["phi"].to_numpy()
    for point in (1, 2, 3):  # only the ends: no fraction of the run to place a middle point at
        assert t[t["point"] == point]["phi"].isna().all()
    assert np.isfinite(end).all()
    # the same steps either way: declaring only adds the middle points
    np.testing.assert_array_equal(frames[True][frames[True]["point"] == 4]["phi"].to_numpy(), end)


def test_probe_counts_only_the_optimisers_of_the_model_it_watches():
    """A method that also trains something else (a teacher, a probe) does not move the points."""
    seen = []
    probe = Probe(2, lambda *a: seen.append(a))
    probe.plan(2)
    net, other = nn.Linear(2, 1), nn.Linear(2, 1)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (net, other)]
    with probe.active(net):
        for _ in range(2):
            for m, opt in zip((net, other), opts, strict=True):
                opt.zero_grad()
                m(torch.ones(1, 2)).sum().backward()
                opt.step()
    assert probe.steps == 2 and seen == [(1, 1, 2)]
