"""``mean``: the global mean rating of the warm data for every item (ties: the catalogue order is random)."""

import numpy as np

from .base import ColdStartMethod


class GlobalMean(ColdStartMethod):
    name = "mean"

    def _fit(self, train):
        self.arrays_ = {"mu": np.array([train.ratings.mean()])}

    def predict_items(self, items, ratings, user_features):
        return np.full(self.n_items, float(self.arrays_["mu"][0]))
