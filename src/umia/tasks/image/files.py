"""Reading image datasets from their files: digits (scikit-learn), Fashion-MNIST idx files, a
CIFAR-10 or any ``.npz``, a folder of images per class, torchvision's downloads. Headers are
checked before anything is decoded, and every problem is one ``DataError`` line naming the file
and the fix."""

from __future__ import annotations

import gzip
import logging
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from umia.errors import DataError, one_line, some
from umia.registry import DATASETS

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
NPZ_LAYOUT = "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
FOLDER_LAYOUT = "<path>/train/<class>/*.png and <path>/test/<class>/*.png"


def class_names(name: str) -> tuple[str, ...] | None:
    """The registry's class names of dataset ``name``; None where they come from its file."""
    spec = DATASETS.get(name)
    return None if spec is None else spec.class_names


@dataclass(frozen=True)
class Arrays:
    """A dataset in memory.

    Attributes
    ----------
    x_train, x_test : np.ndarray
        (n_pool, H, W, C) and (n_test, H, W, C) uint8 images.
    y_train, y_test : np.ndarray
        (n_pool,) and (n_test,) int64 labels in 0..K-1.
    class_names : tuple of str or None
        The K class names; None where unknown (then K is the largest label + 1).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] | None = None

    @property
    def n_classes(self) -> int:
        if self.class_names is not None:
            return len(self.class_names)
        return int(max(self.y_train.max(), self.y_test.max())) + 1


@dataclass(frozen=True)
class DatasetInfo:
    """What the config's validation needs to know of a dataset, read without decoding images.

    Attributes
    ----------
    shape : tuple of int
        (C, H, W) of one image.
    n_classes : int
        K, the number of classes.
    pool_size : int
        Number of training examples (the pool P).
    class_names : tuple of str
        The K class names.
    """

    shape: tuple[int, int, int]
    n_classes: int
    pool_size: int
    class_names: tuple[str, ...]


def read_digits(test_fraction: float, seed: int) -> Arrays:
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


def read_fashion_mnist(folder: Path) -> Arrays:
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


def read_cifar10_npz(path: Path) -> Arrays:
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


# --- dataset.name npz: any images in an .npz -------------------------------------------------


@dataclass(frozen=True)
class _NpzMeta:
    """An npz dataset as read without its images: image shape (H, W, C), sizes and labels."""

    image_shape: tuple[int, int, int]
    n_train: int
    y_train: np.ndarray  # (n_train,) int64
    y_test: np.ndarray  # (n_test,) int64
    class_names: tuple[str, ...]


def _member_header(zf: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one ``.npy`` member of a zip, from its header alone."""
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return tuple(int(d) for d in shape), dtype


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of the dataset arrays (and ``class_names``) that ``path`` holds."""
    wanted = (*NPZ_ARRAYS, "class_names")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {m.removesuffix(".npy"): m for m in zf.namelist()}
            return {k: _member_header(zf, members[k]) for k in wanted if k in members}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz ({one_line(e)}); write it with {NPZ_LAYOUT}") from e


def _check_images_header(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, int, int]:
    """The (H, W, C) of images ``key`` of header ``shape``, ``dtype``; DataError if not images."""
    fix = "images must be uint8 of shape (n, H, W, C) or (n, H, W)"
    if dtype != np.uint8:
        raise DataError(f"{path}: {key} has dtype {dtype}; {fix}: scale to 0-255 and save x.astype(np.uint8)")
    if len(shape) not in (3, 4):
        raise DataError(f"{path}: {key} has shape {shape}; {fix}: reshape it")
    if len(shape) == 4 and shape[1] in (1, 3, 4) and shape[3] > 4:
        raise DataError(f"{path}: {key} has shape {shape}, channels first; {fix}: save x.transpose(0, 2, 3, 1) instead")
    if shape[0] == 0:
        raise DataError(f"{path}: {key} holds no images; each split needs at least one example")
    return (shape[1], shape[2], shape[3] if len(shape) == 4 else 1)


def _check_labels_header(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype, n_images: int) -> None:
    """DataError unless labels ``key`` are ``n_images`` integers, shape (n_images,)."""
    if not np.issubdtype(dtype, np.integer):
        raise DataError(f"{path}: {key} has dtype {dtype}; labels must be integers 0..K-1: save y.astype(np.int64)")
    if len(shape) != 1:
        raise DataError(f"{path}: {key} has shape {shape}; labels must be one integer per image: save y.reshape(-1)")
    x_key = "x" + key[1:]
    if shape[0] != n_images:
        raise DataError(
            f"{path}: {x_key} holds {n_images} images but {key} {shape[0]} labels; give every image exactly one label"
        )


def _check_headers(path: Path, headers: Mapping) -> tuple[int, int, int]:
    """The (H, W, C) of the npz's images, after checking every array's header."""
    missing = [k for k in NPZ_ARRAYS if k not in headers]
    if missing:
        raise DataError(
            f"{path}: lacks array(s) {', '.join(missing)}; a dataset.name npz file needs x_train, y_train, "
            f"x_test, y_test: write it with {NPZ_LAYOUT}"
        )
    shapes = {k: _check_images_header(path, k, *headers[k]) for k in ("x_train", "x_test")}
    if shapes["x_train"] != shapes["x_test"]:
        raise DataError(
            f"{path}: x_train images are {shapes['x_train']} (H, W, C) but x_test images are {shapes['x_test']}; "
            "both splits need one image shape: resize or convert one of them"
        )
    for key in ("y_train", "y_test"):
        _check_labels_header(path, key, *headers[key], n_images=headers["x" + key[1:]][0][0])
    if "class_names" in headers:
        shape, dtype = headers["class_names"]
        if dtype.kind not in "US" or len(shape) != 1:
            raise DataError(
                f"{path}: class_names has shape {shape} and dtype {dtype}; save the K names as strings: "
                "class_names=np.array(names, dtype=str)"
            )
    return shapes["x_train"]


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays ``keys`` of the npz at ``path`` (only these are read)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in keys}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        raise DataError(
            f"{path}: not a readable .npz ({one_line(e)}); it is corrupted or truncated: write it again with "
            f"{NPZ_LAYOUT}"
        ) from e


def _check_labels(path: Path, y_train: np.ndarray, y_test: np.ndarray, names: np.ndarray | None) -> tuple[str, ...]:
    """The K class names, after checking the labels against them.

    Parameters
    ----------
    y_train, y_test : np.ndarray
        (n_train,) and (n_test,) integer labels.
    names : np.ndarray or None
        (K,) strings, or None: then K is the largest label + 1 and the names are ``str(k)``.
    """
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        if y.size and y.min() < 0:
            raise DataError(f"{path}: {key} holds label {int(y.min())}; labels must be 0..K-1: renumber the classes")
    if names is None:
        k = int(max(y_train.max(), y_test.max())) + 1
        out = tuple(str(i) for i in range(k))
    else:
        out = tuple(str(s.decode() if isinstance(s, bytes) else s) for s in names)
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        if y.size and y.max() >= len(out):
            raise DataError(
                f"{path}: {key} holds label {int(y.max())} but class_names has {len(out)} names; labels must be "
                f"0..{len(out) - 1}: add the missing names to class_names or renumber the classes"
            )
    empty = np.flatnonzero(np.bincount(y_train, minlength=len(out)) == 0)
    if empty.size:
        which = some([f"{k} ({out[k]!r})" for k in empty])
        raise DataError(
            f"{path}: class(es) {which} have no training example in y_train; add training images of them, "
            "or renumber the labels (and class_names) without them"
        )
    return out


def _npz_meta(path: Path) -> _NpzMeta:
    """Check the npz dataset at ``path`` reading only its headers, labels and class names."""
    headers = _npz_headers(path)
    image_shape = _check_headers(path, headers)
    keys = ("y_train", "y_test", "class_names") if "class_names" in headers else ("y_train", "y_test")
    small = _read_npz(path, keys)
    y_train, y_test = small["y_train"].astype(np.int64), small["y_test"].astype(np.int64)
    names = _check_labels(path, y_train, y_test, small.get("class_names"))
    return _NpzMeta(image_shape, headers["x_train"][0][0], y_train, y_test, names)


def read_npz(path: Path) -> Arrays:
    """Load a ``dataset.name: npz`` file: images (n, H, W, C) uint8 (grey (n, H, W) gets C = 1)."""
    meta = _npz_meta(path)
    x = _read_npz(path, ("x_train", "x_test"))
    x_train, x_test = (a[..., None] if a.ndim == 3 else a for a in (x["x_train"], x["x_test"]))
    return Arrays(x_train, meta.y_train, x_test, meta.y_test, meta.class_names)


def npz_info(path: Path) -> DatasetInfo:
    meta = _npz_meta(path)
    h, w, c = meta.image_shape
    return DatasetInfo((c, h, w), len(meta.class_names), meta.n_train, meta.class_names)


# --- dataset.name folder: an ImageFolder-style tree ------------------------------------------


def from_torchvision(name: str, root: str, download: bool) -> Arrays:
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
