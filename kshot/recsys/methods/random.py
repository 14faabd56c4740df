"""``random``: a random order of the catalogue (a ranker: no rating predictions), seeded."""

import numpy as np

from .base import ColdStartMethod


class RandomRanker(ColdStartMethod):
    name = "random"
    predicts_ratings = False

    def _fit(self, train):
        self.arrays_ = {}

    def predict_items(self, items, ratings, user_features):
        key = [self.seed, len(items), *np.asarray(items, np.int64).tolist()]
        return np.random.default_rng(key).random(self.n_items)
