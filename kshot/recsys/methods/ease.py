"""``ease``: EASE (Steck, WWW 2019), a linear item-to-item model in closed form. On the warm users' interaction
matrix X: B = argmin ||X - XB||^2 + lam ||B||^2 with diag(B) = 0, i.e. P = (X^T X + lam I)^-1,
B = -P / diag(P) (columns), diag 0. A new user's scores are ``x @ B`` for its support vector x: it absorbs
any K items without retraining, and each score is a sum of one term per support item (the explanation).
``lam`` is chosen on the validation users."""

import numpy as np

from .ranker import LinearRanker


class EASE(LinearRanker):
    name = "ease"
    grid = {"lam": [500.0, 200.0, 1000.0, 2000.0], "signal": ["positive", "all"], **LinearRanker.grid}

    def refit_needed(self):
        return ("lam", "signal")

    def _fit_ranker(self, train):
        x = self.matrix(train)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += float(self.params["lam"])
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self.arrays_["weights"] = b.astype(np.float32)
