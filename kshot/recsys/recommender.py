"""The practitioner API: fit a cold-start recommender on warm ratings, then predict and recommend for a
user it has never seen from a dict ``item id -> rating``; save/load as safetensors + JSON (no pickle).

    rec = Recommender("bias").fit(train, val)          # or .fit(data): 10% of users held out for tuning
    rec.predict({"50": 5, "181": 4}, ["1", "2"])       # predicted ratings of items "1" and "2"
    rec.recommend({"50": 5, "181": 4}, k=10)           # [{"item", "title", "score"}, ...], rated ones left out
    rec.save("runs/bias"); Recommender.load("runs/bias")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.model_format import load_model, save_model
from ..data.interactions import Interactions
from ..core.errors import KshotError, check_positive_int
from .methods import build
from .protocol import make_fold

KIND = "recommender"


class Recommender:
    """A cold-start method (``method`` names one of ``kshot.recsys.methods.METHODS``) with the catalogue."""

    def __init__(self, method: str = "bias", seed: int = 0, **params):
        self.method = method
        self.seed = seed
        self.params = params
        build(method, seed, **params)  # checks the name and the parameters now

    # ---- fitting ---------------------------------------------------------------------------------------

    def fit(self, train: Interactions, val: list | None = None, tune: bool = True) -> "Recommender":
        """Fit on the warm ratings ``train``; settings are tuned on the validation tasks ``val`` (from
        ``kshot.recsys.protocol.make_fold``). Without ``val``, 10% of the users with at least 20 ratings
        are held out of training as validation users."""
        if val is None and tune:
            fold = make_fold(train, 0, n_folds=10, seed=self.seed, val_fraction=0.0)
            train, val = fold.train, fold.test
        self.method_ = build(self.method, self.seed, **self.params).fit(train, val, tune)
        self.item_ids_ = [str(i) for i in train.item_ids]
        self.item_titles_ = list(train.item_titles) if train.item_titles is not None else None
        self.user_feature_names_ = list(train.user_feature_names)
        self.user_dim_ = int(train.user_features.shape[1])
        self.scale_ = train.scale
        self._index()
        return self

    def _index(self):
        self.index_ = {i: n for n, i in enumerate(self.item_ids_)}
        self.titles_ = {t: n for n, t in enumerate(self.item_titles_ or [])}

    def _check(self):
        if not hasattr(self, "method_"):
            raise KshotError("this Recommender is not fitted yet; call fit() or Recommender.load()")

    # ---- a new user ------------------------------------------------------------------------------------

    def item_position(self, item) -> int | None:
        """Catalogue position of an item given by id or by exact title (None when unknown)."""
        key = str(item)
        return self.index_.get(key, self.titles_.get(key))

    def _support(self, user_ratings: dict) -> tuple[np.ndarray, np.ndarray]:
        self._check()
        if not isinstance(user_ratings, dict):
            raise KshotError(f"user_ratings must be a dict item -> rating, got {type(user_ratings).__name__}")
        unknown = [str(i) for i in user_ratings if self.item_position(i) is None]
        if unknown:
            raise KshotError(f"unknown item(s) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}: "
                             "not in the model's catalogue (give the dataset's item id or exact title)")
        items = np.array([self.item_position(i) for i in user_ratings], np.int64)
        if len(set(items.tolist())) != len(items):
            raise KshotError("an item is rated twice in user_ratings (by id and by title?); rate it once")
        lo, hi = self.scale_
        ratings = []
        for item, r in user_ratings.items():
            ok = not isinstance(r, bool) and isinstance(r, (int, float, np.number)) and np.isfinite(r)
            if not ok or not lo <= r <= hi:
                raise KshotError(f"rating {r!r} for item {item} is outside the scale {lo:g}..{hi:g}")
            ratings.append(float(r))
        return items, np.array(ratings, np.float32)

    def _features(self, user_features) -> np.ndarray:
        if user_features is None:
            return np.zeros(self.user_dim_, np.float32)
        if isinstance(user_features, dict):
            out = np.zeros(self.user_dim_, np.float32)
            for name, value in user_features.items():
                if name not in self.user_feature_names_:
                    raise KshotError(f"unknown user feature {name!r}; allowed: "
                                     f"{', '.join(self.user_feature_names_) or 'none'}")
                out[self.user_feature_names_.index(name)] = value
            return out
        out = np.asarray(user_features, np.float32).reshape(-1)
        if out.shape[0] != self.user_dim_:
            raise KshotError(f"user_features has {out.shape[0]} values; the model expects {self.user_dim_}")
        return out

    def scores(self, user_ratings: dict, user_features=None) -> np.ndarray:
        """The method's score (predicted rating) of every catalogue item for this user."""
        items, ratings = self._support(user_ratings)
        return self.method_.predict_items(items, ratings, self._features(user_features))

    def predict(self, user_ratings: dict, items, user_features=None) -> np.ndarray:
        """Predicted ratings of ``items`` (ids or exact titles) for a new user who rated ``user_ratings``."""
        pos = [self.item_position(i) for i in items]
        unknown = [str(i) for i, p in zip(items, pos) if p is None]
        if unknown:
            raise KshotError(f"unknown item(s) {', '.join(unknown[:5])}: not in the model's catalogue")
        return self.scores(user_ratings, user_features)[np.array(pos, np.int64)]

    def recommend(self, user_ratings: dict, k: int = 10, exclude_rated: bool = True,
                  user_features=None) -> list[dict]:
        """The ``k`` items with the highest scores (``exclude_rated``: leaving out the rated ones)."""
        k = check_positive_int("k", k, 1)
        scores = self.scores(user_ratings, user_features).astype(np.float64)
        if exclude_rated and user_ratings:
            scores[[self.item_position(i) for i in user_ratings]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]
        return [{"item": self.item_ids_[i], "title": self.item_titles_[i] if self.item_titles_ else self.item_ids_[i],
                 "score": float(scores[i])} for i in top]

    # ---- save / load -----------------------------------------------------------------------------------

    def save(self, path, extra: dict | None = None) -> Path:
        """Write ``path/model.safetensors`` and ``path/model.json`` (``extra``: more JSON, e.g. the data)."""
        self._check()
        path = Path(path)
        m = self.method_
        tensors = {k: torch.as_tensor(np.ascontiguousarray(v)) if not torch.is_tensor(v) else v
                   for k, v in m.state().items()}
        state = {"method": self.method, "seed": self.seed,
                 "tuned_params": m.params, "dims": getattr(m, "dims_", None), "n_items": len(self.item_ids_),
                 "scale": list(self.scale_), "item_ids": self.item_ids_, "item_titles": self.item_titles_,
                 "user_feature_names": self.user_feature_names_, "user_dim": self.user_dim_,
                 "extra": extra or {}}
        return save_model(path, KIND, tensors, self.params, state)

    @classmethod
    def load(cls, path) -> "Recommender":
        path = Path(path)
        tensors, meta = load_model(path, KIND)
        rec = cls(meta["method"], meta["seed"], **meta["params"])
        method = build(meta["method"], meta["seed"], **meta["tuned_params"])
        if meta["dims"] is not None:
            method.dims_ = meta["dims"]
        method.load_state({k: v.numpy() for k, v in tensors.items()}, meta["n_items"], meta["scale"])
        rec.method_ = method
        rec.item_ids_, rec.item_titles_ = meta["item_ids"], meta["item_titles"]
        rec.user_feature_names_, rec.user_dim_ = meta["user_feature_names"], meta["user_dim"]
        rec.scale_ = tuple(meta["scale"])
        rec.extra_ = meta["extra"]
        rec._index()
        return rec
