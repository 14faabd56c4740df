"""``successors``: EASE plus what the warm users went on to like *after* each item. A new user's support
items are where they start; the items they add next tend to be the ones other users reached after those
same items (sequential rules, as in session-based recommendation; Ludewig and Jannach, UMUAI 2018).

On the warm users' interactions in time order: T[j, i] sums ``1 / gap^DECAY`` over every pair where item
``i`` (a liked one, under ``signal="positive"``) comes ``gap`` positions after ``j`` (up to MAX_GAP; a pair
with the same timestamp counts both ways, since its order is unknown). T is divided by
``count_j^BETA like_i^(1-BETA)`` (j's interactions, i's liked ones; each + 1) so that neither the most
popular starts nor ends dominate. The scores are ``x @ (B / |B| + mix * S / |S|)`` for EASE's weights B and
the normalised successors S (each scaled by the mean of its rows' largest absolute entry): still one term
per support item (the explanation), and the new user's own order does not matter. ``mix`` is chosen on the
validation users (0 is EASE itself). DECAY and BETA were chosen on the MovieLens-100K validation users.
"""

import numpy as np

from .ease import EASE

DECAY = 0.25  # the weight of a successor ``gap`` positions later: 1 / gap^DECAY
BETA = 0.8  # the popularity normalisation's share on the earlier item
CHUNK = 4_000_000  # pairs counted at a time (bounds the memory)
MAX_GAP = 1_000  # successors further on are not counted (bounds the work on very long histories)


def _pairs(n_rows: int):
    """Positions (earlier, later) of the pairs at most MAX_GAP apart in a history of ``n_rows``, in
    blocks of about CHUNK pairs."""
    if n_rows <= MAX_GAP + 1:
        yield np.triu_indices(n_rows, 1)
        return
    gaps = np.arange(1, MAX_GAP + 1)
    step = max(1, CHUNK // MAX_GAP)
    for start in range(0, n_rows - 1, step):
        a = np.arange(start, min(start + step, n_rows - 1))[:, None]
        b = a + gaps[None, :]
        inside = b < n_rows
        yield np.broadcast_to(a, b.shape)[inside], b[inside]


def successor_counts(train, target: np.ndarray) -> np.ndarray:
    """``[n_items, n_items]``: for each ordered pair (earlier j, later i, at most MAX_GAP positions apart)
    within a warm user's interactions in time order, with ``target`` true on i's row, ``1 / gap^DECAY``
    summed over users; pairs with equal timestamps count in both directions."""
    n = train.n_items
    total = np.zeros(n * n)
    firsts, seconds, weights, size = [], [], [], 0

    def flush():
        nonlocal firsts, seconds, weights, size
        if firsts:
            cells, where = np.unique(np.concatenate(firsts) * n + np.concatenate(seconds), return_inverse=True)
            total[cells] += np.bincount(where, np.concatenate(weights))
        firsts, seconds, weights, size = [], [], [], 0

    for rows in train.user_rows():
        if len(rows) < 2:
            continue
        for a, b in _pairs(len(rows)):
            tied = train.timestamps[rows[a]] == train.timestamps[rows[b]]
            a, b = np.concatenate([a, b[tied]]), np.concatenate([b, a[tied]])  # ties: both ways
            keep = target[rows[b]]
            a, b = a[keep], b[keep]
            firsts.append(train.items[rows[a]])
            seconds.append(train.items[rows[b]])
            weights.append(np.abs(b - a).astype(np.float64) ** -DECAY)
            size += len(a)
            if size > CHUNK:
                flush()
    flush()
    return total.reshape(n, n)


def row_scale(w: np.ndarray) -> float:
    """The mean over rows of each row's largest absolute entry (1 for an all-zero matrix)."""
    scale = float(np.abs(w).max(1).mean()) if w.size else 0.0
    return scale if scale > 0 else 1.0


class Successors(EASE):
    name = "successors"
    grid = {**EASE.grid, "mix": [2.0, 0.0, 1.0, 4.0]}

    def _fit_ranker(self, train):
        super()._fit_ranker(train)
        b = self.arrays_["weights"].astype(np.float64)
        liked = self.signal_rows(train)
        starts = np.bincount(train.items, minlength=train.n_items) + 1.0  # every interaction can be a start
        ends = np.bincount(train.items[liked], minlength=train.n_items) + 1.0
        s = successor_counts(train, liked) / starts[:, None] ** BETA / ends[None, :] ** (1 - BETA)
        self.arrays_["weights"] = (b / row_scale(b)).astype(np.float32)
        self.arrays_["successors"] = (s / row_scale(s)).astype(np.float32)

    def item_weights(self, items):
        items = np.asarray(items, np.int64)
        return self.arrays_["weights"][items] + float(self.params["mix"]) * self.arrays_["successors"][items]
