"""Reading an ImageFolder-style tree, ``path/train/<class>/*`` and ``path/test/<class>/*``:
the classes are the sorted names of train's sub-folders; hidden entries, loose files and files
of other suffixes are ignored; every image of a split must have the first one's shape."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from umia.errors import DataError, one_line, some
from umia.tasks.image.files import FOLDER_LAYOUT, IMAGE_SUFFIXES, Arrays, DatasetInfo

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)


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
            f"({some(train)}); rename it to a train class or add {root / 'train' / extra[0]}"
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
        raise DataError(f"{file}: not a readable image ({one_line(e)}); replace or remove it") from e


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
            raise DataError(f"{file}: cannot be decoded ({one_line(e)}); replace or remove it") from e
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


def read_folder(root: Path) -> Arrays:
    """Load a ``dataset.name: folder`` tree; labels are the class folders' sorted order."""
    train, test = _folder_files(root)
    classes = tuple(train)
    first = train[classes[0]][0]
    shape = _image_shape(first)
    (f_train, y_train), (f_test, y_test) = _flatten(train, classes), _flatten(test, classes)
    log.info("%s: decoding %d train and %d test images", root, len(f_train), len(f_test))
    return Arrays(_stack(f_train, shape, first), y_train, _stack(f_test, shape, first), y_test, classes)


def folder_info(root: Path) -> DatasetInfo:
    train, _ = _folder_files(root)
    classes = tuple(train)
    h, w, c = _image_shape(train[classes[0]][0])
    return DatasetInfo((c, h, w), len(classes), sum(len(v) for v in train.values()), classes)
