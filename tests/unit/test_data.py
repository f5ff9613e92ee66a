"""umia.tasks.image.data: digits, a local CIFAR-10 .npz and a local Fashion-MNIST idx folder."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from umia import config
from umia.errors import DataError
from umia.tasks.image import data, files

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
    for key, stem in files.IDX_FILES.items():
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


# --- generic datasets: dataset.name npz ------------------------------------------------------

NAMES7 = tuple(f"c{k}" for k in range(7))


def _generic_npz(path: Path, n_train=21, n_test=9, shape=(28, 28, 3), names=NAMES7, seed=2, **override) -> dict:
    """An npz of 7 classes, every class in both splits; ``override`` replaces (None: drops) arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": rng.permutation(np.arange(n_train) % 7).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": rng.permutation(np.arange(n_test) % 7).astype(np.int32),
    }
    if names is not None:
        arrays["class_names"] = np.array(names, dtype=str)
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def _npz_cfg(path: Path) -> dict:
    return {"name": "npz", "path": str(path)}


def _agrees(info: data.DatasetInfo, a: data.Arrays) -> None:
    """inspect's answer is what load gives."""
    _, h, w, c = a.x_train.shape
    assert info.shape == (c, h, w)
    assert info.n_classes == a.n_classes == len(info.class_names)
    assert info.pool_size == len(a.x_train)
    assert info.class_names == a.class_names


def test_npz_known_answer_and_inspect(tmp_path):
    path = tmp_path / "any.npz"
    ref = _generic_npz(path)
    a = data.load(_npz_cfg(path), seed=0)
    assert a.x_train.shape == (21, 28, 28, 3) and a.x_test.shape == (9, 28, 28, 3)
    assert a.x_train.dtype == np.uint8
    assert a.y_train.dtype == np.int64 and a.y_test.dtype == np.int64
    np.testing.assert_array_equal(a.x_train, ref["x_train"])
    np.testing.assert_array_equal(a.x_test, ref["x_test"])
    np.testing.assert_array_equal(a.y_train, ref["y_train"])
    np.testing.assert_array_equal(a.y_test, ref["y_test"])
    assert a.class_names == NAMES7 and a.n_classes == 7
    info = data.inspect(_npz_cfg(path))
    assert info == data.DatasetInfo((3, 28, 28), 7, 21, NAMES7)
    _agrees(info, a)


def test_npz_grey_without_class_names(tmp_path):
    """(n, H, W) images get C = 1; without class_names the names are str(k); compressed files too."""
    path = tmp_path / "grey.npz"
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (14, 5, 6), dtype=np.uint8)
    y_train = np.arange(14) % 7
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_train[:3], y_test=y_train[:3])
    a = data.load(_npz_cfg(path), seed=0)
    assert a.x_train.shape == (14, 5, 6, 1)
    np.testing.assert_array_equal(a.x_train[..., 0], x_train)
    assert a.class_names == tuple(str(k) for k in range(7))
    info = data.inspect(_npz_cfg(path))
    assert info.shape == (1, 5, 6)
    _agrees(info, a)


def test_npz_inspect_reads_no_images(tmp_path, monkeypatch):
    """inspect reads the images' headers only: of the arrays, just labels and class names."""
    path = tmp_path / "any.npz"
    _generic_npz(path)
    npz_file = type(np.load(path))
    read, getitem = [], npz_file.__getitem__
    monkeypatch.setattr(npz_file, "__getitem__", lambda self, k: read.append(k) or getitem(self, k))
    data.inspect(_npz_cfg(path))
    assert sorted(read) == ["class_names", "y_test", "y_train"]


Z28 = np.zeros((21, 28, 28, 3), np.uint8)
Y21 = np.arange(21) % 7

BAD_NPZ = {
    "missing array": ({"y_test": None}, ["lacks array(s) y_test", "np.savez(path, x_train="]),
    "float images": ({"x_test": np.zeros((9, 28, 28, 3))}, ["x_test has dtype float64", "x.astype(np.uint8)"]),
    "flat images": ({"x_train": np.zeros((21, 784), np.uint8)}, ["x_train has shape (21, 784)", "reshape it"]),
    "channels first": ({"x_train": np.zeros((21, 3, 28, 28), np.uint8)}, ["channels first", "transpose(0, 2, 3, 1)"]),
    "shapes differ": (
        {"x_test": np.zeros((9, 32, 32, 3), np.uint8)},
        ["x_train images are (28, 28, 3)", "x_test images are (32, 32, 3)", "resize or convert"],
    ),
    "no test images": ({"x_test": Z28[:0], "y_test": Y21[:0]}, ["x_test holds no images", "at least one example"]),
    "float labels": ({"y_train": Y21.astype(float)}, ["y_train has dtype float64", "y.astype(np.int64)"]),
    "column labels": ({"y_train": Y21[:, None]}, ["y_train has shape (21, 1)", "y.reshape(-1)"]),
    "negative label": ({"y_test": -(np.arange(9) % 7)}, ["y_test holds label -6", "labels must be 0..K-1"]),
    "label past names": (
        {"y_train": Y21 + 1},
        ["y_train holds label 7 but class_names has 7 names", "labels must be 0..6", "add the missing names"],
    ),
    "lengths differ": ({"y_train": Y21[:20]}, ["x_train holds 21 images but y_train 20 labels", "exactly one label"]),
    "class not trained": (
        {"y_train": np.where(Y21 == 3, 2, Y21)},
        ["class(es) 3 ('c3') have no training example", "add training images"],
    ),
    "object class names": (
        {"class_names": np.array(list(NAMES7), dtype=object)},
        ["class_names has shape (7,) and dtype object", "np.array(names, dtype=str)"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
@pytest.mark.parametrize("how", ["load", "inspect"])
def test_bad_npz_is_one_line_data_error(tmp_path, case, how):
    override, expected = BAD_NPZ[case]
    path = tmp_path / "bad.npz"
    _generic_npz(path, **override)
    with pytest.raises(DataError) as info:
        data.load(_npz_cfg(path), seed=0) if how == "load" else data.inspect(_npz_cfg(path))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path))
    for part in expected:
        assert part in msg, (part, msg)


def test_npz_test_label_beyond_train_without_names(tmp_path):
    """Without class_names, a test label above every training label is a class with no training example."""
    path = tmp_path / "bad.npz"
    _generic_npz(path, names=None, y_test=np.full(9, 7))
    with pytest.raises(DataError, match=r"class\(es\) 7 \('7'\) have no training example"):
        data.load(_npz_cfg(path), seed=0)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.95])
@pytest.mark.parametrize("how", ["load", "inspect"])
def test_truncated_or_garbage_npz_is_data_error(tmp_path, keep, how):
    path = tmp_path / "cut.npz"
    _generic_npz(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)] if keep else b"not a zip at all")
    with pytest.raises(DataError, match="not a readable .npz") as info:
        data.load(_npz_cfg(path), seed=0) if how == "load" else data.inspect(_npz_cfg(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_npz_needs_an_existing_path(tmp_path):
    with pytest.raises(DataError, match="dataset.name npz needs dataset.path"):
        data.load({"name": "npz", "path": None}, seed=0)
    with pytest.raises(DataError, match="does not exist; fix it$"):
        data.inspect(_npz_cfg(tmp_path / "nope.npz"))


# --- generic datasets: dataset.name folder ---------------------------------------------------


def _write_image(path: Path, mode: str, size=(6, 4), seed=0) -> np.ndarray:
    """A random PNG (or .jpg by suffix) of ``mode`` and ``size`` (W, H); returns its pixels as load sees them."""
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "LA": 2}[mode]
    pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    im = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    seen = im if mode in ("L", "RGB") else im.convert("RGB")
    a = np.asarray(seen)
    return a[..., None] if a.ndim == 2 else a


def _tree(root: Path, mode="RGB", counts=None, size=(6, 4)) -> dict:
    """train/ and test/ of classes ``counts`` = {class: (n_train, n_test)}; returns the expected arrays."""
    counts = counts or {"zebra": (3, 1), "ant": (2, 2), "cat": (1, 1)}
    expected = {"train": ([], []), "test": ([], [])}
    seeds = iter(range(10_000))
    for k, cls in enumerate(sorted(counts)):
        for split, n in zip(("train", "test"), counts[cls], strict=True):
            for i in range(n):
                x = _write_image(root / split / cls / f"{i:03d}.png", mode, size, seed=next(seeds))
                expected[split][0].append(x)
                expected[split][1].append(k)
    return {s: (np.stack(xs), np.array(ys)) for s, (xs, ys) in expected.items()}


def _folder_cfg(root: Path) -> dict:
    return {"name": "folder", "path": str(root)}


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 1), ("LA", 3)])
def test_folder_known_answer_and_inspect(tmp_path, mode, channels):
    """Pixels as written (grey keeps C = 1, other modes become RGB), labels by sorted class folder."""
    ref = _tree(tmp_path / "imgs", mode)
    a = data.load(_folder_cfg(tmp_path / "imgs"), seed=0)
    assert a.class_names == ("ant", "cat", "zebra")
    assert a.x_train.shape == (6, 4, 6, channels) and a.x_test.shape == (4, 4, 6, channels)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    np.testing.assert_array_equal(a.x_train, ref["train"][0])
    np.testing.assert_array_equal(a.y_train, [0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(a.x_test, ref["test"][0])
    np.testing.assert_array_equal(a.y_test, [0, 0, 1, 2])
    info = data.inspect(_folder_cfg(tmp_path / "imgs"))
    assert info == data.DatasetInfo((channels, 4, 6), 3, 6, ("ant", "cat", "zebra"))
    _agrees(info, a)


def test_folder_suffixes_and_strays(tmp_path):
    """.jpg/.JPEG/.bmp count; hidden files and folders, loose files and other suffixes are ignored."""
    root = tmp_path / "imgs"
    _tree(root, counts={"a": (1, 1), "b": (1, 1)})
    _write_image(root / "train" / "a" / "x.JPEG", "RGB")
    _write_image(root / "train" / "b" / "y.bmp", "RGB")
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    (root / "train" / "a" / ".hidden.png").write_bytes(b"junk")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "train" / "README.md").write_text("loose file")
    a = data.load(_folder_cfg(root), seed=0)
    assert a.class_names == ("a", "b") and len(a.x_train) == 4
    assert data.inspect(_folder_cfg(root)).pool_size == 4


def test_folder_inspect_opens_one_image_and_decodes_none(tmp_path, monkeypatch):
    from PIL import Image, ImageFile

    _tree(tmp_path / "imgs")
    opens, loads = [], []
    real_open, real_load = Image.open, ImageFile.ImageFile.load
    monkeypatch.setattr(Image, "open", lambda *a, **k: opens.append(a[0]) or real_open(*a, **k))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self) or real_load(self))
    data.inspect(_folder_cfg(tmp_path / "imgs"))
    assert len(opens) == 1 and loads == []
    data.load(_folder_cfg(tmp_path / "imgs"), seed=0)  # the counters do see decoding
    assert len(loads) == 10


def _bad_tree(root: Path, case: str) -> tuple[Path, list[str]]:
    """A tree broken as ``case`` says, and the parts its error message must hold."""
    _tree(root)
    if case == "no train":
        (root / "train").rename(root / "training")
        return root, ["has no train/ folder", "<path>/train/<class>/*.png"]
    if case == "no test":
        (root / "test").rename(root / "val")
        return root, ["has no test/ folder", "<path>/test/<class>/*.png"]
    if case == "no classes":
        for f in (root / "test").rglob("*.png"):
            f.unlink()
        for d in (root / "test").iterdir():
            d.rmdir()
        return root / "test", ["has no class folders"]
    if case == "empty class":
        (root / "train" / "dog").mkdir()
        (root / "test" / "dog").mkdir()
        (root / "train" / "dog" / "notes.txt").write_text("x")
        return root / "train" / "dog", ["class folder holds no images", "put images in it or remove the folder"]
    if case == "test class unknown":
        _write_image(root / "test" / "dog" / "0.png", "RGB")
        return root / "test" / "dog", ["class 'dog' is not among the train classes (ant, cat, zebra)", "rename"]
    if case == "test lacks class":
        for f in (root / "test" / "cat").iterdir():
            f.unlink()
        (root / "test" / "cat").rmdir()
        return root / "test", ["has no folder for train class 'cat'", f"add {root / 'test' / 'cat'}"]
    if case == "unreadable image":
        (root / "train" / "ant" / "000.png").write_bytes(b"not a png")
        return root / "train" / "ant" / "000.png", ["not a readable image", "replace or remove it"]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["no train", "no test", "no classes", "empty class", "test class unknown", "test lacks class", "unreadable image"],
)
@pytest.mark.parametrize("how", ["load", "inspect"])
def test_bad_folder_is_one_line_data_error(tmp_path, case, how):
    named, expected = _bad_tree(tmp_path / "imgs", case)
    cfg = _folder_cfg(tmp_path / "imgs")
    with pytest.raises(DataError) as info:
        data.load(cfg, seed=0) if how == "load" else data.inspect(cfg)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(named)), msg
    for part in expected:
        assert part in msg, (part, msg)


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize(
    "mode, size, shown", [("RGB", (8, 6), "is 8x6 RGB"), ("L", (6, 4), "is 6x4 grey (L)"), ("LA", (6, 4), None)]
)
def test_folder_mixed_images_name_the_file(tmp_path, split, mode, size, shown):
    """Another size or channel count is refused at load, naming the file and the expected size
    (LA becomes RGB, so it mixes with RGB images)."""
    root = tmp_path / "imgs"
    _tree(root)
    odd = root / split / "cat" / "zz.png"
    _write_image(odd, mode, size)
    if shown is None:
        assert len(data.load(_folder_cfg(root), seed=0).x_train) == 6 + (split == "train")
        return
    with pytest.raises(DataError) as info:
        data.load(_folder_cfg(root), seed=0)
    msg = str(info.value)
    first = root / "train" / "ant" / "000.png"
    assert msg.startswith(f"{odd}: {shown} but {first} is 6x4 RGB;"), msg
    assert "resize or convert zz.png to 6x4 RGB" in msg and "\n" not in msg


def test_folder_jpeg_loads(tmp_path):
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        _write_image(root / split / "only" / "a.jpg", "RGB", (16, 8))
    a = data.load(_folder_cfg(root), seed=0)
    assert a.x_train.shape == (1, 8, 16, 3) and a.class_names == ("only",)
    _agrees(data.inspect(_folder_cfg(root)), a)


# --- inspect of the registered datasets, class names in prepared files -----------------------


@pytest.mark.parametrize("fraction", [0.25, 0.1])
def test_inspect_digits_agrees_with_load(fraction):
    cfg = {"name": "digits", "test_fraction": fraction}
    info = data.inspect(cfg)
    _agrees(info, data.load(cfg, seed=0))
    assert info.pool_size == config.pool_size(cfg)


def test_inspect_fixed_datasets_are_the_registry():
    from umia.registry import DATASETS

    for name in ("fashion_mnist", "cifar10"):
        spec = DATASETS[name]
        info = data.inspect({"name": name, "path": None})
        assert info == data.DatasetInfo(spec.shape, spec.n_classes, spec.pool_size, spec.class_names)
    with pytest.raises(DataError, match="not an image dataset"):
        data.inspect({"name": "imdb", "path": "x"})


def test_class_names_helper():
    assert data.class_names("cifar10")[0] == "airplane" and data.class_names("npz") is None
    assert data.class_names("fashion_mnist")[-1] == "ankle boot" and data.class_names("imdb") == (
        "negative",
        "positive",
    )


def test_cifar10_npz_gets_registry_class_names(tmp_path):
    path = tmp_path / "cifar.npz"
    _cifar_npz(path, n_train=3)  # too few to hold every class: n_classes is still 10
    a = data.load({"name": "cifar10", "path": str(path)}, seed=0)
    assert a.class_names[0] == "airplane" and a.n_classes == 10


@pytest.mark.parametrize("kind", ["digits", "npz", "npz_unnamed", "folder"])
def test_prepare_stores_class_names(tmp_path, kind):
    if kind == "digits":
        cfg, names = {"name": "digits", "test_fraction": 0.25}, tuple(str(i) for i in range(10))
    elif kind == "folder":
        _tree(tmp_path / "imgs")
        cfg, names = _folder_cfg(tmp_path / "imgs"), ("ant", "cat", "zebra")
    else:
        _generic_npz(tmp_path / "any.npz", names=NAMES7 if kind == "npz" else None)
        cfg, names = _npz_cfg(tmp_path / "any.npz"), NAMES7 if kind == "npz" else tuple("0123456")
    out = tmp_path / "prepared.npz"
    a = data.prepare(cfg, 0, str(out))
    with np.load(out) as z:
        assert z["class_names"].dtype.kind == "U"
        assert tuple(z["class_names"]) == names
    b = data.load_prepared(str(out))
    assert a.class_names == b.class_names == names and b.n_classes == len(names)
    np.testing.assert_array_equal(a.x_train, b.x_train)


def test_load_prepared_without_class_names(tmp_path):
    """A prepared file written before class names were stored still loads, with str(k) names."""
    out = tmp_path / "old.npz"
    z = np.zeros((4, 8, 8, 1), np.uint8)
    np.savez(out, x_train=z, y_train=np.array([0, 1, 2, 1]), x_test=z[:2], y_test=np.array([0, 3]))
    b = data.load_prepared(str(out))
    assert b.class_names == ("0", "1", "2", "3") and b.n_classes == 4
