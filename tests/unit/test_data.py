"""umia.data: digits, a local CIFAR-10 .npz and a local Fashion-MNIST idx folder."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from umia import config, data
from umia.data import DataError

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _idx_bytes(a: np.ndarray) -> bytes:
    """An idx file of unsigned bytes: 0, 0, 0x08, ndim, then each dimension as big-endian uint32."""
    assert a.dtype == np.uint8
    return bytes([0, 0, 0x08, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + a.tobytes()


def _fashion_folder(folder: Path, n_train=12, n_test=5, gz=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in data.IDX_FILES.items():
        raw = _idx_bytes(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


def _cifar_npz(path: Path, n_train=20, n_test=8) -> dict:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize("fraction", [0.25, 0.1, 0.5])
def test_digits_shapes_and_split_sizes(fraction):
    """digits: uint8 (n, 8, 8, 1), int64 labels, pool size = config.pool_size (which the config
    uses to bound the candidates without loading the data), stratified by class."""
    a = data.load({"name": "digits", "test_fraction": fraction}, seed=0)
    assert a.x_train.dtype == np.uint8 and a.x_test.dtype == np.uint8
    assert a.x_train.shape[1:] == (8, 8, 1) and a.x_test.shape[1:] == (8, 8, 1)
    assert a.y_train.dtype == np.int64 and a.y_test.dtype == np.int64
    assert len(a.x_train) == len(a.y_train) == config.pool_size({"name": "digits", "test_fraction": fraction})
    assert len(a.x_train) + len(a.x_test) == config.DIGITS_SIZE
    assert len(a.y_test) == len(a.x_test)
    assert a.n_classes == 10
    assert a.x_train.max() == 255  # 16 grey levels scaled onto the full byte range
    share = np.bincount(a.y_test, minlength=10) / np.bincount(np.r_[a.y_train, a.y_test], minlength=10)
    assert np.all(np.abs(share - fraction) < 0.05)  # stratified: every class split alike


def test_digits_split_follows_seed():
    a = data.load({"name": "digits", "test_fraction": 0.25}, seed=0)
    b = data.load({"name": "digits", "test_fraction": 0.25}, seed=0)
    c = data.load({"name": "digits", "test_fraction": 0.25}, seed=1)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_cifar10_npz_loads(tmp_path):
    path = tmp_path / "cifar.npz"
    ref = _cifar_npz(path)
    a = data.load({"name": "cifar10", "path": str(path)}, seed=0)
    assert a.x_train.shape == (20, 32, 32, 3) and a.x_test.shape == (8, 32, 32, 3)
    assert a.y_train.dtype == np.int64 and a.y_test.dtype == np.int64
    np.testing.assert_array_equal(a.x_train, ref["x_train"])
    np.testing.assert_array_equal(a.y_test, ref["y_test"])


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.95])
def test_truncated_cifar10_npz_is_data_error(tmp_path, keep):
    path = tmp_path / "cifar.npz"
    _cifar_npz(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(DataError) as info:
        data.load({"name": "cifar10", "path": str(path)}, seed=0)
    assert "\n" not in str(info.value)


def test_cifar10_npz_wrong_shape_or_missing_array(tmp_path):
    path = tmp_path / "bad.npz"
    z = np.zeros((2, 28, 28, 1), np.uint8)
    np.savez(path, x_train=z, y_train=np.zeros(2), x_test=z, y_test=np.zeros(2))
    with pytest.raises(DataError, match="32, 32, 3"):
        data.load({"name": "cifar10", "path": str(path)}, seed=0)
    np.savez(path, x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="lacks array"):
        data.load({"name": "cifar10", "path": str(path)}, seed=0)


def test_missing_path_is_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load({"name": "cifar10", "path": str(tmp_path / "nope.npz")}, seed=0)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx_folder_loads(tmp_path, gz):
    ref = _fashion_folder(tmp_path / "fm", gz=gz)
    a = data.load({"name": "fashion_mnist", "path": str(tmp_path / "fm")}, seed=0)
    assert a.x_train.shape == (12, 28, 28, 1) and a.x_test.shape == (5, 28, 28, 1)
    assert a.x_train.dtype == np.uint8
    assert a.y_train.dtype == np.int64 and a.y_test.dtype == np.int64
    np.testing.assert_array_equal(a.x_train[..., 0], ref["x_train"])
    np.testing.assert_array_equal(a.x_test[..., 0], ref["x_test"])
    np.testing.assert_array_equal(a.y_train, ref["y_train"])


def test_fashion_mnist_missing_file(tmp_path):
    _fashion_folder(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        data.load({"name": "fashion_mnist", "path": str(tmp_path / "fm")}, seed=0)


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6, 0.99])
def test_truncated_gz_idx_is_data_error(tmp_path, keep):
    """A .gz cut short (a partial download) fails in gzip; reported as DataError."""
    _fashion_folder(tmp_path / "fm")
    p = tmp_path / "fm" / "train-images-idx3-ubyte.gz"
    raw = p.read_bytes()
    p.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(DataError) as info:
        data.load({"name": "fashion_mnist", "path": str(tmp_path / "fm")}, seed=0)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_body_shorter_than_header_is_data_error(tmp_path, gz):
    """An idx whose body lacks bytes its header promises (cut before compression, or an
    uncompressed file cut short) is refused."""
    _fashion_folder(tmp_path / "fm", gz=gz)
    stem = "train-images-idx3-ubyte"
    p = tmp_path / "fm" / (stem + ".gz" if gz else stem)
    raw = gzip.decompress(p.read_bytes()) if gz else p.read_bytes()
    cut = raw[:-100]
    p.write_bytes(gzip.compress(cut) if gz else cut)
    with pytest.raises(DataError, match="truncated"):
        data.load({"name": "fashion_mnist", "path": str(tmp_path / "fm")}, seed=0)


def test_idx_wrong_magic_is_data_error(tmp_path):
    _fashion_folder(tmp_path / "fm", gz=False)
    p = tmp_path / "fm" / "train-labels-idx1-ubyte"
    p.write_bytes(b"\x00\x00\x0d\x01" + p.read_bytes()[4:])  # 0x0d: float32, not unsigned bytes
    with pytest.raises(DataError, match="not an idx file"):
        data.load({"name": "fashion_mnist", "path": str(tmp_path / "fm")}, seed=0)


@pytest.mark.parametrize("cut", [6, 10])
def test_idx_cut_inside_header_is_data_error(tmp_path, cut):
    _fashion_folder(tmp_path / "fm", gz=False)
    p = tmp_path / "fm" / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:cut])
    with pytest.raises(DataError):
        data.load({"name": "fashion_mnist", "path": str(tmp_path / "fm")}, seed=0)


def test_prepare_writes_npz_atomically(tmp_path):
    out = tmp_path / "prepared" / "dataset.npz"
    a = data.prepare({"name": "digits", "test_fraction": 0.25}, 0, str(out))
    b = data.load_prepared(str(out))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert sorted(p.name for p in out.parent.iterdir()) == ["dataset.npz"]


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason=f"{FASHION_MNIST} not present on this machine")
def test_real_fashion_mnist():
    a = data.load({"name": "fashion_mnist", "path": str(FASHION_MNIST)}, seed=0)
    assert a.x_train.shape == (60_000, 28, 28, 1) and a.x_test.shape == (10_000, 28, 28, 1)
    assert len(a.x_train) == config.pool_size({"name": "fashion_mnist"})
    assert a.n_classes == 10
    assert (np.bincount(a.y_train) == 6000).all()
