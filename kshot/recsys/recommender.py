"""The practitioner API: fit a cold-start recommender on warm users, then recommend for a user it has never
seen from a few items (a dict ``item -> rating``, or a list of items for clicks, views, purchases); save /
load as safetensors + JSON (no pickle).

    rec = Recommender().fit(data)                     # method "auto": the best ranker on validation users
    rec.recommend({"50": 5, "181": 4}, k=10)          # [{"item", "title", "score"}, ...], seen ones left out
    rec.recommend(["50", "181"], k=10, explain=True)  # + "because": the user's items behind each one
    session = rec.onboard(); session.ask(10)          # which items to ask a newcomer about first
    rec.save("runs/rec"); Recommender.load("runs/rec")

A scikit-learn estimator (``kshot.core.estimator``): ``get_params`` / ``set_params`` come from the
constructor's signature and ``sklearn.base.clone`` works; a setting given for a method it does not apply
to is an error naming the methods it applies to. ``method="auto"`` fits the ``candidates`` (top-N rankers),
tunes each on the validation users and keeps the one with the best validation NDCG@10 over K = 1..10.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.errors import KshotError, check_choice, check_positive_int, is_number
from ..core.estimator import Estimator
from ..core.model_format import load_model, save_model
from ..data.interactions import Interactions
from .methods import METHODS, RANKERS, build
from .protocol import make_fold

KIND = "recommender"
AUTO = "auto"
CANDIDATES = ("ease", "rp3beta", "knn", "ials")  # what "auto" chooses from (fast closed forms)
NEURAL = ("melu", "attention", "finetune", "gru", "sasrec", "melu_rank")
BLENDED = ("ease", "successors", "knn", "rp3beta", "ials", "gru", "sasrec", "melu_rank", AUTO)
# constructor parameter -> the methods it applies to (scikit-learn style settings; the rest go in ``params``)
APPLIES = {
    "lam": ("ease", "successors", AUTO),
    "neighbours": ("knn", "rp3beta", AUTO),
    "alpha": ("rp3beta", AUTO),
    "beta": ("rp3beta", AUTO),
    "factors": ("mf", "ials", AUTO),
    "blend": BLENDED,
    "train_steps": (*NEURAL, AUTO),
    "candidates": (AUTO,),
}
EXPLAIN_TOP = 3  # the user's items named per recommendation
POPULARITY = "recommender.popularity"  # the warm interactions per item (onboarding), beside the method's arrays


def choose(fitted: dict, train: Interactions, val: list | None) -> tuple[str, dict]:
    """``method="auto"``'s rule: of the fitted rankers ``{name: method}``, the one with the best mean
    NDCG@10 over K = 1, 3, 5, 10 on the validation users: the same validation users their tuning used
    (the fold's plus the cross-validated warm users) when every candidate was tuned, else the fold's;
    the first one without any. Returns its name and every candidate's validation NDCG@10."""
    if all(getattr(m, "val_error_", None) is not None for m in fitted.values()):
        selection = {n: 1.0 - m.val_error_ for n, m in fitted.items()}
    elif val:
        selection = {n: 1.0 - m.val_score(train, val) for n, m in fitted.items()}
    else:
        return next(iter(fitted)), {n: None for n in fitted}
    return max(selection, key=selection.get), selection


class Recommender(Estimator):
    """A cold-start recommender: ``method`` is ``"auto"`` (default) or one of
    ``kshot.recsys.methods.METHODS``; ``None`` settings are chosen on the validation users."""

    method_params = APPLIES

    def __init__(
        self,
        method: str = AUTO,
        seed: int = 0,
        lam: float | None = None,
        neighbours: int | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        factors: int | None = None,
        blend: float | None = None,
        train_steps: int | None = None,
        candidates: tuple | None = None,
        params: dict | None = None,
    ):
        self.method, self.seed, self.lam, self.neighbours = method, seed, lam, neighbours
        self.alpha, self.beta, self.factors, self.blend = alpha, beta, factors, blend
        self.train_steps, self.candidates, self.params = train_steps, candidates, params

    # ---- parameters ------------------------------------------------------------------------------------

    def _candidates(self) -> tuple:
        return tuple(self.candidates) if self.candidates is not None else CANDIDATES

    def settings(self, name: str) -> dict:
        """The settings handed to method ``name``: the constructor's that apply to it, then ``params``."""
        cls = METHODS[name]
        out = {
            k: getattr(self, k)
            for k in APPLIES
            if k != "candidates" and getattr(self, k) is not None and cls.accepts(k)
        }
        out.update({k: v for k, v in (self.params or {}).items() if cls.accepts(k)})
        return out

    def check_params(self) -> None:
        """One-line KshotError for the first bad parameter (unknown method or setting, a setting of
        another method)."""
        check_choice("method", self.method, (AUTO, *METHODS))
        if self.params is not None and not isinstance(self.params, dict):
            raise KshotError(f"params must be a dict of method settings, got {type(self.params).__name__}")
        self.check_method_params()
        names = self._candidates() if self.method == AUTO else (self.method,)
        if self.method == AUTO:
            if not names:
                raise KshotError("candidates is empty; give at least one ranker for method 'auto'")
            for name in names:
                check_choice("candidate", name, RANKERS)
        given = [k for k in APPLIES if k != "candidates" and getattr(self, k) is not None]
        for key in [*given, *(self.params or {})]:
            if not any(METHODS[n].accepts(key) for n in names):
                allowed = sorted({k for n in names for k in (*METHODS[n].grid, *getattr(METHODS[n], "SETTINGS", ()))})
                raise KshotError(
                    f"unknown parameter {key!r} for method {self.method!r}; allowed: {', '.join(allowed) or 'none'}"
                )
        for name in names:
            build(name, self.seed, **self.settings(name))

    # ---- fitting ---------------------------------------------------------------------------------------

    def fit(self, train: Interactions, val: list | None = None, tune: bool = True) -> "Recommender":
        """Fit on the warm interactions ``train``; settings are tuned on the validation tasks ``val`` (from
        ``kshot.recsys.protocol.make_fold``). Without ``val``, 10% of the users with enough ratings are
        held out of training as validation users."""
        self.check_params()
        if val is None and tune:
            fold = make_fold(train, 0, n_folds=10, seed=self.seed, val_fraction=0.0)
            train, val = fold.train, fold.test
        if self.method == AUTO:
            fitted = {n: build(n, self.seed, **self.settings(n)).fit(train, val, tune) for n in self._candidates()}
            self.chosen_, self.selection_ = choose(fitted, train, val)
            self.method_ = fitted[self.chosen_]
        else:
            self.method_ = build(self.method, self.seed, **self.settings(self.method)).fit(train, val, tune)
            self.chosen_, self.selection_ = self.method, {}
        self.item_ids_ = [str(i) for i in train.item_ids]
        self.item_titles_ = list(train.item_titles) if train.item_titles is not None else None
        self.user_feature_names_ = list(train.user_feature_names)
        self.user_dim_ = int(train.user_features.shape[1])
        self.scale_ = train.scale
        self.implicit_ = bool(getattr(train, "implicit", False))
        self.popularity_ = np.bincount(train.items, minlength=train.n_items).astype(np.float32)
        self._index()
        return self

    def _index(self):
        self.index_ = {i: n for n, i in enumerate(self.item_ids_)}
        self.titles_ = {t: n for n, t in enumerate(self.item_titles_ or [])}

    def _check(self):
        if not hasattr(self, "method_"):
            raise KshotError("this Recommender is not fitted yet; call fit() or Recommender.load()")

    @property
    def n_items(self) -> int:
        self._check()
        return len(self.item_ids_)

    # ---- a new user ------------------------------------------------------------------------------------

    def item_position(self, item) -> int | None:
        """Catalogue position of an item given by id or by exact title (None when unknown)."""
        key = str(item)
        return self.index_.get(key, self.titles_.get(key))

    def positions(self, items, what: str = "item") -> np.ndarray:
        """Catalogue positions of ``items`` (ids or exact titles); a one-line error names the unknown ones."""
        self._check()
        pos = [self.item_position(i) for i in items]
        unknown = [str(i) for i, p in zip(items, pos) if p is None]
        if unknown:
            raise KshotError(
                f"unknown {what}(s) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}: "
                "not in the model's catalogue (give the dataset's item id or exact title)"
            )
        return np.array(pos, np.int64)

    def _support(self, user) -> tuple[np.ndarray, np.ndarray]:
        """``user`` as (positions, ratings): a dict item -> rating, or a list of items (each counted as a
        liked interaction: the top of the scale)."""
        self._check()
        if isinstance(user, dict):
            pairs = list(user.items())
        elif isinstance(user, (list, tuple)):
            pairs = [(item, self.scale_[1]) for item in user]
        else:
            raise KshotError(
                f"the user's items must be a dict item -> rating or a list of items, got {type(user).__name__}"
            )
        items = self.positions([i for i, _ in pairs])
        if len(set(items.tolist())) != len(items):
            raise KshotError("an item is given twice in the user's items (by id and by title?); give it once")
        ratings = []
        for item, r in pairs:
            value = self.on_scale(r)
            if value is None:
                lo, hi = self.scale_
                raise KshotError(f"rating {r!r} for item {item} is outside the scale {lo:g}..{hi:g}")
            ratings.append(value)
        return items, np.array(ratings, np.float32)

    def on_scale(self, rating) -> float | None:
        """``rating`` as a float on the model's scale, or None when it is not a finite number on it. A model
        of implicit interactions (scale lo == hi) takes any finite number as an interaction."""
        lo, hi = self.scale_
        if not is_number(rating):
            return None
        rating = hi if lo == hi else rating
        return float(rating) if lo <= rating <= hi else None

    def _features(self, user_features) -> np.ndarray:
        if user_features is None:
            return np.zeros(self.user_dim_, np.float32)
        if isinstance(user_features, dict):
            out = np.zeros(self.user_dim_, np.float32)
            for name, value in user_features.items():
                if name not in self.user_feature_names_:
                    raise KshotError(
                        f"unknown user feature {name!r}; allowed: {', '.join(self.user_feature_names_) or 'none'}"
                    )
                out[self.user_feature_names_.index(name)] = value
            return out
        out = np.asarray(user_features, np.float32).reshape(-1)
        if out.shape[0] != self.user_dim_:
            raise KshotError(f"user_features has {out.shape[0]} values; the model expects {self.user_dim_}")
        return out

    def scores(self, user, user_features=None) -> np.ndarray:
        """The method's score of every catalogue item for this user (a predicted rating for the rating
        methods, a ranking score for the rankers)."""
        items, ratings = self._support(user)
        return self.method_.predict_items(items, ratings, self._features(user_features))

    def predict(self, user, items, user_features=None) -> np.ndarray:
        """Scores of ``items`` (ids or exact titles) for a new user who gave ``user``."""
        return self.scores(user, user_features)[self.positions(items)]

    def recommend(
        self, user, k: int = 10, exclude_rated: bool = True, user_features=None, explain: bool = False, exclude=()
    ) -> list[dict]:
        """The ``k`` items with the highest scores, the user's own items left out (``exclude_rated``) and
        any in ``exclude``. ``explain``: each row also gets ``because``, the user's items that led to it
        (largest contributions first, with their share of the positive ones)."""
        k = check_positive_int("k", k, 1)
        self._check()
        if k > self.n_items:
            raise KshotError(f"k={k} is larger than the catalogue ({self.n_items} items)")
        items, ratings = self._support(user)
        if explain and not len(items):
            raise KshotError(
                "explain needs at least one item from the user (the recommendations of an "
                "empty list come from popularity alone)"
            )
        features = self._features(user_features)
        scores = self.method_.predict_items(items, ratings, features).astype(np.float64)
        if exclude_rated and len(items):
            scores[items] = -np.inf
        if len(exclude):
            scores[self.positions(list(exclude))] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]
        rows = [{"item": self.item_ids_[i], "title": self.title(i), "score": float(scores[i])} for i in top]
        if explain:
            parts = self.contributions(items, ratings, features, top)
            for row, c in zip(rows, parts):
                positive = np.clip(c, 0, None)
                order = [j for j in np.argsort(-c, kind="stable")[:EXPLAIN_TOP] if c[j] > 0]
                row["because"] = [
                    {
                        "item": self.item_ids_[items[j]],
                        "title": self.title(items[j]),
                        "share": float(positive[j] / positive.sum()),
                    }
                    for j in order
                ]
        return rows

    def contributions(self, items, ratings, features, targets) -> np.ndarray:
        """``[len(targets), len(items)]``: what each of the user's items adds to each target's score (exact
        terms for the item-to-item models, leave-one-out differences for the others)."""
        if hasattr(self.method_, "contributions"):
            return self.method_.contributions(items, ratings, features, targets)
        full = self.method_.predict_items(items, ratings, features)[targets]
        out = np.zeros((len(targets), len(items)))
        for j in range(len(items)):
            keep = np.arange(len(items)) != j
            out[:, j] = full - self.method_.predict_items(items[keep], ratings[keep], features)[targets]
        return out

    def title(self, position: int) -> str:
        return self.item_titles_[position] if self.item_titles_ else self.item_ids_[position]

    def onboard(self, strategy: str = "adaptive", user_features=None):
        """A new onboarding session (``kshot.recsys.onboarding.Onboarding``): which items to ask a newcomer
        about first, their answers one at a time, and the recommendations they lead to."""
        from .onboarding import Onboarding

        return Onboarding(self, strategy, user_features)

    # ---- save / load -----------------------------------------------------------------------------------

    def save(self, path, extra: dict | None = None) -> Path:
        """Write ``path/model.safetensors`` and ``path/model.json`` (``extra``: more JSON, e.g. the data)."""
        self._check()
        m = self.method_
        tensors = {
            k: torch.as_tensor(np.ascontiguousarray(v)) if not torch.is_tensor(v) else v for k, v in m.state().items()
        }
        tensors[POPULARITY] = torch.as_tensor(self.popularity_)
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        state = {
            "method": self.method,
            "seed": self.seed,
            "chosen": self.chosen_,
            "selection": self.selection_,
            "tuned_params": m.params,
            "dims": getattr(m, "dims_", None),
            "n_items": len(self.item_ids_),
            "scale": list(self.scale_),
            "implicit": self.implicit_,
            "item_ids": self.item_ids_,
            "item_titles": self.item_titles_,
            "user_feature_names": self.user_feature_names_,
            "user_dim": self.user_dim_,
            "extra": extra or {},
        }
        return save_model(path, KIND, tensors, params, state)

    @classmethod
    def load(cls, path) -> "Recommender":
        tensors, meta = load_model(Path(path), KIND)
        params = meta["params"]
        if "method" in params:  # the constructor's parameters
            rec = cls(**{k: (tuple(v) if k == "candidates" and v is not None else v) for k, v in params.items()})
        else:  # written before Recommender was an estimator: params = method settings
            rec = cls(meta["method"], meta["seed"], params=params or None)
        chosen = meta.get("chosen", meta["method"])
        method = build(chosen, meta["seed"], **meta["tuned_params"])
        if meta["dims"] is not None:
            method.dims_ = meta["dims"]
        popularity = tensors.pop(POPULARITY, None)
        method.load_state({k: v.numpy() for k, v in tensors.items()}, meta["n_items"], meta["scale"])
        rec.popularity_ = (
            popularity.numpy() if popularity is not None else np.zeros(meta["n_items"], np.float32)
        )  # a model saved before onboarding
        rec.method_, rec.chosen_, rec.selection_ = method, chosen, meta.get("selection", {})
        rec.item_ids_, rec.item_titles_ = meta["item_ids"], meta["item_titles"]
        rec.user_feature_names_, rec.user_dim_ = meta["user_feature_names"], meta["user_dim"]
        rec.scale_, rec.implicit_ = tuple(meta["scale"]), bool(meta.get("implicit", False))
        rec.extra_ = meta["extra"]
        rec._index()
        return rec
