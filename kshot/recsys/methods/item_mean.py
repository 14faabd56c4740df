"""``item_mean``: each item's mean warm rating, damped towards the global mean by ``damping`` pseudo-ratings."""

import numpy as np

from .base import ColdStartMethod


class ItemMean(ColdStartMethod):
    name = "item_mean"
    grid = {"damping": [5.0, 0.0, 1.0, 2.0, 10.0, 25.0, 50.0]}
    tune_shots = (0,)

    def _fit(self, train):
        self.arrays_ = {
            "mu": np.array([train.ratings.mean()]),
            "sum": np.bincount(train.items, train.ratings, train.n_items),
            "count": np.bincount(train.items, minlength=train.n_items).astype(np.float64),
        }

    def predict_items(self, items, ratings, user_features):
        a, lam = self.arrays_, self.params["damping"]
        return (a["sum"] + lam * a["mu"][0]) / np.maximum(a["count"] + lam, 1e-9)
