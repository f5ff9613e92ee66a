"""umia.score: the statistic phi, the loss and correctness, and the views."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from umia.score import phi_loss, view

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
