"""A seeded stream of same-class / different-class index pairs for contrastive fine-tuning.

SetFit materialises every pair (quadratic in the number of examples). Here pairs are drawn on demand:
memory is the per-class index lists, O(n), whatever the number of possible pairs, and training runs
for a step budget rather than "all pairs".
"""

from __future__ import annotations

import numpy as np

from ..core.errors import KshotError


class PairStream:
    """Draw batches of rows ``(i, j, same)``; about ``positive_fraction`` of them are same-class pairs."""

    def __init__(self, labels, seed: int = 0, positive_fraction: float = 0.5):
        labels = np.asarray(labels, dtype=np.int64)
        classes = np.unique(labels)
        if len(classes) < 2:
            raise KshotError(f"contrastive pairs need at least 2 classes, got {len(classes)}")
        self.labels = labels
        self.members = [np.flatnonzero(labels == c) for c in classes]
        self.class_of = np.searchsorted(classes, labels)
        self.multi = np.array([k for k, m in enumerate(self.members) if len(m) >= 2], dtype=np.int64)
        self.positive_fraction = positive_fraction if len(self.multi) else 0.0
        self.rng = np.random.default_rng(seed)

    @property
    def possible_pairs(self) -> int:
        n = len(self.labels)
        return n * (n - 1) // 2

    def _positive(self) -> tuple[int, int]:
        members = self.members[self.multi[self.rng.integers(len(self.multi))]]
        i, j = self.rng.choice(len(members), size=2, replace=False)
        return int(members[i]), int(members[j])

    def _negative(self) -> tuple[int, int]:
        i = int(self.rng.integers(len(self.labels)))
        other = int(self.rng.integers(len(self.members) - 1))
        other += other >= self.class_of[i]  # any class but i's
        members = self.members[other]
        return i, int(members[self.rng.integers(len(members))])

    def batch(self, size: int) -> np.ndarray:
        """``[size, 3]`` int64 rows ``(i, j, same)``."""
        out = np.empty((size, 3), dtype=np.int64)
        for row in range(size):
            same = self.rng.random() < self.positive_fraction
            i, j = self._positive() if same else self._negative()
            out[row] = (i, j, int(same))
        return out

    def _classes(self, size: int, classes) -> np.ndarray:
        if not len(self.multi):
            raise KshotError("contrastive fine-tuning needs a class with at least 2 examples")
        return self.rng.permutation(self.multi)[:size] if classes is None else np.asarray(classes)

    def positive_pairs(self, size: int, classes=None) -> np.ndarray:
        """``[size, 2]`` same-class pairs from ``size`` different classes (fewer when fewer classes have
        two examples): flattened, a batch where every text has exactly one partner and all the others
        are negatives, the batch shape that the supervised contrastive loss learns most from.
        ``classes``: the class positions (into ``multi``'s numbering, i.e. ``members``) to use instead
        of random ones."""
        classes = self._classes(size, classes)
        out = np.empty((len(classes), 2), dtype=np.int64)
        for row, k in enumerate(classes):
            members = self.members[k]
            out[row] = members[self.rng.choice(len(members), size=2, replace=False)]
        return out

    def class_groups(self, size: int, per_class: int, classes=None) -> np.ndarray:
        """Up to ``per_class`` texts (without replacement) of each of ``size`` random classes that have two
        or more (or of ``classes``): the supervised contrastive batch when there are few classes
        (``positive_pairs`` is ``per_class=2``). Returns the flat row indices."""
        groups = [self.rng.permutation(self.members[k])[:per_class] for k in self._classes(size, classes)]
        return np.concatenate(groups)

    def __iter__(self):
        while True:
            yield self.batch(16)
