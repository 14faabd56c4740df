"""What the top-N rankers share: the interaction matrix they learn from, the new user's support as a vector,
the blend with the popularity prior where the support is thin, and the explanation of a score.

A ranker scores every catalogue item for a new user (higher = recommend first; not a rating). Learned
from the warm users' interactions: ``signal="positive"`` keeps the liked ones (rated >= the top quarter
of the scale, 4 on 1..5; every interaction of implicit data), ``"all"`` every rating. The new user's K
items enter as a vector: a liked item weighs 1, one rated lower ``disliked`` (seen, so a hint of the
same audience, but not a wish for more of it).

Blend: ``score = s / max|s| + blend / (1 + K)^4 * popularity / max popularity``, so the popularity prior
counts where the support is thin and is all but gone by K = 5 (at K = 0 a ranker is the popularity shelf, or
its demographic variant); ``blend`` is chosen on the validation users like every other setting. The fourth
power: with EASE and item-kNN on MovieLens-100K's validation users, one item needed a prior weight near 1-3 to
stay level with the shelf and three items or more 0.1 or less; ``blend`` = 30 gives 1.9 at K = 1, 0.12 at
K = 3 and 0.02 at K = 5, which a square cannot give with one setting.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..protocol import default_positive
from .base import ColdStartMethod

TIE = 1e-6  # the prior's weight when ``blend`` is 0: it only breaks ties
PRIOR_DECAY = 4  # the prior's weight falls as (1 + K)^-PRIOR_DECAY (saved with the model; 2 in models saved before it)
BLENDS = (1.0, 0.0, 0.3, 3.0, 10.0, 30.0, 100.0)  # the blend values tuned


class Ranker(ColdStartMethod):
    predicts_ratings = False
    grid = {"blend": BLENDS, "disliked": [0.5, 0.0, 1.0]}
    bounds = {"disliked": (0.0, 1.0)}
    linear = False  # ``raw_scores`` is ``vector @ W`` (exact explanations from W's rows)

    def _fit(self, train):
        positive = default_positive(train)
        self.arrays_ = {
            "prior": np.bincount(train.items, minlength=train.n_items).astype(np.float64),
            "positive": np.array([np.nan if positive is None else positive]),
            "decay": np.array([float(PRIOR_DECAY)]),
        }
        self._fit_ranker(train)

    @property
    def positive_(self) -> float | None:
        """The rating from which a support item counts as liked (None: implicit data)."""
        value = float(self.arrays_["positive"][0])
        return None if np.isnan(value) else value

    def _fit_ranker(self, train) -> None:
        raise NotImplementedError

    def raw_scores(self, items, ratings, user_features) -> np.ndarray:
        """The ranker's own scores of every item, before the blend (zeros when it has nothing to go on,
        as the item-to-item models at K = 0)."""
        raise NotImplementedError

    # ---- shared pieces ------------------------------------------------------------------------------

    def signal_rows(self, train, signal: str | None = None) -> np.ndarray:
        """Which of ``train``'s interactions carry the ``signal`` (``positive``: the liked ones; ``all``, or
        implicit data: every one)."""
        if (signal or self.params.get("signal", "positive")) == "positive" and self.positive_ is not None:
            return train.ratings >= self.positive_
        return np.ones(len(train), bool)

    def matrix(self, train, signal: str | None = None) -> sparse.csr_matrix:
        """Warm users x items, 1 where the user gave the ``signal`` (``positive``: a liked item)."""
        keep = self.signal_rows(train, signal)
        return sparse.csr_matrix(
            (np.ones(int(keep.sum())), (train.users[keep], train.items[keep])), shape=(train.n_users, train.n_items)
        )

    def weights(self, ratings) -> np.ndarray:
        """Each support item's weight: 1 when liked, ``disliked`` when rated lower."""
        ratings = np.asarray(ratings, np.float64)
        positive = self.positive_
        if positive is None or not len(ratings):
            return np.ones(len(ratings))
        return np.where(ratings >= positive, 1.0, float(self.params.get("disliked", 1.0)))

    def vector(self, items, ratings) -> np.ndarray:
        x = np.zeros(self.n_items)
        x[np.asarray(items, np.int64)] = self.weights(ratings)
        return x

    def prior(self, user_features) -> np.ndarray:
        """The scores at K = 0: popularity (``group_popularity`` overrides it)."""
        return self.arrays_["prior"]

    def predict_items(self, items, ratings, user_features):
        s = self.raw_scores(items, ratings, user_features)
        prior = self.prior(user_features)
        prior = prior / max(float(prior.max()), 1e-12)
        top = float(np.abs(s).max()) if len(s) else 0.0
        s = s / top if top > 0 else s
        decay = float(self.arrays_["decay"][0]) if "decay" in self.arrays_ else 2.0  # a model saved before
        weight = float(self.params.get("blend", 0.0)) / (1 + len(items)) ** decay
        return s + (weight + TIE) * prior

    # ---- explanations -----------------------------------------------------------------------------

    def contributions(self, items, ratings, user_features, targets) -> np.ndarray:
        """``[len(targets), len(items)]``: how much each support item adds to each target's raw score.
        Linear rankers give the exact terms ``weight_j * W[j, target]``; the others the drop of the score
        when the item is left out of the support."""
        items, ratings, targets = np.asarray(items, np.int64), np.asarray(ratings), np.asarray(targets, np.int64)
        if self.linear:
            return (self.item_weights(items)[:, targets] * self.weights(ratings)[:, None]).T
        full = self.raw_scores(items, ratings, user_features)[targets]
        out = np.zeros((len(targets), len(items)))
        for j in range(len(items)):
            keep = np.arange(len(items)) != j
            rest = (
                self.raw_scores(items[keep], ratings[keep], user_features)[targets]
                if keep.any()
                else np.zeros(len(targets))
            )
            out[:, j] = full - rest
        return out

    def item_weights(self, items) -> np.ndarray:
        """Rows ``W[items]`` of a linear ranker (``raw_scores = vector @ W``)."""
        raise NotImplementedError


class LinearRanker(Ranker):
    """A ranker whose scores are ``vector @ W`` for an item x item matrix ``W`` (``arrays_["weights"]``):
    EASE, successors, item-kNN, RP3beta. Each score is a sum of one term per support item."""

    linear = True
    tune_folds = 3

    def raw_scores(self, items, ratings, user_features):
        return self.weights(ratings) @ self.item_weights(items).astype(np.float64)

    def item_weights(self, items):
        return self.arrays_["weights"][np.asarray(items, np.int64)]


def top_neighbours(sim: np.ndarray, k: int) -> np.ndarray:
    """Keep each row's ``k`` largest entries (0 or >= the number of columns: keep all), zero the rest."""
    if not k or k >= sim.shape[1]:
        return sim
    cut = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    out = np.zeros_like(sim)
    rows = np.arange(sim.shape[0])[:, None]
    out[rows, cut] = sim[rows, cut]
    return out
