"""``bias``: damped user + item biases, mu + b_i + b_u (Koren's baseline predictor). Item biases (and
the warm users' biases) come from alternating damped means on the warm data; a new user's bias is the
mean residual of its K support ratings shrunk towards ``prior`` by ``user_damping`` pseudo-ratings."""

import numpy as np

from .base import ColdStartMethod, damped_biases, shrunk_user_bias


class Bias(ColdStartMethod):
    name = "bias"
    grid = {"item_damping": [10.0, 2.0, 5.0, 25.0], "user_damping": [5.0, 1.0, 2.0, 10.0, 20.0, 40.0]}

    def refit_needed(self):
        return ("item_damping",)

    def _fit(self, train):
        mu, bi, bu = damped_biases(train, self.params["item_damping"], self.params["user_damping"])
        self.arrays_ = {"mu": np.array([mu]), "item_bias": bi}
        self.warm_user_bias_ = bu  # used by subclasses while fitting; not saved
        self._fit_prior(train, bu)

    def _fit_prior(self, train, warm_user_bias):
        """Hook for a prior of the new user's bias (``demographic``); zero here."""

    def prior(self, user_features) -> float:
        return 0.0

    def baseline(self, items, ratings, user_features) -> np.ndarray:
        """Predicted ratings of every item: mu + b_i + the new user's shrunk bias."""
        mu, bi = float(self.arrays_["mu"][0]), self.arrays_["item_bias"]
        bu = shrunk_user_bias(ratings - mu - bi[items], self.params["user_damping"], self.prior(user_features))
        return mu + bi + bu

    def predict_items(self, items, ratings, user_features):
        return self.clip(self.baseline(items, ratings, user_features))
