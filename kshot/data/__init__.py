"""Datasets: a small registry of loaders that return ``LabeledData``."""

from __future__ import annotations

from ..errors import KshotError
from . import omniglot
from .base import DatasetInfo, LabeledData
from .store import data_root, download, sha256_file, verify_sha256

DATASETS: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    DATASETS[info.name] = info
    return info


register(DatasetInfo(
    name="omniglot",
    description="Omniglot handwritten characters, 28x28; Vinyals split with rotations (or Lake split)",
    folder=omniglot.FOLDER,
    splits=omniglot.VINYALS_SPLITS,
    files=omniglot.missing_files,
    load=omniglot.load_omniglot,
))


def get_dataset(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise KshotError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def load_dataset(name: str, split: str, root=None, **kwargs) -> LabeledData:
    """Load ``split`` of the dataset called ``name`` (see ``kshot datasets``)."""
    return get_dataset(name).load(split=split, root=root, **kwargs)


__all__ = ["DATASETS", "DatasetInfo", "LabeledData", "data_root", "download", "get_dataset",
           "load_dataset", "register", "sha256_file", "verify_sha256"]
