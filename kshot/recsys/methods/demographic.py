"""``demographic``: the bias model whose new user starts (K = 0) from the bias predicted by the user's side
features (a ridge regression of the warm users' biases on age, gender, occupation, zip prefix); the K
support ratings then pull the bias away from that prior (``user_damping`` pseudo-ratings of it)."""

import numpy as np

from .bias import Bias


class Demographic(Bias):
    name = "demographic"
    grid = {**Bias.grid, "ridge": [10.0, 1.0, 100.0]}

    def refit_needed(self):
        return ("item_damping", "ridge")

    def _fit_prior(self, train, warm_user_bias):
        seen = np.bincount(train.users, minlength=train.n_users) > 0
        x = train.user_features[seen].astype(np.float64)
        x = np.concatenate([x, np.ones((len(x), 1))], 1)
        reg = self.params["ridge"] * np.eye(x.shape[1])
        reg[-1, -1] = 0.0
        w = np.linalg.solve(x.T @ x + reg, x.T @ warm_user_bias[seen])
        self.arrays_["prior_weights"] = w

    def prior(self, user_features) -> float:
        w = self.arrays_["prior_weights"]
        return float(np.asarray(user_features, np.float64) @ w[:-1] + w[-1])
