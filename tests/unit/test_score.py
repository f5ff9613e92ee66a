"""umia.tasks.score: the statistic phi, the loss and correctness, the views, padding and the score
table's long format; the image task's scoring (ImageTask.score, ImageTask.phi)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from umia.tasks.score import padded, phi_loss, view

F32_ULP_AT_100 = float(np.spacing(np.float32(100.0)))  # 7.6e-6


def _phi(logits, y):
    return phi_loss(torch.tensor(logits, dtype=torch.float32), torch.tensor(y))


def test_phi_exact_when_p_y_near_one():
    """logits [100, 0, 0], y=0: p_y = 1 - 2e-44 rounds to 1 in float32, so log(p/(1-p)) would be
    inf; the stable form gives 100 - log 2. Tolerance: two float32 ulps at 100."""
    phi, loss, correct = _phi([[100.0, 0.0, 0.0]], [0])
    assert abs(phi.item() - (100.0 - math.log(2.0))) <= 2 * F32_ULP_AT_100
    assert correct.item()
    # log(1 + 2 e^-100) = 7.4e-44, below float32's smallest normal: 0 (or a denormal) is exact.
    assert 0.0 <= loss.item() < 1e-30


def test_phi_finite_for_extreme_two_class_logits():
    """Two classes: phi = z_y - z_other exactly, finite even at +-1000 (softmax underflows)."""
    phi, loss, correct = _phi([[1000.0, 0.0], [1000.0, 0.0]], [0, 1])
    assert torch.isfinite(phi).all() and torch.isfinite(loss).all()
    assert phi.tolist() == [1000.0, -1000.0]
    assert loss[1].item() == 1000.0  # log(e^1000 + 1) - 0 = 1000 in float32
    assert correct.tolist() == [True, False]


def test_phi_matches_float64_log_odds_on_moderate_logits():
    """On moderate logits phi = log(p_y / (1 - p_y)), here computed naively in float64 (exact
    enough there). Tolerance 1e-4: float32 logsumexp of values up to ~15 (ulp ~1e-6, a few ops)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 10, generator=g) * 3
    y = torch.randint(0, 10, (256,), generator=g)
    phi, _, _ = phi_loss(logits, y)
    p = torch.softmax(logits.double(), dim=1)
    p_y = p.gather(1, y[:, None]).squeeze(1)
    ref = torch.log(p_y / (1 - p_y))
    assert phi.dtype == torch.float32
    np.testing.assert_allclose(phi.numpy(), ref.numpy(), atol=1e-4, rtol=0)


def test_loss_is_cross_entropy_and_correct_is_argmax():
    """The loss column is torch's cross-entropy per example; correct is argmax == y."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(128, 5, generator=g) * 4
    y = torch.randint(0, 5, (128,), generator=g)
    _, loss, correct = phi_loss(logits, y)
    ref = F.cross_entropy(logits, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)
    assert correct.dtype == torch.bool
    assert torch.equal(correct, logits.argmax(1) == y)
    assert 0 < correct.sum() < 128  # both outcomes occur, so the check means something


def test_phi_from_half_precision_logits_is_float32():
    """Logits from bf16 autocast are upcast: phi is float32 and equals phi of the upcast logits."""
    logits = torch.tensor([[3.0, -1.0, 0.5], [0.0, 2.0, 2.0]], dtype=torch.bfloat16)
    y = torch.tensor([0, 2])
    phi, loss, _ = phi_loss(logits, y)
    phi32, loss32, _ = phi_loss(logits.float(), y)
    assert phi.dtype == torch.float32 and loss.dtype == torch.float32
    assert torch.equal(phi, phi32) and torch.equal(loss, loss32)


def test_mirror_flips_last_axis_identity_keeps():
    """mirror is a horizontal flip of (B, C, H, W) images: reversed last (width) axis only."""
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    m = view(x, "mirror")
    assert torch.equal(m, torch.from_numpy(x.numpy()[..., ::-1].copy()))
    assert torch.equal(m[0, 0, 0], torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0]))
    assert torch.equal(view(x, "identity"), x)
    assert torch.equal(view(m, "mirror"), x)


def test_unknown_view_raises():
    with pytest.raises(ValueError, match="unknown view"):
        view(torch.zeros(1, 1, 2, 2), "rotate")


def test_padded_repeats_the_first_rows_up_to_a_multiple():
    x = torch.arange(5.0)[:, None]
    assert padded(x, 4).squeeze(1).tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert padded(x[:1], 4).squeeze(1).tolist() == [0, 0, 0, 0]  # repeated as often as needed
    assert torch.equal(padded(x[:4], 4), x[:4]) and len(padded(x[:0], 4)) == 0


@pytest.fixture(scope="module")
def scored(digits):
    """An untrained MLP on the digits task (both views) and its scores."""
    from umia.tasks.image.task import ImageTask

    task = ImageTask(str(digits), None, "cpu", None, network="mlp", width=16)
    model = task.new_model(0)
    return task, model, task.score(model)


def test_task_score_is_phi_loss_of_each_view_over_pool_and_test(scored):
    """task.score (was score.score_model): phi, loss, correct of every pool then test example,
    one row per view, in eval mode."""
    task, model, s = scored
    assert task.views == ("identity", "mirror") and not model.training
    x, y = torch.cat([task.x_pool, task.x_test]), torch.cat([task.y_pool, task.y_test])
    for k in ("phi", "loss", "correct"):
        assert s[k].shape == (2, task.n_pool + task.n_test)
    for v, name in enumerate(task.views):
        with torch.no_grad():
            phi, loss, correct = phi_loss(model(view(x, name)), y)
        np.testing.assert_allclose(s["phi"][v], phi.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s["loss"][v], loss.numpy(), rtol=1e-5, atol=1e-6)
        assert np.array_equal(s["correct"][v], correct.numpy())
    assert not np.allclose(s["phi"][0], s["phi"][1])  # digits are not mirror-symmetric


def test_task_phi_of_a_few_examples_matches_score_and_keeps_the_mode(scored):
    """task.phi (was score.phi_of): (V, n) on the device for any examples, padded passes; the
    model's train/eval mode is left as it was."""
    task, model, s = scored
    idx = torch.tensor([5, 0, 700, 3])
    model.train()
    phi = task.phi(model, (task.x_pool[idx], task.y_pool[idx]))
    assert model.training and phi.shape == (2, 4)
    np.testing.assert_allclose(phi.numpy(), s["phi"][:, idx.numpy()], rtol=1e-5, atol=1e-6)
    assert task.phi(model, (task.x_pool[:0], task.y_pool[:0])).shape == (2, 0)
    model.eval()


def test_scores_frame_long_format(scored):
    task, model, s = scored
    frame = task.tables(s, 7, "original", "none")["scores"]
    n = task.n_pool + task.n_test
    assert len(frame) == 2 * n and frame["view"].tolist() == ["identity"] * n + ["mirror"] * n
    assert frame["example_id"].tolist() == list(range(n)) * 2
    assert (frame["split"][: task.n_pool] == "pool").all() and (frame["split"][task.n_pool : n] == "test").all()
    assert frame["label"][:n].tolist() == task.labels.tolist()
    np.testing.assert_array_equal(frame["phi"].to_numpy(), s["phi"].ravel().astype(np.float32))
    assert set(frame["stage"]) == {"original"} and set(frame["method"]) == {"none"} and (frame["model_id"] == 7).all()


def test_describe_reads_the_scores_passes_and_matches_test_accuracy(scored, digits):
    """describe's plain and mirror-TTA test accuracy come from score's own passes (tta_correct), and
    equal test_accuracy's separate passes; a task of one view falls back to those passes."""
    from umia.tasks.image.task import ImageTask, test_accuracy

    task, model, s = scored
    assert s["tta_correct"].shape == (task.n_test,)
    plain, tta = test_accuracy(task, model), test_accuracy(task, model, tta=True)
    assert plain != tta  # an untrained model: the mirror changes some predictions
    assert task.describe(model, s, None) == f"test accuracy {plain:.4f} (mirror-TTA {tta:.4f})"
    one = ImageTask(str(digits), None, "cpu", None, network="mlp", width=16, views=("identity",))
    s1 = one.score(model)
    assert "tta_correct" not in s1
    assert one.describe(model, s1, None) == f"test accuracy {plain:.4f} (mirror-TTA {tta:.4f})"
