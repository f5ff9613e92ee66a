"""Datasets: load digits, Fashion-MNIST or CIFAR-10 into one prepared ``.npz``.

The prepared file holds ``x_train`` and ``x_test`` as uint8 arrays of shape (n, H, W, C) and
``y_train``, ``y_test`` as int64 class labels. The training split is the pool P; the test split
is never trained on.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from umia.errors import DataError
from umia.io import atomic_path

log = logging.getLogger(__name__)

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


CLASS_NAMES = {
    "digits": tuple(str(i) for i in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle boot",
    ),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "imdb": ("negative", "positive"),
}


@dataclass(frozen=True)
class Arrays:
    x_train: np.ndarray  # (n_pool, H, W, C) uint8
    y_train: np.ndarray  # (n_pool,) int64
    x_test: np.ndarray  # (n_test, H, W, C) uint8
    y_test: np.ndarray  # (n_test,) int64

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def _digits(test_fraction: float, seed: int) -> Arrays:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.round(d.images * (255 / 16)).astype(np.uint8)[..., None]  # (1797, 8, 8, 1)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Arrays(xtr, ytr, xte, yte)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be read ({e}); it is corrupted or truncated, fetch it again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an idx file of unsigned bytes; fetch it again")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: its idx header is cut short; the file is truncated, fetch it again")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: holds {body.size} bytes but its header says {shape}; it is truncated, fetch it again")
    return body.reshape(shape)


def _fashion_mnist_folder(folder: Path) -> Arrays:
    arrays = {}
    for key, stem in IDX_FILES.items():
        found = [folder / stem, folder / f"{stem}.gz"]
        path = next((p for p in found if p.exists()), None)
        if path is None:
            raise DataError(
                f"{folder}: has no {stem}(.gz); point dataset.path at a folder of the four Fashion-MNIST idx files"
            )
        arrays[key] = _read_idx(path)
    return Arrays(
        arrays["x_train"][..., None],
        arrays["y_train"].astype(np.int64),
        arrays["x_test"][..., None],
        arrays["y_test"].astype(np.int64),
    )


def _cifar10_npz(path: Path) -> Arrays:
    try:
        with np.load(path) as z:
            a = Arrays(*(np.asarray(z[k]) for k in ("x_train", "y_train", "x_test", "y_test")))
    except KeyError as e:
        raise DataError(f"{path}: lacks array {e}; it needs x_train, y_train, x_test, y_test") from e
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError: a bad file
        raise DataError(f"{path}: not a readable .npz ({type(e).__name__}: {e}); it is corrupted or truncated") from e
    for name, x in (("x_train", a.x_train), ("x_test", a.x_test)):
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise DataError(f"{path}: {name} has shape {x.shape} and dtype {x.dtype}; expected (n, 32, 32, 3) uint8")
    return Arrays(a.x_train, a.y_train.astype(np.int64), a.x_test, a.y_test.astype(np.int64))


def _torchvision(name: str, root: str, download: bool) -> Arrays:
    import torchvision

    cls = {"fashion_mnist": torchvision.datasets.FashionMNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except RuntimeError as e:
        raise DataError(f"{name}: not found under {root} ({e}); set dataset.download: true or dataset.path") from e

    def arrays(ds):
        x = np.asarray(ds.data, dtype=np.uint8)
        return (x[..., None] if x.ndim == 3 else x), np.asarray(ds.targets, dtype=np.int64)

    return Arrays(*arrays(train), *arrays(test))


def _check_sha256(path: Path, expected: str) -> None:
    if path.is_dir():
        raise DataError(f"dataset.sha256 is set but {path} is a folder; a checksum covers one file")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected:
        raise DataError(
            f"{path}: sha256 {h.hexdigest()[:16]}... does not match dataset.sha256 {expected[:16]}...; "
            "the file is corrupted or another version: fetch it again"
        )


def load(dataset: Mapping, seed: int) -> Arrays:
    """Load a dataset as described by the config's ``dataset`` section."""
    name = dataset["name"]
    if name == "digits":
        return _digits(dataset["test_fraction"], seed)
    if dataset.get("path"):
        path = Path(dataset["path"])
        if not path.exists():
            raise DataError(f"dataset.path {path} does not exist; fix it or set it to null to download")
        if dataset.get("sha256"):
            _check_sha256(path, dataset["sha256"])
        return _fashion_mnist_folder(path) if name == "fashion_mnist" else _cifar10_npz(path)
    return _torchvision(name, dataset["root"], dataset["download"])


def prepare(dataset: Mapping, seed: int, out: str) -> Arrays:
    """Load a dataset and write it as the prepared ``.npz`` (atomically)."""
    a = load(dataset, seed)
    if len(a.x_train) != len(a.y_train) or len(a.x_test) != len(a.y_test):
        raise DataError(f"{dataset['name']}: images and labels differ in number")
    log.info("%s: pool %s, test %s, %d classes", dataset["name"], a.x_train.shape, a.x_test.shape, a.n_classes)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, x_train=a.x_train, y_train=a.y_train, x_test=a.x_test, y_test=a.y_test)
    return a


def load_prepared(path: str) -> Arrays:
    with np.load(path) as z:
        return Arrays(z["x_train"], z["y_train"], z["x_test"], z["y_test"])
