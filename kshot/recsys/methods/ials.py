"""``ials``: implicit alternating least squares (Hu, Koren & Volinsky, ICDM 2008). Every (user, item) cell is a
0/1 preference with confidence ``1 + confidence`` where the user interacted, 1 elsewhere; user and item
factors (``factors`` dimensions, L2 ``reg``) alternate least-squares solves (conjugate gradient, warm
started; the dense part ``Y^T Y`` once per sweep, the interactions through the sparse matrix). A new user is folded in by the same solve
against the fixed item factors: ``x = (Y^T Y + c Y_S^T Y_S + reg I)^-1 (1 + c) Y_S^T w`` (Hu et al.'s
"recalculate the user"); no retraining. The fold-in regularisation is tuned on the validation users."""

import numpy as np
from scipy import sparse

from .ranker import Ranker


def _solve_rows(x, fixed, confidence, reg, start, steps=3):
    """Each row's factors given the other side's ``fixed`` factors (``x``: csr rows of 0/1 interactions):
    ``steps`` conjugate-gradient steps from ``start`` on (F^T F + reg I + c F_S^T F_S) u = (1 + c) F_S^T 1,
    all rows at once (Takacs et al. 2011); the product with F_S^T F_S goes through the sparse rows."""
    gram = fixed.T @ fixed + reg * np.eye(fixed.shape[1])
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    cols = x.indices
    at_cols = fixed[cols]

    def apply(v):
        w = np.einsum("nd,nd->n", at_cols, v[rows])
        return v @ gram + confidence * (sparse.csr_matrix((w, (rows, cols)), shape=x.shape) @ fixed)

    u = start.copy()
    r = (1 + confidence) * (x @ fixed) - apply(u)
    p, rs = r.copy(), (r * r).sum(1)
    for _ in range(steps):
        ap = apply(p)
        alpha = rs / np.maximum((p * ap).sum(1), 1e-30)
        u += alpha[:, None] * p
        r -= alpha[:, None] * ap
        new = (r * r).sum(1)
        p = r + (new / np.maximum(rs, 1e-30))[:, None] * p
        rs = new
    return u


class IALS(Ranker):
    name = "ials"
    grid = {
        "factors": [64],
        "confidence": [10.0, 3.0, 30.0],
        "reg": [10.0, 100.0],
        "fold_in_reg": [10.0, 1.0, 100.0],
        **Ranker.grid,
    }
    iters, tune_folds = 10, 3

    def refit_needed(self):
        return ("factors", "confidence", "reg")

    def _fit_ranker(self, train):
        x = self.matrix(train)
        xt = x.T.tocsr()
        rng = np.random.default_rng(self.seed)
        c, reg = float(self.params["confidence"]), float(self.params["reg"])
        items = rng.normal(0, 0.01, (train.n_items, int(self.params["factors"])))
        users = np.zeros((train.n_users, items.shape[1]))
        for _ in range(self.iters):
            users = _solve_rows(x, items, c, reg, users)
            items = _solve_rows(xt, users, c, reg, items)
        self.arrays_["item_factors"] = items.astype(np.float32)

    def raw_scores(self, items, ratings, user_features):
        y = self.arrays_["item_factors"].astype(np.float64)
        ys = y[np.asarray(items, np.int64)]
        c = float(self.params["confidence"])
        w = self.weights(ratings)
        a = y.T @ y + c * (ys * w[:, None]).T @ ys + float(self.params["fold_in_reg"]) * np.eye(y.shape[1])
        return y @ np.linalg.solve(a, (1 + c) * (ys * w[:, None]).sum(0))
