"""Episodes: N-way K-shot tasks sampled from labelled data.

``EpisodeSampler`` keeps one index array per class (no per-item objects) and draws episode ``i`` from
a generator seeded by ``(seed, i)``: the same seed always gives the same episodes, episode ``i`` can
be drawn without drawing ``0..i-1`` (so a resumed run continues exactly), and the evaluation episodes
are a pure function of (labels, way, shot, query, seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from ..core.errors import KshotError, check_positive_int


@dataclass
class Episode:
    """One task (or a batch of T tasks, with a leading task dimension on every tensor).

    ``support_labels`` / ``query_labels`` are in ``0..way-1``; ``classes`` holds the original class ids
    in that order.
    """

    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor
    classes: torch.Tensor

    @property
    def way(self) -> int:
        return self.classes.shape[-1]

    @property
    def shot(self) -> int:
        return self.support_labels.shape[-1] // self.way

    def to(self, device) -> "Episode":
        """The episode with every tensor on ``device``."""
        return Episode(*(t.to(device, non_blocking=True) for t in self.astuple()))

    def astuple(self):
        """(support, support_labels, query, query_labels, classes)."""
        return self.support, self.support_labels, self.query, self.query_labels, self.classes

    @staticmethod
    def stack(episodes: Sequence["Episode"]) -> "Episode":
        """A batch of T episodes of the same shape: every tensor gets a leading task dimension."""
        return Episode(*(torch.stack(parts) for parts in zip(*(e.astuple() for e in episodes))))


@dataclass(frozen=True)
class EpisodeIndex:
    """Which items form an episode: positions into the dataset, ordered class by class."""

    support: np.ndarray  # [way * shot]
    query: np.ndarray  # [way * query]
    classes: np.ndarray  # [way] original class ids


class EpisodeSampler:
    """Draws N-way K-shot episodes with ``query`` queries per class from integer ``labels``.

    Impossible requests fail here, at construction, with a message naming the value.
    """

    def __init__(self, labels, way: int, shot: int, query: int, seed: int = 0):
        self.way = check_positive_int("way", way, 1)
        self.shot = check_positive_int("shot", shot, 1)
        self.query = check_positive_int("query", query, 0)
        self.seed = check_positive_int("seed", seed, 0)
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise KshotError("labels must be a non-empty 1-D array of class ids")
        self.class_ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if self.way > len(self.class_ids):
            raise KshotError(
                f"way={self.way} is larger than the number of classes ({len(self.class_ids)}) in this split"
            )
        per_class = self.shot + self.query
        if per_class > counts.min():
            raise KshotError(
                f"shot + query = {per_class} is larger than the smallest class "
                f"({counts.min()} items); lower shot or query"
            )
        order = np.argsort(inverse, kind="stable")
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self._order = order
        self._counts = counts
        self._equal = bool((counts == counts[0]).all())

    def __len__(self) -> int:  # number of classes available
        return len(self.class_ids)

    def index(self, i: int) -> EpisodeIndex:
        """Episode ``i`` of this sampler's seed."""
        rng = np.random.default_rng([self.seed, int(i)])
        chosen = rng.choice(len(self.class_ids), self.way, replace=False)
        k = self.shot + self.query
        if self._equal:  # all classes equal: one vectorised draw
            picks = rng.random((self.way, self._counts[0])).argsort(axis=1)[:, :k]
        else:
            picks = np.stack([rng.choice(self._counts[c], k, replace=False) for c in chosen])
        pos = self._order[self._offsets[chosen][:, None] + picks]  # [way, shot + query]
        return EpisodeIndex(pos[:, : self.shot].reshape(-1), pos[:, self.shot :].reshape(-1), self.class_ids[chosen])

    def indices(self, n: int, start: int = 0) -> Iterator[EpisodeIndex]:
        """The item positions of episodes ``start .. start + n - 1``."""
        for i in range(start, start + n):
            yield self.index(i)

    def episode(self, items, i: int) -> Episode:
        """Episode ``i`` gathered from ``items``."""
        return make_episode(items, self.index(i), self.shot, self.query)

    def episodes(self, items, n: int, start: int = 0, batch: int = 1) -> Iterator[Episode]:
        """``n`` episodes from ``start``; with ``batch > 1`` yields stacked batches of episodes."""
        for b in range(start, start + n, batch):
            eps = [self.episode(items, i) for i in range(b, min(b + batch, start + n))]
            yield eps[0] if batch == 1 else Episode.stack(eps)


def make_episode(items, idx: EpisodeIndex, shot: int, query: int) -> Episode:
    """Gather the items of ``idx`` into an ``Episode`` (items: a tensor ``[N, ...]``)."""
    way = len(idx.classes)
    if isinstance(items, torch.Tensor):
        support = items[torch.from_numpy(idx.support)]
        query_items = items[torch.from_numpy(idx.query)]
    else:  # e.g. a list of strings: keep Python lists
        support = [items[j] for j in idx.support]
        query_items = [items[j] for j in idx.query]
    ar = torch.arange(way)
    return Episode(
        support, ar.repeat_interleave(shot), query_items, ar.repeat_interleave(query), torch.from_numpy(idx.classes)
    )
