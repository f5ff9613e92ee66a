"""umia.plan: balanced masks that survive growing N, candidates and forget sets."""

from __future__ import annotations

import numpy as np
import pytest

from umia import plan


@pytest.mark.parametrize("n_pool", [1, 7, 100, 1347])
@pytest.mark.parametrize("n_models", [2, 8, 32])
def test_every_example_in_exactly_half_the_training_sets(n_models, n_pool):
    """LiRA balance: each pool example is in D_i for exactly N/2 of the N models (odd pools too)."""
    masks = plan.train_masks(0, range(n_models), n_pool)
    assert masks.shape == (n_models, n_pool) and masks.dtype == bool
    assert (masks.sum(axis=0) == n_models // 2).all()


@pytest.mark.parametrize("n_pool", [10, 11])
def test_pairs_are_complements_and_halves(n_pool):
    """Models 2k and 2k+1 split the pool: disjoint, covering it, the even one has floor(n/2)."""
    for k in range(5):
        a = plan.train_mask(3, 2 * k, n_pool)
        b = plan.train_mask(3, 2 * k + 1, n_pool)
        assert np.array_equal(a, ~b)
        assert a.sum() == n_pool // 2
        assert b.sum() == n_pool - n_pool // 2


def test_pairs_differ_from_each_other():
    """Different pairs draw different halves (otherwise N models would be 2 models)."""
    masks = plan.train_masks(0, range(16), 500)
    assert len({m.tobytes() for m in masks}) == 16


def test_masks_do_not_change_when_n_grows():
    """Raising N never touches a finished model: the first models' masks and membership rows are
    the same whatever N."""
    small = plan.train_masks(5, range(4), 300)
    big = plan.train_masks(5, range(32), 300)
    assert np.array_equal(small, big[:4])
    assert np.array_equal(plan.train_mask(5, 3, 300), big[3])
    cand = np.arange(0, 300, 7)
    m4 = plan.membership(5, 4, 300, cand)
    m32 = plan.membership(5, 32, 300, cand)
    assert m4.equals(m32[m32.model_id < 4].reset_index(drop=True))


def test_seed_determines_masks():
    a = plan.train_masks(11, range(6), 200)
    assert np.array_equal(a, plan.train_masks(11, range(6), 200))
    b = plan.train_masks(12, range(6), 200)
    assert not np.array_equal(a[0], b[0])
    assert (a != b).any(axis=1).all()


def test_derive_seed_depends_on_every_part():
    s = plan.derive_seed(0, "mask", 1)
    assert s == plan.derive_seed(0, "mask", 1)
    assert (
        len(
            {
                s,
                plan.derive_seed(1, "mask", 1),
                plan.derive_seed(0, "mask", 2),
                plan.derive_seed(0, "init", 1),
            }
        )
        == 4
    )
    assert 0 <= s < 2**63


def test_random_candidates_sorted_unique_sized_and_seeded():
    labels = np.arange(1000) % 10
    spec = {"mode": "random", "size": 200, "class": 0}
    c = plan.candidates(spec, 0, labels)
    assert len(c) == 200
    assert np.array_equal(c, np.unique(c))  # sorted and unique
    assert c.min() >= 0 and c.max() < 1000
    assert np.array_equal(c, plan.candidates(spec, 0, labels))
    assert not np.array_equal(c, plan.candidates(spec, 1, labels))


def test_class_candidates_are_exactly_that_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    c = plan.candidates({"mode": "class", "size": 2, "class": 3}, 0, labels)
    assert np.array_equal(c, np.flatnonzero(labels == 3))
    assert (labels[c] == 3).all() and ((labels == 3).sum() == len(c))
    assert np.all(np.diff(c) > 0)


def test_forget_sets_are_train_intersect_candidates():
    """F_i = D_i ∩ C, for a single mask and for a stack of masks."""
    n_pool = 101
    cand = plan.candidates({"mode": "random", "size": 30, "class": 0}, 0, np.zeros(n_pool))
    in_c = np.isin(np.arange(n_pool), cand)
    masks = plan.train_masks(0, range(8), n_pool)
    forget = plan.forget_mask(masks, cand)
    assert forget.shape == masks.shape
    assert np.array_equal(forget, masks & in_c[None, :])
    assert np.array_equal(plan.forget_mask(masks[2], cand), masks[2] & in_c)
    # each candidate is forgotten by exactly N/2 models, a non-candidate by none
    assert (forget.sum(axis=0) == np.where(in_c, 4, 0)).all()


def test_membership_table():
    """One row per (model, pool example) with typed columns; in_forget implies in_train."""
    n_models, n_pool = 6, 53
    cand = np.array([0, 5, 17, 52])
    m = plan.membership(2, n_models, n_pool, cand)
    assert list(m.columns) == ["model_id", "example_id", "in_train", "in_forget"]
    assert len(m) == n_models * n_pool
    assert str(m.model_id.dtype) == "int32" and str(m.example_id.dtype) == "int64"
    assert m.in_train.dtype == bool and m.in_forget.dtype == bool
    assert not m.duplicated(["model_id", "example_id"]).any()
    assert (~m.in_forget | m.in_train).all()
    assert set(m.loc[m.in_forget, "example_id"]) == set(cand)
    row = m[(m.model_id == 3)].sort_values("example_id")
    assert np.array_equal(row.in_train.to_numpy(), plan.train_mask(2, 3, n_pool))
    assert (m.groupby("example_id").in_train.sum() == n_models // 2).all()


def test_shard_models():
    assert plan.shard_models(0, 4) == [0, 1, 2, 3]
    assert plan.shard_models(2, 3) == [6, 7, 8]
