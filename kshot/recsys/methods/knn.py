"""``knn``: item-based nearest neighbours on implicit data (Sarwar et al. 2001; Deshpande & Karypis 2004).
Similarity of two items = cosine of their columns of the warm interaction matrix, shrunk by ``shrink``
(``|i & j| / (sqrt(|i| |j|) + shrink)``); each item keeps its ``neighbours`` most similar items. A new user's
score of item i is the sum of i's similarities to the user's support items (each one term of the
explanation). Not the rating predictor ``itemknn``."""

import numpy as np

from .ranker import LinearRanker, top_neighbours


class ItemKNNRanker(LinearRanker):
    name = "knn"
    grid = {
        "neighbours": [100, 20, 50, 200, 0],
        "shrink": [10.0, 0.0, 50.0],
        "signal": ["positive", "all"],
        **LinearRanker.grid,
    }

    def refit_needed(self):
        return ("neighbours", "shrink", "signal")

    def _fit_ranker(self, train):
        x = self.matrix(train)
        co = (x.T @ x).toarray()
        norm = np.sqrt(np.diag(co))
        sim = co / (norm[:, None] * norm[None, :] + float(self.params["shrink"]) + 1e-12)
        np.fill_diagonal(sim, 0.0)
        # row i of top_neighbours(sim) = i's nearest items; as weights W[j, i]: j is a neighbour of i
        self.arrays_["weights"] = top_neighbours(sim, int(self.params["neighbours"])).T.astype(np.float32)
