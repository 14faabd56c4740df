"""``popularity``: ranks items by their number of warm ratings (a ranker: no rating predictions)."""

import numpy as np

from .base import ColdStartMethod


class Popularity(ColdStartMethod):
    name = "popularity"
    predicts_ratings = False

    def _fit(self, train):
        self.arrays_ = {"count": np.bincount(train.items, minlength=train.n_items).astype(np.float64)}

    def predict_items(self, items, ratings, user_features):
        return self.arrays_["count"]
