"""What the text sets that ship inside packages (PyPI, Debian, npm) share: where a package put the
files, the split check, and the fixed per-class halves for sets without an official split. kshot reads
such data where the package installed it, or from the data root; it never fetches or copies it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..core.errors import DataError
from .base import LabeledData, class_halves
from .files import labeled_from_strings
from .store import data_root


def first_folder(root, folder: str, installed: list[Path]) -> Path | None:
    """The data set's folder: ``folder`` under the data root when it is there, else the first existing
    place an installed package put it (``installed``), else None. Data sets that come inside a package
    (PyPI, Debian, npm) are read where the package installed them, never fetched."""
    for path in [data_root(root) / folder, *installed]:
        if path.is_dir():
            return path
    return None


def python_package_dir(package: str, *parts: str) -> list[Path]:
    """``[folder]`` of an installed Python package's data (without importing the package), or ``[]``."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(next(iter(spec.submodule_search_locations)), *parts)]


def npm_package_dirs(package: str) -> list[Path]:
    """Where ``npm install -g PACKAGE`` (or one on ``NODE_PATH``) puts a package: candidate folders."""
    bases = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    prefix = os.environ.get("NPM_CONFIG_PREFIX")
    if prefix:
        bases.append(str(Path(prefix) / "lib" / "node_modules"))
    bases += ["/usr/local/lib/node_modules", "/usr/lib/node_modules"]
    return [Path(b) / package for b in bases]


def require(found: Path | None, name: str, how: str) -> Path:
    """``found``, or a one-line DataError saying how to install the set ``name``."""
    if found is None:
        raise DataError(f"{name}: not found under the data root or where its package installs it ({how})")
    return found


def check_split(name: str, split: str, splits) -> None:
    if split not in splits:
        raise DataError(f"unknown {name} split {split!r}; choose one of: {', '.join(splits)}")


def from_rows(rows, name: str, split: str, classes, seed: int | None, **meta) -> LabeledData:
    """``(text, label)`` rows as LabeledData: all of them for ``split="all"`` (or ``seed=None``: the rows
    are the split already), else the ``train`` or ``test`` half of each class (``class_halves``)."""
    labels = [y for _, y in rows]
    keep = range(len(rows)) if split == "all" or seed is None else class_halves(labels, seed)[split == "test"]
    return labeled_from_strings(
        [rows[i][0] for i in keep], [labels[i] for i in keep], name, split, list(classes), **meta
    )
