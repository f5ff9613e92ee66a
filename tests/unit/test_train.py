"""Training internals: Lookahead, the schedule, the optimiser (its groups and its step), seeded
batch indices, epoch augmentation, the stem-bias freeze, determinism of fit on the CPU, and the
image task's shard job (umia.stages.shards.train_shard)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import umia
from umia.runtime import provenance
from umia.tasks.image import networks as models
from umia.tasks.image.recipe import EpochAugmenter, Lookahead, Recipe, augment, fit
from umia.tasks.image.task import ImageTask
from umia.tasks.image.task import test_accuracy as accuracy
from umia.tasks.optim import Optimiser, batch_indices, schedule, sgd


class _Bench:
    """The part of an ImageTask that fit and test_accuracy use, on the CPU."""

    def __init__(self, x_test=None, y_test=None):
        self.device = torch.device("cpu")
        self.autocast = torch.autocast("cpu", enabled=False)
        self.x_test, self.y_test = x_test, y_test
        self.n_test = 0 if y_test is None else len(y_test)


def test_lookahead_known_answer():
    """One weight w and one buffer; every 2 steps slow += (1 - d)(w - slow), w = slow."""
    net = nn.Linear(1, 1, bias=False)
    net.register_buffer("stat", torch.zeros(1))
    net.weight.data.fill_(0.0)
    la = Lookahead(net, every=2, total=4, decay=0.5)
    net.weight.data.fill_(1.0)
    net.stat.fill_(2.0)
    la.step(1)  # not a multiple of 2: nothing
    assert net.weight.item() == 1.0
    la.step(2)  # d = 0.5^2 (2/4)^3 = 1/32: slow = 0 + (31/32)(1 - 0)
    assert net.weight.item() == pytest.approx(31 / 32)
    assert net.stat.item() == pytest.approx(2 * 31 / 32)
    net.weight.data.fill_(3.0)
    la.step(3)
    la.finish()  # ends on the slow copy: step 3's weights are dropped
    assert net.weight.item() == pytest.approx(31 / 32)
    net.weight.data.fill_(3.0)
    la.step(4)  # d = 0.25: slow = 31/32 + 0.75 (3 - 31/32)
    assert net.weight.item() == pytest.approx(31 / 32 + 0.75 * (3 - 31 / 32))


def test_lookahead_skips_integer_buffers():
    net = nn.BatchNorm2d(3)
    la = Lookahead(net, every=1, total=1)
    assert len(la.slow) == 4  # weight, bias, running mean and var; not num_batches_tracked


def test_schedule_default_unchanged_and_triangle():
    f = schedule(10, 0.2)  # rise over 2 steps from 0, decay to 0
    assert [f(i) for i in range(11)] == [0.5, 1.0] + [(10 - i) / 8 for i in range(2, 11)]
    g = schedule(100, 0.23, start=0.2, end=0.07)
    assert g(0) == pytest.approx(0.2 + 0.8 / 23)
    assert g(22) == pytest.approx(1.0)
    assert g(100) == pytest.approx(0.07)
    assert g(61) == pytest.approx(0.07 + 0.93 * 39 / 77)


def test_schedule_without_warmup_has_no_rise_step():
    """warmup=0: the decay starts at step 0, factor 1 - step/total (the unlearning methods' schedule).
    (The former image schedule spent step 0 on a one-step "rise" to 1, so steps 0 and 1 both had
    factor 1 and the decay took total - 1 steps: [1, 1, 2/3, 1/3, 0] for total 4.)"""
    f = schedule(4, 0.0)
    assert [f(i) for i in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]  # held at `end` past total
    g = schedule(4, 0.0, end=0.2)
    assert [g(i) for i in range(5)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    c = schedule(4, 0.0, decay="cosine")  # 0.5 (1 + cos(pi step / total))
    assert [c(i) for i in range(5)] == pytest.approx([1.0, 0.5 + 0.25 * 2**0.5, 0.5, 0.5 - 0.25 * 2**0.5, 0.0])
    w = schedule(10, 0.2, decay="cosine")  # rise over 2 steps, then a cosine over the other 8
    assert [w(i) for i in range(3)] == [0.5, 1.0, 1.0]
    assert w(6) == pytest.approx(0.5) and w(10) == pytest.approx(0.0, abs=1e-12)
    one = schedule(1, 0.0)
    assert (one(0), one(1)) == (1.0, 0.0)


def _lrs(opt: Optimiser, steps: int) -> list[list[float]]:
    """The learning rate of each group at steps 0 .. steps - 1 of the optimiser's schedule."""
    sched = opt.scheduler
    return [[base * f(k) for base, f in zip(sched.base_lrs, sched.lr_lambdas, strict=True)] for k in range(steps)]


def test_sgd_bias_group_and_total_steps():
    net = models.build("fastcnn", (3, 32, 32), 10, 16)
    opt = sgd(net, 0.5, 7, momentum=0.85, weight_decay=0.001, warmup=0.1, bn_bias_lr_scale=64)
    assert isinstance(opt, Optimiser) and opt.model is net and opt.clip == 0 and opt.mask is None
    main, fast = opt.torch.param_groups
    norm_biases = {id(m.bias) for m in net.modules() if isinstance(m, nn.BatchNorm2d)}
    assert {id(p) for p in fast["params"]} == norm_biases
    assert not norm_biases & {id(p) for p in main["params"]}
    assert fast["initial_lr"] == pytest.approx(32.0) and fast["weight_decay"] == pytest.approx(0.001 / 64)
    assert main["initial_lr"] == 0.5 and main["weight_decay"] == 0.001
    assert main["momentum"] == 0.85 and main["nesterov"]
    # the schedule spans exactly the 7 planned steps: a rise of round(0.7) -> 1 step to the peak,
    # then 1 - (step - 1) / 6, zero at step 7
    want = [1.0] + [1 - (k - 1) / 6 for k in range(1, 8)]
    lrs = _lrs(opt, 8)
    assert [lr[0] for lr in lrs] == pytest.approx([0.5 * f for f in want], abs=1e-12)
    assert [lr[1] for lr in lrs] == pytest.approx([32.0 * f for f in want], abs=1e-12)
    plain = sgd(net, 0.5, 7, momentum=0.0, weight_decay=0.001)
    assert len(plain.torch.param_groups) == 1 and not plain.torch.param_groups[0]["nesterov"]


class _Linear(nn.Module):
    """loss = c . w + d b, gradient (c, d) wherever the weights are."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.b = nn.Parameter(torch.zeros(1))


def test_optimiser_step_masks_then_clips_and_steps_the_schedule():
    """Plain SGD (no momentum, no weight decay) at lr 1, warmup 0, 2 planned steps: factors 1, 0.5."""
    c, d = torch.tensor([3.0, 4.0, 12.0]), torch.tensor([5.0])
    net = _Linear()
    opt = sgd(net, 1.0, 2, momentum=0.0, weight_decay=0.0)
    opt.mask = {"w": torch.tensor([1.0, 1.0, 0.0])}  # b has no entry: left as it is
    opt.step((c * net.w).sum() + (d * net.b).sum())
    assert net.w.tolist() == [-3.0, -4.0, 0.0] and net.b.tolist() == [-5.0]
    opt.step((c * net.w).sum() + (d * net.b).sum())  # fresh gradients (not accumulated), lr 0.5
    assert net.w.tolist() == [-4.5, -6.0, 0.0] and net.b.tolist() == [-7.5]
    assert opt.scheduler.last_epoch == 2
    # clip 1 with the mask: the norm clipped is that of the masked gradient (3, 4, 0): 5, so the
    # step is (3, 4, 0) / 5; clipping the raw gradient (norm 13) first would give (3, 4, 0) / 13
    net = _Linear()
    opt = sgd(net, 1.0, 2, momentum=0.0, weight_decay=0.0, clip=1.0)
    opt.mask = {"w": torch.tensor([1.0, 1.0, 0.0])}
    opt.step((c * net.w).sum())  # b gets no gradient: skipped by the mask and by the clip
    torch.testing.assert_close(net.w.detach(), torch.tensor([-0.6, -0.8, 0.0]), rtol=1e-5, atol=1e-6)
    assert net.b.tolist() == [0.0] and net.b.grad is None
    # a clip above the norm changes nothing
    net = _Linear()
    opt = sgd(net, 1.0, 2, momentum=0.0, weight_decay=0.0, clip=100.0)
    opt.step((c * net.w).sum())
    torch.testing.assert_close(net.w.detach(), -c)


def test_batch_indices_are_seeded_passes_without_replacement():
    idx = batch_indices(10, 4, 6, torch.Generator().manual_seed(0))  # 24 indices: 3 passes, the last cut
    assert idx.shape == (6, 4) and idx.dtype == torch.int64
    flat = idx.flatten()
    assert sorted(flat[:10].tolist()) == list(range(10)) and sorted(flat[10:20].tolist()) == list(range(10))
    assert len(set(flat[20:].tolist())) == 4
    assert torch.equal(idx, batch_indices(10, 4, 6, torch.Generator().manual_seed(0)))
    assert not torch.equal(idx, batch_indices(10, 4, 6, torch.Generator().manual_seed(1)))
    one = batch_indices(10, 16, 1, torch.Generator().manual_seed(0))  # a batch larger than n: two passes
    assert one.shape == (1, 16) and sorted(one[0, :10].tolist()) == list(range(10))


def test_epoch_augmenter_matches_augment_and_alternates():
    x = torch.randn(20, 3, 8, 8)
    for flip, t in ((True, 2), (False, 2), (False, 0)):
        a = EpochAugmenter(x, torch.Generator().manual_seed(5), flip, t, alternate=False)
        g = torch.Generator().manual_seed(5)
        for _ in range(2):
            assert torch.equal(a.next(), augment(x, g, flip, t))
    alt = EpochAugmenter(x, torch.Generator().manual_seed(5), True, 0, alternate=True)
    e0, e1, e2 = alt.next(), alt.next(), alt.next()
    assert torch.equal(e1, e0.flip(-1)) and torch.equal(e2, e0)
    flipped = [not torch.equal(e0[i], x[i]) for i in range(len(x))]
    assert all(torch.equal(e0[i], x[i].flip(-1)) for i in range(len(x)) if flipped[i])
    assert 0 < sum(flipped) < len(x)


def _fastcnn_fit(recipe: Recipe, seed: int = 0):
    torch.manual_seed(0)
    x, y = torch.randn(128, 3, 16, 16), torch.randint(0, 10, (128,))
    net = models.build("fastcnn", (3, 16, 16), 10, 16)
    net.init_whitening(x)
    stem = net.whiten.bias.detach().clone()
    fit(_Bench(), net, x, y, recipe, torch.Generator().manual_seed(seed))
    return net, stem


AIRBENCH = dict(
    epochs=2, batch_size=32, lr=0.5, label_smoothing=0.2, flip=True, alt_flip=True, translate=2,
    lr_start=0.2, lr_end=0.07, bn_bias_lr_scale=8, lookahead=3,
)  # fmt: skip


def test_fit_deterministic_and_stem_bias_freeze():
    rec = Recipe(**AIRBENCH, whiten_bias_epochs=0)
    a, stem = _fastcnn_fit(rec)
    b, _ = _fastcnn_fit(rec)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert torch.equal(a.whiten.bias, stem)  # frozen from the start: lookahead keeps it too
    assert a.whiten.bias.requires_grad  # handed back trainable
    c, stem = _fastcnn_fit(Recipe(**AIRBENCH, whiten_bias_epochs=1))
    assert not torch.equal(c.whiten.bias, stem)
    assert all(torch.isfinite(v).all() for v in c.state_dict().values() if v.is_floating_point())


def _three_nets(sizes=(120, 110, 100)):
    """Three FastCNNs with their own init, data (by default 3 batches of 32 an epoch each) and seed."""
    nets, xs, ys, gens = [], [], [], []
    for k, n in enumerate(sizes):
        torch.manual_seed(10 + k)
        x, y = torch.randn(n, 3, 16, 16), torch.randint(0, 10, (n,))
        net = models.build("fastcnn", (3, 16, 16), 10, 16)
        net.init_whitening(x)
        nets.append(net), xs.append(x), ys.append(y), gens.append(torch.Generator().manual_seed(k))
    return nets, xs, ys, gens


def test_fit_defaults_unchanged_by_new_knobs():
    """The new knobs at their defaults give the recipe the code had before them."""
    base = Recipe(epochs=2, batch_size=32, lr=0.1, flip=True, translate=2)
    explicit = Recipe(
        epochs=2, batch_size=32, lr=0.1, flip=True, translate=2, alt_flip=False, lr_start=0.0, lr_end=0.0,
        bn_bias_lr_scale=1.0, whiten_bias_epochs=None, lookahead=0,
    )  # fmt: skip
    a, _ = _fastcnn_fit(base)
    b, _ = _fastcnn_fit(explicit)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_mirror_tta_accuracy():
    """A model that sees only the left half: TTA averages it with the mirrored (right) half."""

    class Left(nn.Module):
        def forward(self, x):
            s = x[..., :2].sum(dim=(1, 2, 3))
            return torch.stack([s, -s], 1)

    x = torch.zeros(4, 1, 2, 4)
    x[0, ..., :2], x[2, ..., :2] = 1.0, -1.0  # right half blank: both views agree
    x[1, ..., :2], x[1, ..., 2:] = -1.0, 3.0  # the right half outweighs the left
    x[3, ..., :2], x[3, ..., 2:] = 1.0, -3.0
    y = torch.tensor([0, 0, 1, 1])
    bench = _Bench(x, y)
    assert accuracy(bench, Left()) == 0.5  # images 1 and 3 wrong
    assert accuracy(bench, Left(), tta=True) == 1.0


def _synthetic_npz(path, n_pool: int = 96, n_test: int = 20, side: int = 16, seed: int = 0):
    """Random uint8 images (n, side, side, 3) and labels of 10 classes, as a prepared .npz."""
    import numpy as np

    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_pool, side, side, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_pool),
        x_test=rng.integers(0, 256, (n_test, side, side, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test),
    )
    return path


def test_train_shard_writes_scores_and_checkpoint_of_its_models(tmp_path):
    """A fastcnn shard job writes its models' scores and a checkpoint that holds the scored models."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from umia import io
    from umia.stages.shards import load_models, train_shard

    data = _synthetic_npz(tmp_path / "data.npz")
    cand = tmp_path / "candidates.parquet"
    ids = pd.DataFrame({"example_id": np.arange(10), "label": np.zeros(10, np.int16)})
    io.write_table(ids, cand, io.CANDIDATES, "h")
    rec = dict(AIRBENCH, whiten_bias_epochs=1)
    task_args = {"network": "fastcnn", "width": 16, "views": ["identity", "mirror"]}
    out, ckpt = tmp_path / "scores.parquet", tmp_path / "models.pt"
    train_shard(
        task="image", data=str(data), candidates=str(cand), outputs={"scores": str(out), "ckpt": str(ckpt)},
        stage="retrain", shard=1, shard_size=2, seed=0, recipe=rec, device="cpu",
        config_hash="h", task_args=task_args,
    )  # fmt: skip
    t = pq.read_table(out).to_pandas().sort_values(["model_id", "view", "example_id"])
    assert sorted(t["model_id"].unique()) == [2, 3]
    assert set(t["stage"]) == {"retrain"} and set(t["method"]) == {"retrain"}
    assert len(t) == 2 * 2 * (96 + 20)  # models x views x (pool + test)
    states, meta = load_models(str(ckpt), torch.device("cpu"))
    assert sorted(states) == [2, 3]
    assert meta == {
        "stage": "retrain", "task": "image", "seed": 0, "config_hash": "h", "network": "fastcnn", "width": 16,
        "umia": umia.__version__, "source": provenance.source_hash(), "plugins": {},
    }  # fmt: skip
    # the checkpoint holds the scored models
    task = ImageTask(str(data), str(cand), "cpu", "h", **task_args)
    scored = task.score(task.load_model(states[3]))
    np.testing.assert_allclose(t.loc[t["model_id"] == 3, "phi"].to_numpy(), scored["phi"].ravel(), rtol=1e-5)
