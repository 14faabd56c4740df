"""``rp3beta``: RP3beta (Paudel et al., ACM TIIS 2017), three-step random walks item -> user -> item on the
warm interaction graph. The transition probabilities P(u | i) and P(j | u) give W = (P_iu P_ui)^alpha,
divided by popularity(j)^beta to lift long-tail items; each item keeps its ``neighbours`` strongest
successors. A new user's scores are ``x @ W`` (one term per support item)."""

import numpy as np

from .ranker import LinearRanker, top_neighbours


class RP3Beta(LinearRanker):
    name = "rp3beta"
    grid = {
        "alpha": [1.0, 0.5, 0.75, 1.5],
        "beta": [0.0, 0.1, 0.2, 0.4],
        "neighbours": [200, 50, 100, 0],
        "signal": ["positive", "all"],
        **LinearRanker.grid,
    }

    def refit_needed(self):
        return ("alpha", "beta", "neighbours", "signal")

    def _fit_ranker(self, train):
        x = self.matrix(train)
        per_item = np.asarray(x.sum(0)).ravel()
        per_user = np.asarray(x.sum(1)).ravel()
        p_ui = x.multiply(1.0 / np.maximum(per_user, 1)[:, None]).tocsr()  # user -> item
        p_iu = x.T.multiply(1.0 / np.maximum(per_item, 1)[:, None]).tocsr()  # item -> user
        w = (p_iu @ p_ui).toarray() ** float(self.params["alpha"])
        w /= np.maximum(per_item, 1)[None, :] ** float(self.params["beta"])
        np.fill_diagonal(w, 0.0)
        self.arrays_["weights"] = top_neighbours(w, int(self.params["neighbours"])).astype(np.float32)
