"""``itemknn``: item-item neighbours on the support ratings. Similarity = cosine of the items' residuals
under the bias model on the warm data, shrunk by co-rating count (n / (n + ``shrink``)); a new user's
prediction is the bias model's plus the similarity-weighted mean support residual over the support items
with positive similarity, damped by ``knn_damping`` in the denominator."""

import numpy as np

from .bias import Bias


class ItemKNN(Bias):
    name = "itemknn"
    grid = {**Bias.grid, "knn_damping": [1.0, 0.25, 0.5, 2.0, 4.0]}
    shrink = 25.0

    def _fit(self, train):
        super()._fit(train)
        mu, bi = float(self.arrays_["mu"][0]), self.arrays_["item_bias"]
        res = np.zeros((train.n_users, train.n_items), np.float32)
        seen = np.zeros((train.n_users, train.n_items), np.float32)
        res[train.users, train.items] = train.ratings - mu - bi[train.items] - self.warm_user_bias_[train.users]
        seen[train.users, train.items] = 1.0
        dot = res.T @ res
        norm = np.sqrt(np.diag(dot)) + 1e-9
        common = seen.T @ seen
        sim = dot / norm[:, None] / norm[None, :] * common / (common + self.shrink)
        np.fill_diagonal(sim, 0.0)
        self.arrays_["similarity"] = sim.astype(np.float32)

    def predict_items(self, items, ratings, user_features):
        base = self.baseline(items, ratings, user_features)
        if len(items) == 0:
            return self.clip(base)
        sims = np.maximum(self.arrays_["similarity"][:, items], 0.0)
        res = ratings - base[items]
        return self.clip(base + sims @ res / (sims.sum(1) + self.params["knn_damping"]))
