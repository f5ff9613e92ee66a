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

import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from umia.errors import DataError
from umia.io import atomic_path, check_sha256
from umia.registry import DATASETS, DIGITS_SIZE
from umia.tasks.image.files import (
    Arrays,
    DatasetInfo,
    class_names,
    from_torchvision,
    npz_info,
    read_cifar10_npz,
    read_digits,
    read_fashion_mnist,
    read_npz,
)
from umia.tasks.image.folder import folder_info, read_folder

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# --- the public functions --------------------------------------------------------------------

_LOCAL_LOADERS = {"fashion_mnist": read_fashion_mnist, "npz": read_npz, "folder": read_folder}


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
        return npz_info(_local_path(dataset))
    if name == "folder":
        return folder_info(_local_path(dataset))
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
        a = read_digits(dataset["test_fraction"], seed)
    elif dataset.get("path") or (name in DATASETS and DATASETS[name].needs_path):
        path = _local_path(dataset)
        if dataset.get("sha256"):
            check_sha256(path, dataset["sha256"])
        a = _LOCAL_LOADERS.get(name, read_cifar10_npz)(path)
    else:
        a = from_torchvision(name, dataset["root"], dataset["download"])
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


def pool_labels(path: str) -> np.ndarray:
    """Class labels of the pool P, (n_pool,) int64, from the prepared ``.npz``."""
    return load_prepared(path).y_train


def examples(path: str, ids: np.ndarray, dataset: str) -> pd.DataFrame:
    """The pool images ``ids`` as io.EXAMPLES rows: label, class name, shape and raw pixels."""
    a = load_prepared(path)
    x, y = a.x_train[ids], a.y_train[ids]  # (c, H, W, C) uint8
    names = a.class_names or tuple(str(i) for i in range(a.n_classes))
    _, h, w, c = x.shape
    return pd.DataFrame(
        {
            "example_id": ids,
            "label": y,
            "label_name": [names[k] for k in y],
            "height": h,
            "width": w,
            "channels": c,
            "pixels": [img.tobytes() for img in x],
            "text": None,
        }
    )
