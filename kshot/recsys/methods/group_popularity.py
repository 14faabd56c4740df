"""``group_popularity``: popularity within the new user's demographic group. The group is the ``group``
warm users whose side features (age, gender, occupation, zip prefix on MovieLens) are closest to the new
user's (cosine); an item's score is its number of liked interactions among them, plus ``shrink`` times its
share of the whole warm data. Support items do not move it (a K = 0 model: the user's features only);
without user features it is plain popularity."""

import numpy as np

from .ranker import Ranker


class GroupPopularity(Ranker):
    name = "group_popularity"
    grid = {"group": [100, 25, 50, 200, 400], "shrink": [10.0, 0.0, 100.0]}
    tune_shots, tune_folds = (0,), 3

    def refit_needed(self):
        return ("group",)

    def _fit_ranker(self, train):
        x = self.matrix(train, "positive")
        seen = np.flatnonzero(np.asarray(self.matrix(train, "all").sum(1)).ravel() > 0)
        feats = train.user_features[seen].astype(np.float64)
        self.arrays_["user_features"] = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        self.arrays_["liked"] = x[seen].toarray().astype(np.float32)

    def prior(self, user_features):
        f = np.asarray(user_features, np.float64).ravel()
        liked = self.arrays_["liked"]
        total = liked.sum(0).astype(np.float64)
        if not f.size or not np.any(f) or not self.arrays_["user_features"].shape[1]:
            return total
        sim = self.arrays_["user_features"] @ (f / np.linalg.norm(f))
        group = np.argsort(-sim, kind="stable")[: int(self.params["group"])]
        return liked[group].sum(0) + float(self.params["shrink"]) * total / max(len(liked), 1)

    def raw_scores(self, items, ratings, user_features):
        return np.zeros(self.n_items)
