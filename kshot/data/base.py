"""LabeledData: what every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import KshotError


@dataclass
class LabeledData:
    """Items with integer labels ``0..C-1`` and the names of those classes.

    ``items`` is a tensor ``[N, ...]`` for images or a list of strings for text.
    """

    items: Any
    labels: np.ndarray
    class_names: list[str]
    name: str = ""
    split: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.items) != len(self.labels):
            raise KshotError(f"{self.name}: {len(self.items)} items but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.items.shape[1:])

    def __repr__(self) -> str:
        return f"LabeledData(name={self.name!r}, split={self.split!r}, items={len(self)}, classes={self.num_classes})"


@dataclass
class DatasetInfo:
    """One entry of the dataset registry (``kshot datasets``)."""

    name: str
    description: str
    folder: str  # relative to the data root
    splits: Sequence[str]
    files: Callable[[Any], list[str]]  # (root) -> files that are missing ([] when present)
    load: Callable[..., LabeledData]
    kind: str = "image"


def class_halves(labels, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed split for data sets without an official one: each class's indices in a permutation seeded
    with ``seed``, the first half (rounded up) to ``train``, the rest to ``test``; returns both, sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    halves = [np.array_split(rng.permutation(np.flatnonzero(labels == c)), 2) for c in np.unique(labels)]
    return np.sort(np.concatenate([h[0] for h in halves])), np.sort(np.concatenate([h[1] for h in halves]))
