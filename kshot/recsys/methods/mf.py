"""``mf``: biased matrix factorisation. The bias model's residuals on the warm data are factorised by
alternating least squares (``factors`` dimensions, L2 ``reg`` per rating); a new user is folded in by a
ridge solve of its support residuals against the fixed item factors (``fold_in_reg``)."""

import numpy as np

from .bias import Bias


def _als_side(keys, others, res, fixed, reg, n):
    """Ridge solve of every row's factors against the ``fixed`` factors of the rows it rated:
    (Q^T Q + reg * n_ratings * I) p = Q^T r, all rows at once (Gram matrices summed per row)."""
    order = np.argsort(keys, kind="stable")
    keys, q, res = keys[order], fixed[others[order]], res[order]
    dim = q.shape[1]
    counts = np.bincount(keys, minlength=n)
    rated = np.flatnonzero(counts)
    starts = np.searchsorted(keys, rated)
    gram = np.zeros((n, dim, dim))
    gram[rated] = np.add.reduceat(np.einsum("ni,nj->nij", q, q), starts)
    rhs = np.zeros((n, dim))
    rhs[rated] = np.add.reduceat(q * res[:, None], starts)
    gram += (reg * np.maximum(counts, 1))[:, None, None] * np.eye(dim)
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


class MatrixFactorization(Bias):
    name = "mf"
    grid = {**Bias.grid, "fold_in_reg": [5.0, 1.0, 2.0, 10.0, 20.0]}
    factors, reg, iters = 20, 0.1, 8

    def _fit(self, train):
        super()._fit(train)
        mu, bi = float(self.arrays_["mu"][0]), self.arrays_["item_bias"]
        res = train.ratings - mu - bi[train.items] - self.warm_user_bias_[train.users]
        rng = np.random.default_rng(self.seed)
        q = rng.normal(0, 0.1, (train.n_items, self.factors))
        for _ in range(self.iters):
            p = _als_side(train.users, train.items, res, q, self.reg, train.n_users)
            q = _als_side(train.items, train.users, res, p, self.reg, train.n_items)
        self.arrays_["item_factors"] = q

    def predict_items(self, items, ratings, user_features):
        base = self.baseline(items, ratings, user_features)
        q = self.arrays_["item_factors"]
        if len(items) == 0:
            return self.clip(base)
        qs = q[items]
        p = np.linalg.solve(
            qs.T @ qs + self.params["fold_in_reg"] * np.eye(qs.shape[1]), qs.T @ (ratings - base[items])
        )
        return self.clip(base + q @ p)
