"""What every cold-start method shares: fit on warm ratings, score the catalogue for a new user, tune on
validation users, and its state as named arrays (for safetensors) plus JSON-able settings."""

from __future__ import annotations

import copy

import numpy as np

from ...data.interactions import Interactions
from ..protocol import N_QUERY, evaluate_tasks, user_tasks

TUNE_SHOTS = (1, 3, 5, 10)


def check_setting(method: str, key: str, value, grid: list, bounds: tuple | None = None):
    """``value`` for setting ``key`` of ``method``, checked against the kind of values its grid holds:
    one of them for a setting of words; otherwise a finite number (a whole one where the grid's are),
    at least 0 (above 0 where every grid value is), within ``bounds`` where given. A one-line KshotError
    names the value and what is allowed."""
    from ...core.errors import KshotError, check_choice, is_number

    if all(isinstance(g, str) for g in grid):
        return check_choice(f"{key} (method {method!r})", value, grid)
    whole = all(isinstance(g, int) and not isinstance(g, bool) for g in grid)
    low, high = bounds or (0.0 if min(grid) <= 0 else None, None)
    ok = is_number(value) and (not whole or float(value).is_integer())
    ok = ok and (value >= low if low is not None else value > 0) and (high is None or value <= high)
    if not ok:
        kind = "a whole number" if whole else "a number"
        where = f">= {low:g}" if low is not None else "> 0"
        where += f" and <= {high:g}" if high is not None else ""
        raise KshotError(f"{key}={value!r} for method {method!r} must be {kind} {where}")
    return int(value) if whole else float(value)


class ColdStartMethod:
    """Base class. Subclasses set ``name``, ``grid`` (settings tried on the validation users) and
    implement ``_fit`` and ``predict_items``; learned arrays go in ``self.arrays_`` (numpy), settings are
    the constructor's keyword arguments (``self.params``)."""

    name = ""
    predicts_ratings = True
    grid: dict = {}  # setting -> values tried on the validation users (the first is the default)
    tune_shots = TUNE_SHOTS
    tune_folds = 0  # > 0: also cross-validate on the warm users in this many groups (``cross_validation``)
    bounds: dict = {}  # setting -> (low, high) where the grid's values do not say it (see ``check_setting``)

    def __init__(self, seed: int = 0, **params):
        self.seed = seed
        self.params = {k: v[0] for k, v in self.grid.items()}
        unknown = set(params) - set(self.params)
        if unknown:
            from ...core.errors import KshotError

            raise KshotError(
                f"unknown parameter {sorted(unknown)[0]!r} for method {self.name!r}; "
                f"allowed: {', '.join(self.params) or 'none'}"
            )
        self.params.update(
            {k: check_setting(self.name, k, v, self.grid[k], self.bounds.get(k)) for k, v in params.items()}
        )
        self.fixed_ = set(params)  # given by the caller: not tuned
        self.arrays_: dict[str, np.ndarray] = {}
        self.tuning_: list = []

    @classmethod
    def accepts(cls, key: str) -> bool:
        """Whether ``key`` is one of this method's settings."""
        return key in cls.grid

    # ---- the interface ---------------------------------------------------------------------------

    def fit(self, train: Interactions, val: list | None = None, tune: bool = True) -> "ColdStartMethod":
        """Learn from the warm ratings in ``train``; with validation tasks ``val``, try the settings of
        ``grid`` that are not fixed and keep the one with the lowest validation error."""
        self.n_items = train.n_items
        self.scale = train.scale
        self._fit(train)
        if tune and self.grid and (val or self.tune_folds):
            self.tune(train, val or [])
        return self

    def _fit(self, train: Interactions) -> None:
        raise NotImplementedError

    def predict_items(self, items: np.ndarray, ratings: np.ndarray, user_features: np.ndarray) -> np.ndarray:
        """Scores (predicted ratings for rating methods) of every catalogue item for a new user who gave
        ``ratings`` to ``items``."""
        raise NotImplementedError

    def clip(self, pred: np.ndarray) -> np.ndarray:
        return np.clip(pred, *self.scale)

    # ---- tuning on validation users --------------------------------------------------------------

    def refit_needed(self) -> tuple:
        """Settings whose change needs ``_fit`` again (the others act at prediction time)."""
        return ()

    def val_score(self, train: Interactions, val: list, parts: list = ()) -> float:
        """Mean validation error over tasks: MAE for rating methods, 1 - NDCG@10 for rankers, averaged over
        ``tune_shots``. ``parts`` (from ``cross_validation``) add the held-out warm users' tasks, each
        scored by the twin fitted without them."""
        errors = [m.task_errors(data, tasks) for m, data, tasks in ((self, train, val), *parts) if tasks]
        return float(np.nanmean(np.concatenate(errors)))

    def task_errors(self, data: Interactions, tasks: list) -> np.ndarray:
        """Each task's error, averaged over ``tune_shots`` (NaN for a ranking task without a liked item)."""
        most = min(len(t.support_items) for t in tasks)
        shots = sorted({min(k, most) for k in self.tune_shots})  # a fold that keeps fewer than 10 support items
        key = "mae" if self.predicts_ratings else "ndcg10"
        res = evaluate_tasks(self, data, tasks, shots, self.seed, only=key)
        per_task = np.mean([res[k][key] for k in shots], 0)
        return per_task if self.predicts_ratings else 1 - per_task

    def cross_validation(self, train: Interactions) -> list:
        """``tune_folds`` twins of this method, each fitted without one group of the warm users and scored
        on those users' tasks (first 10 interactions -> last 10, as the protocol's): ``[(twin, its
        training data, the held-out tasks)]``. The twins share ``self.params``, so a setting tried on
        this method is tried on them."""
        rows = train.user_rows()
        need = max(self.tune_shots) + N_QUERY
        users = np.array([u for u, r in enumerate(rows) if len(r) >= need], np.int64)
        users = np.random.default_rng([self.seed, 17]).permutation(users)
        parts = []
        for group in np.array_split(users, self.tune_folds) if len(users) >= self.tune_folds else ():
            held = np.zeros(train.n_users, bool)
            held[group] = True
            part = train.subset(~held[train.users])
            twin = copy.copy(self)  # same params dict; its own arrays after _fit
            twin.arrays_ = {}
            twin._fit(part)
            parts.append((twin, part, user_tasks(train, group, max(self.tune_shots), N_QUERY)))
        return parts

    def tune(self, train: Interactions, val: list) -> None:
        """Coordinate descent over ``grid``: each setting in turn takes the value with the lowest
        validation error, the others held at their current values (one pass). With ``tune_folds``, the
        warm users are cross-validated too (``cross_validation``): many more validation users than the
        fold's own, so a setting is not picked by the noise of a few dozen users."""
        parts = self.cross_validation(train) if self.tune_folds else []

        def refit():
            self._fit(train)
            for twin, data, _ in parts:
                twin._fit(data)

        best = self.val_score(train, val, parts)
        self.tuning_.append({**self.params, "val": best})
        for key, values in self.grid.items():
            for value in values if key not in self.fixed_ else ():
                old = self.params[key]
                if value == old:
                    continue
                self.params[key] = value
                if key in self.refit_needed():
                    refit()
                score = self.val_score(train, val, parts)
                self.tuning_.append({**self.params, "val": score})
                if score < best:
                    best = score
                else:
                    self.params[key] = old
                    if key in self.refit_needed():
                        refit()
        self.val_error_ = best

    # ---- state --------------------------------------------------------------------------------------

    def state(self) -> dict:
        """Arrays to save (safetensors)."""
        return dict(self.arrays_)

    def load_state(self, arrays: dict, n_items: int, scale) -> None:
        self.arrays_ = {k: np.asarray(v) for k, v in arrays.items()}
        self.n_items, self.scale = n_items, tuple(scale)


def damped_biases(train: Interactions, item_damping: float, user_damping: float, iters: int = 3):
    """Global mean, item biases and warm user biases of the damped bias model, by alternating
    damped means of the residuals (Koren's baseline predictor)."""
    mu = float(train.ratings.mean()) if len(train) else float(np.mean(train.scale))
    bu = np.zeros(train.n_users)
    bi = np.zeros(train.n_items)
    n_i = np.bincount(train.items, minlength=train.n_items)
    n_u = np.bincount(train.users, minlength=train.n_users)
    for _ in range(iters):
        bi = np.bincount(train.items, train.ratings - mu - bu[train.users], train.n_items) / (n_i + item_damping)
        bu = np.bincount(train.users, train.ratings - mu - bi[train.items], train.n_users) / (n_u + user_damping)
    return mu, bi, bu


def shrunk_user_bias(residuals: np.ndarray, damping: float, prior: float = 0.0) -> float:
    """A new user's bias from the residuals of its K support ratings, shrunk towards ``prior``."""
    return float((residuals.sum() + damping * prior) / (len(residuals) + damping))
