"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 greyscale 28x28 product photos of Zalando articles
in 10 classes, MIT licence.

The IDX files ship in the Debian package ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``:
``/usr/share/datasets/fashion-mnist``); this loader reads them there, or from ``fashion-mnist/`` under the
data root (the same four ``*-idx?-ubyte.gz`` files, or unzipped).

Few-shot splits (no official one exists): the first five classes (T-shirt/top, Trouser, Pullover, Dress,
Coat: clothing) are the base classes, the last five (Sandal, Shirt, Sneaker, Bag, Ankle boot) the novel
ones, which no fitting may see:

* ``train``: the base classes' images of the 60,000-image training file (30,000);
* ``val``: the base classes' images of the 10,000-image test file (5,000), for meta-training's validation;
* ``test``: the novel classes' images of the test file (5,000: 1,000 a class);
* ``all-train`` / ``all-test``: every class of either file (the standard supervised split).

Items: ``[N, 1, 28, 28]`` floats in 0..1, white (1) article on a black (0) background, as in the files.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import torch

from ..core.errors import DataError
from .base import LabeledData
from .store import data_root

FOLDER = "fashion-mnist"
INSTALLED = Path("/usr/share/datasets/fashion-mnist")
SPLITS = ("train", "val", "test", "all-train", "all-test")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
BASE, NOVEL = tuple(range(5)), tuple(range(5, 10))
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
HOW = "apt-get install dataset-fashion-mnist, or put its four *-ubyte.gz files in fashion-mnist/ under the data root"


def _folder(root=None) -> Path | None:
    for path in (data_root(root) / FOLDER, INSTALLED):  # the data root first, then the Debian package's
        if all(_file(path, f) for pair in FILES.values() for f in pair):
            return path
    return None


def _file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def missing_files(root=None) -> list[str]:
    return [] if _folder(root) is not None else [f"{FOLDER}/{f}.gz" for pair in FILES.values() for f in pair]


def _read_idx(path: Path, dims: int) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is corrupt or truncated: {exc}") from None
    if len(raw) < 4 + 4 * dims or raw[2] != 0x08 or raw[3] != dims:
        raise DataError(f"{path} is not an IDX file of {dims}-d unsigned bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: {body.size} bytes of data for shape {shape}")
    return body.reshape(shape)


@functools.lru_cache(maxsize=4)
def _read(folder: str, which: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = FILES[which]
    images = _read_idx(_file(Path(folder), images_name), 3)
    labels = _read_idx(_file(Path(folder), labels_name), 1).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} {which} images but {len(labels)} labels")
    return images, labels


def load_fashion_mnist(split: str = "test", root=None) -> LabeledData:
    """A split of Fashion-MNIST (see the module docstring) as ``LabeledData``; labels are ``0..C-1`` over the
    split's classes, ``class_names`` their names."""
    if split not in SPLITS:
        raise DataError(f"unknown fashion-mnist split {split!r}; choose one of: {', '.join(SPLITS)}")
    folder = _folder(root)
    if folder is None:
        raise DataError(f"Fashion-MNIST files not found under {data_root(root) / FOLDER} or {INSTALLED} ({HOW})")
    which = "train" if split in ("train", "all-train") else "t10k"
    images, labels = _read(str(folder), which)
    classes = BASE if split in ("train", "val") else NOVEL if split == "test" else tuple(range(10))
    keep = np.flatnonzero(np.isin(labels, classes))
    remap = {c: i for i, c in enumerate(classes)}
    items = torch.from_numpy(images[keep].astype(np.float32) / 255.0).unsqueeze(1)
    return LabeledData(
        items,
        np.array([remap[c] for c in labels[keep]]),
        [CLASSES[c] for c in classes],
        name="fashion-mnist",
        split=split,
        meta={"source": str(folder)},
    )
