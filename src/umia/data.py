"""Datasets: load digits, Fashion-MNIST, CIFAR-10 or any local images into one prepared ``.npz``.

The prepared file holds ``x_train`` and ``x_test`` as uint8 arrays of shape (n, H, W, C),
``y_train``, ``y_test`` as int64 class labels and ``class_names`` (K strings). The training split
is the pool P; the test split is never trained on.

Besides the registered datasets of fixed shape, two generic ones read local files:

* ``npz``: an ``.npz`` of ``x_train``, ``y_train``, ``x_test``, ``y_test`` (images uint8
  (n, H, W, C) or (n, H, W); labels integers 0..K-1) and optionally ``class_names`` (K strings);
* ``folder``: an ImageFolder-style tree ``path/train/<class>/*.png|jpg|jpeg|bmp`` and
  ``path/test/<class>/*``; the classes are the sorted names of train's sub-folders (hidden
  entries, loose files and files of other suffixes are ignored).

:func:`inspect` describes a dataset (shape, classes, pool size) without decoding its images, for
the config's validation.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from umia.errors import DataError
from umia.io import atomic_path
from umia.registry import DATASETS, DIGITS_SIZE

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

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


def _one_line(e: BaseException) -> str:
    """An exception as ``Type: message`` on one line."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _some(items: Iterable[object], n: int = 5) -> str:
    """The first ``n`` of ``items`` joined by commas, with ``...`` if there are more."""
    items = list(items)
    return ", ".join(str(i) for i in items[:n]) + (", ..." if len(items) > n else "")


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
        raise DataError(f"{path}: not a readable .npz ({_one_line(e)}); write it with {NPZ_LAYOUT}") from e


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
            f"{path}: not a readable .npz ({_one_line(e)}); it is corrupted or truncated: write it again with "
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
        which = _some([f"{k} ({out[k]!r})" for k in empty])
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


def _generic_npz(path: Path) -> Arrays:
    """Load a ``dataset.name: npz`` file: images (n, H, W, C) uint8 (grey (n, H, W) gets C = 1)."""
    meta = _npz_meta(path)
    x = _read_npz(path, ("x_train", "x_test"))
    x_train, x_test = (a[..., None] if a.ndim == 3 else a for a in (x["x_train"], x["x_test"]))
    return Arrays(x_train, meta.y_train, x_test, meta.y_test, meta.class_names)


def _npz_info(path: Path) -> DatasetInfo:
    meta = _npz_meta(path)
    h, w, c = meta.image_shape
    return DatasetInfo((c, h, w), len(meta.class_names), meta.n_train, meta.class_names)


# --- dataset.name folder: an ImageFolder-style tree ------------------------------------------


def _split_dir(root: Path, split: str) -> Path:
    d = root / split
    if not d.is_dir():
        raise DataError(f"{root}: has no {split}/ folder; dataset.name folder needs {FOLDER_LAYOUT}")
    return d


def _image_files(class_dir: Path) -> list[Path]:
    """The images (by suffix, hidden files left out) directly in ``class_dir``, sorted by name."""
    with os.scandir(class_dir) as it:
        files = [
            Path(e.path)
            for e in it
            if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(IMAGE_SUFFIXES)
        ]
    if not files:
        raise DataError(
            f"{class_dir}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)}); "
            "put images in it or remove the folder"
        )
    return sorted(files)


def _class_files(split_dir: Path) -> dict[str, list[Path]]:
    """Class name -> its image files, for each (non-hidden) sub-folder of ``split_dir``, sorted."""
    with os.scandir(split_dir) as it:
        names = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise DataError(f"{split_dir}: has no class folders; dataset.name folder needs {FOLDER_LAYOUT}")
    return {n: _image_files(split_dir / n) for n in names}


def _folder_files(root: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """The train and test images of each class of the tree at ``root``; the same classes in both."""
    train = _class_files(_split_dir(root, "train"))
    test = _class_files(_split_dir(root, "test"))
    extra = sorted(set(test) - set(train))
    if extra:
        raise DataError(
            f"{root / 'test' / extra[0]}: class {extra[0]!r} is not among the train classes "
            f"({_some(train)}); rename it to a train class or add {root / 'train' / extra[0]}"
        )
    lacking = sorted(set(train) - set(test))
    if lacking:
        raise DataError(
            f"{root / 'test'}: has no folder for train class {lacking[0]!r}; add {root / 'test' / lacking[0]} "
            f"with test images of it or remove {root / 'train' / lacking[0]}"
        )
    return train, test


def _open_image(file: Path) -> PILImage:
    """``file`` opened with Pillow (lazily: only its header is read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(file)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{file}: not a readable image ({_one_line(e)}); replace or remove it") from e


def _image_shape(file: Path) -> tuple[int, int, int]:
    """(H, W, C) of the image ``file`` from its header: C = 1 for grey ('L'), else 3."""
    with _open_image(file) as im:
        w, h = im.size
        return (h, w, 1 if im.mode == "L" else 3)


def _decode(file: Path) -> np.ndarray:
    """The image ``file`` as (H, W, C) uint8: grey ('L') keeps C = 1, any other mode becomes RGB."""
    with _open_image(file) as im:
        try:
            im = im if im.mode in ("L", "RGB") else im.convert("RGB")
            a = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise DataError(f"{file}: cannot be decoded ({_one_line(e)}); replace or remove it") from e
    return a[..., None] if a.ndim == 2 else a


def _describe(shape: tuple[int, int, int]) -> str:
    h, w, c = shape
    return f"{w}x{h} {'grey (L)' if c == 1 else 'RGB'}"


def _stack(files: list[Path], shape: tuple[int, int, int], first: Path) -> np.ndarray:
    """The images ``files`` decoded into one (n, H, W, C) uint8 array; each must be ``shape``."""
    out = np.empty((len(files), *shape), dtype=np.uint8)
    for i, f in enumerate(files):
        a = _decode(f)
        if a.shape != shape:
            raise DataError(
                f"{f}: is {_describe(a.shape)} but {first} is {_describe(shape)}; all images need one size and "
                f"channel count: resize or convert {f.name} to {_describe(shape)}"
            )
        out[i] = a
    return out


def _flatten(by_class: Mapping[str, list[Path]], classes: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    """All files of ``by_class`` in class order, and their (n,) int64 labels (index in ``classes``)."""
    files = [f for c in classes for f in by_class[c]]
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(by_class[c]) for c in classes])
    return files, labels


def _image_folder(root: Path) -> Arrays:
    """Load a ``dataset.name: folder`` tree; labels are the class folders' sorted order."""
    train, test = _folder_files(root)
    classes = tuple(train)
    first = train[classes[0]][0]
    shape = _image_shape(first)
    (f_train, y_train), (f_test, y_test) = _flatten(train, classes), _flatten(test, classes)
    log.info("%s: decoding %d train and %d test images", root, len(f_train), len(f_test))
    return Arrays(_stack(f_train, shape, first), y_train, _stack(f_test, shape, first), y_test, classes)


def _folder_info(root: Path) -> DatasetInfo:
    train, _ = _folder_files(root)
    classes = tuple(train)
    h, w, c = _image_shape(train[classes[0]][0])
    return DatasetInfo((c, h, w), len(classes), sum(len(v) for v in train.values()), classes)


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


# --- the public functions --------------------------------------------------------------------

_LOCAL_LOADERS = {"fashion_mnist": _fashion_mnist_folder, "npz": _generic_npz, "folder": _image_folder}


def _local_path(dataset: Mapping) -> Path:
    """``dataset.path``, which must be set and exist."""
    name, path = dataset["name"], dataset.get("path")
    spec = DATASETS.get(name)
    if not path:
        what = spec.description if spec is not None and spec.description else f"your {name} file or folder"
        raise DataError(f"dataset.name {name} needs dataset.path; point it at {what}")
    path = Path(path)
    if not path.exists():
        fix = "fix it" if spec is not None and spec.needs_path else "fix it or set it to null to download"
        raise DataError(f"dataset.path {path} does not exist; {fix}")
    return path


def fingerprint(path: str | os.PathLike) -> str:
    """What a local dataset file or folder is, cheaply (no file is read): size and modification
    time of the file, or of every file under the folder, hashed. For datasets whose path *is* the
    data (npz, folder): a new file under the same name is a new experiment."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if f != p else f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def inspect(dataset: Mapping) -> DatasetInfo:
    """Describe a dataset cheaply, for the config's validation: no image is decoded.

    Parameters
    ----------
    dataset : Mapping
        The config's ``dataset`` section (``name``, and ``path`` or ``test_fraction`` as it needs).

    Returns
    -------
    DatasetInfo
        Image shape (C, H, W), number of classes, pool size and class names. For digits,
        Fashion-MNIST and CIFAR-10 these are the registry's; an ``npz`` is read from its array
        headers, labels and class names; a ``folder`` from its file counts and one image header.
    """
    name = dataset["name"]
    spec = DATASETS.get(name)
    if spec is None or spec.task != "image":
        images = ", ".join(n for n, s in DATASETS.items() if s.task == "image")
        raise DataError(f"dataset.name {name}: not an image dataset umia knows; use one of {images}")
    if name == "npz":
        return _npz_info(_local_path(dataset))
    if name == "folder":
        return _folder_info(_local_path(dataset))
    pool = spec.pool_size
    if name == "digits":
        pool = DIGITS_SIZE - math.ceil(dataset["test_fraction"] * DIGITS_SIZE)
    return DatasetInfo(spec.shape, spec.n_classes, pool, spec.class_names)


def load(dataset: Mapping, seed: int) -> Arrays:
    """Load a dataset as described by the config's ``dataset`` section.

    Returns
    -------
    Arrays
        (n, H, W, C) uint8 images, int64 labels and class names: the registry's for a
        registered dataset, the file's or folders' for ``npz`` and ``folder``.
    """
    name = dataset["name"]
    if name == "digits":
        a = _digits(dataset["test_fraction"], seed)
    elif dataset.get("path") or (name in DATASETS and DATASETS[name].needs_path):
        path = _local_path(dataset)
        if dataset.get("sha256"):
            _check_sha256(path, dataset["sha256"])
        a = _LOCAL_LOADERS.get(name, _cifar10_npz)(path)
    else:
        a = _torchvision(name, dataset["root"], dataset["download"])
    return a if a.class_names is not None else replace(a, class_names=class_names(name))


def prepare(dataset: Mapping, seed: int, out: str) -> Arrays:
    """Load a dataset and write it as the prepared ``.npz`` (atomically), with its class names
    (``str(k)`` where unknown)."""
    a = load(dataset, seed)
    if len(a.x_train) != len(a.y_train) or len(a.x_test) != len(a.y_test):
        raise DataError(f"{dataset['name']}: images and labels differ in number")
    if a.class_names is None:
        a = replace(a, class_names=tuple(str(k) for k in range(a.n_classes)))
    log.info("%s: pool %s, test %s, %d classes", dataset["name"], a.x_train.shape, a.x_test.shape, a.n_classes)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                x_train=a.x_train,
                y_train=a.y_train,
                x_test=a.x_test,
                y_test=a.y_test,
                class_names=np.array(a.class_names, dtype=str),
            )
    return a


def load_prepared(path: str) -> Arrays:
    """The prepared ``.npz`` at ``path``; a file written before class names were stored gets
    ``str(k)`` names."""
    with np.load(path) as z:
        names = tuple(str(s) for s in z["class_names"]) if "class_names" in z.files else None
        a = Arrays(z["x_train"], z["y_train"], z["x_test"], z["y_test"], names)
    return a if names is not None else replace(a, class_names=tuple(str(i) for i in range(a.n_classes)))
