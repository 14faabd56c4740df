"""The cold-start protocol: folds, tasks (support = first K ratings, query = the last ones) and metrics.

Every method and the benchmark go through this module, so every number is measured on the same tasks.

* **User cold start** (``mode="user"``): the users with at least ``max(shots) + n_query`` ratings are
  shuffled with ``seed`` and cut into ``n_folds`` folds. Fold ``f``'s users are the test users; of the
  other eligible users ``val_fraction`` (seeded by ``seed`` and ``f``) are validation users; the ratings of
  all remaining users (the ineligible ones included) are the warm training data. A test user's ratings in
  time order (ties by item): support = the first K, query = the last ``n_query``; for K <= max(shots) the
  query never changes, so the curves over K compare like with like.
* **Item cold start** (``mode="item"``): the same with items as tasks, on the transposed matrix
  (``Interactions.transpose``): the eligible items (at least ``max(shots) + 1`` ratings) are cut into
  ``n_folds`` folds (20% of them held out with 5 folds); support = the first K ratings of the new item,
  query = up to ``n_query`` later ones (the last ones).
* **Both cold** (``mode="both"``): fold ``f`` holds out its users and 1/``n_folds`` of all items; warm
  data has neither. A test task is a test user's ratings of held-out items (at least ``max(shots) + 1``),
  split as for items. Validation users rate only warm items (their tasks are user cold).

Metrics of one task (``task_metrics``), the rating ones and the top-N ones from the same scores:

* rating: MAE and RMSE over its query ratings (computed per user, then averaged over users); nDCG@5 of the
  ranking of the query items by predicted rating, gains = the ratings (scikit-learn's ``ndcg_score``;
  ties averaged), beside the expected value of a random order of those items;
* top-N: the whole catalogue minus the K support items is ranked (ties broken by a random order fixed by
  the user and ``seed``); the relevant items are the query items rated >= ``positive`` (explicit data,
  4 on a 1-5 scale) or every query item (``positive=None``: implicit data, any interaction counts).
  NDCG@10 (binary gains), Recall@10, Recall@20, MRR (1 / rank of the first relevant item); users without
  a relevant query item are left out of these (``n`` says how many counted). What is recommended: the
  ``popularity`` of a list (mean share of the warm users who rated its 10 items: the shelf scores high)
  and, over all test users, the catalogue ``coverage`` (share of items in at least one top-10 list).

``summarize`` reports the mean with its 95% CI over users and, over folds, the mean of the fold means
with their 95% CI; ``paired`` the difference of two methods over the same users with its 95% CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..core.errors import KshotError, check_choice, check_positive_int
from ..core.stats import ci95
from ..data.interactions import Interactions

SHOTS = (0, 1, 3, 5, 10)
N_QUERY = 10
MODES = ("user", "item", "both")
METRICS = ("mae", "rmse", "ndcg5", "ndcg5_random", "ndcg10", "recall10", "recall20", "mrr", "popularity")
RATING_METRICS = ("mae", "rmse", "ndcg5")
TOPN_METRICS = ("ndcg10", "recall20", "mrr", "coverage", "popularity")
POSITIVE = 4.0
CUTOFF = 10  # the length of a recommended list (NDCG@10, coverage, popularity)
RECALL_AT = 20


@dataclass
class Task:
    """One new user (or item): ``max(shots)`` support ratings in time order and the query ratings."""

    user: int
    support_items: np.ndarray
    support_ratings: np.ndarray
    query_items: np.ndarray
    query_ratings: np.ndarray

    def support(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k > len(self.support_items):
            raise KshotError(
                f"K={k} is larger than the {len(self.support_items)} support ratings this "
                f"user has (the protocol keeps up to {len(self.support_items)})"
            )
        return self.support_items[:k], self.support_ratings[:k]


@dataclass
class Fold:
    """Warm training ratings, validation tasks and test tasks of one fold (indices of ``train``)."""

    train: Interactions
    val: list
    test: list
    fold: int
    seed: int
    mode: str
    shots: tuple

    @property
    def max_shot(self) -> int:
        return max(self.shots)


def _tasks(data: Interactions, rows: list, users, max_shot: int, n_query: int, keep=None) -> list[Task]:
    out = []
    for u in users:
        r = rows[u] if keep is None else rows[u][keep[data.items[rows[u]]]]
        if len(r) <= max_shot:
            continue
        s, q = r[:max_shot], r[max(max_shot, len(r) - n_query) :]
        out.append(Task(int(u), data.items[s], data.ratings[s], data.items[q], data.ratings[q]))
    return out


def user_tasks(data: Interactions, users, max_shot: int = 10, n_query: int = N_QUERY) -> list[Task]:
    """The tasks of ``users`` (support = their first ``max_shot`` ratings, query = their last ``n_query``),
    as ``make_fold`` makes them (users with at most ``max_shot`` ratings are left out)."""
    return _tasks(data, data.user_rows(), users, max_shot, n_query)


def _split(n_eligible_ids: np.ndarray, fold: int, n_folds: int, seed: int, val_fraction: float):
    perm = np.random.default_rng(seed).permutation(n_eligible_ids)
    chunks = np.array_split(perm, n_folds)
    test = np.sort(chunks[fold])
    rest = np.concatenate([c for i, c in enumerate(chunks) if i != fold])
    rest = np.random.default_rng([seed, fold]).permutation(rest)
    n_val = int(round(val_fraction * len(rest)))
    return test, np.sort(rest[:n_val])


def make_fold(
    data: Interactions,
    fold: int = 0,
    n_folds: int = 5,
    seed: int = 0,
    mode: str = "user",
    shots=SHOTS,
    n_query: int = N_QUERY,
    val_fraction: float = 0.1,
) -> Fold:
    """Fold ``fold`` of ``n_folds`` of the cold-start protocol (see the module docstring)."""
    check_choice("mode", mode, MODES)
    n_folds = check_positive_int("n_folds", n_folds, 2)
    if not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise KshotError(f"fold must be an integer in 0..{n_folds - 1}, got {fold!r}")
    shots = tuple(sorted({check_positive_int("K", k, 0) for k in shots}))
    max_shot = shots[-1]
    n_query = check_positive_int("n_query", n_query, 1)
    if mode == "item":  # tasks are items: ``train`` and the tasks index the transposed matrix
        data = data.transpose()
    counts = np.bincount(data.users, minlength=data.n_users)
    rows = data.user_rows()
    need = max_shot + (n_query if mode == "user" else 1)
    eligible = np.flatnonzero(counts >= need)
    if len(eligible) < n_folds:
        raise KshotError(
            f"only {len(eligible)} users have >= {need} ratings (up to {max_shot} as support plus the "
            f"query); the {n_folds} folds need at least {n_folds} such users: the file needs more users "
            f"with {need} or more interactions"
        )
    test_users, val_users = _split(eligible, fold, n_folds, seed, val_fraction)
    cold_user = np.zeros(data.n_users, bool)
    cold_user[test_users] = cold_user[val_users] = True
    if mode != "both":
        train = data.subset(~cold_user[data.users])
        return Fold(
            train,
            _tasks(data, rows, val_users, max_shot, n_query),
            _tasks(data, rows, test_users, max_shot, n_query),
            fold,
            seed,
            mode,
            shots,
        )
    cold_item = np.zeros(data.n_items, bool)
    cold_item[np.array_split(np.random.default_rng([seed, 99]).permutation(data.n_items), n_folds)[fold]] = True
    train = data.subset(~cold_user[data.users] & ~cold_item[data.items])
    val = [t for t in _tasks(data, rows, val_users, max_shot, n_query, ~cold_item) if len(t.query_items) == n_query]
    return Fold(train, val, _tasks(data, rows, test_users, max_shot, n_query, cold_item), fold, seed, mode, shots)


# ---- metrics ---------------------------------------------------------------------------------------


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def random_ndcg(ratings: np.ndarray, k: int = 5) -> float:
    """Expected nDCG@k of a uniformly random order of items with these gains: every position holds
    the mean gain on average, so E[DCG@k] = mean(gains) * sum of the first k discounts."""
    ratings = np.asarray(ratings, np.float64)
    ideal = (np.sort(ratings)[::-1][:k] * _discounts(min(k, len(ratings)))).sum()
    return float(ratings.mean() * _discounts(min(k, len(ratings))).sum() / ideal) if ideal > 0 else 0.0


def positives(task: Task, positive: float | None = POSITIVE) -> np.ndarray:
    """The task's relevant query items: rated >= ``positive``, or every query item (``None``: implicit)."""
    return task.query_items if positive is None else task.query_items[task.query_ratings >= positive]


@lru_cache(maxsize=4096)
def _tie_order(seed: int, user: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, user]).random(n)


def ranking(scores: np.ndarray, task: Task, k: int, seed: int = 0, length: int | None = None) -> np.ndarray:
    """The catalogue minus the first ``k`` support items, best first (the first ``length`` of them; None:
    all); ties broken by a random order fixed by the user and ``seed`` (so a method that scores everything
    alike ranks like ``random``)."""
    scores = np.asarray(scores, np.float64)
    tie = _tie_order(seed, task.user, len(scores))
    candidates = np.ones(len(scores), bool)
    candidates[task.support(k)[0]] = False
    idx = np.flatnonzero(candidates)
    if length is not None and length < len(idx):  # only what can reach the first ``length`` places
        idx = idx[scores[idx] >= np.partition(scores[idx], len(idx) - length)[len(idx) - length]]
    return idx[np.lexsort((tie[idx], -scores[idx]))][:length]


def _rank(scores: np.ndarray, task: Task, k: int, seed: int, items: np.ndarray) -> np.ndarray:
    """0-based places of ``items`` (none in the support) in ``ranking(scores, task, k, seed)``."""
    tie = _tie_order(seed, task.user, len(scores))
    candidates = np.ones(len(scores), bool)
    candidates[task.support(k)[0]] = False
    s, t = scores[candidates], tie[candidates]
    return np.array([int((s > scores[i]).sum() + ((s == scores[i]) & (t < tie[i])).sum()) for i in items])


def task_metrics(
    scores: np.ndarray,
    task: Task,
    k: int,
    predicts_ratings: bool = True,
    seed: int = 0,
    cutoff: int = CUTOFF,
    positive: float | None = POSITIVE,
    item_share=None,
    only=None,
) -> dict:
    """Metrics of one task given the method's scores (predicted ratings, or any ranking score) of every
    catalogue item; ``item_share`` (the share of warm users who rated each item) gives ``popularity``.
    The top ``cutoff`` items are returned under ``"top"``. ``only="ndcg10"`` (or ``"mae"``): that metric
    alone (tuning)."""
    from sklearn.metrics import ndcg_score

    scores = np.asarray(scores, np.float64)
    if only is not None:
        return _one_metric(scores, task, k, seed, cutoff, positive, only)
    q, y = task.query_items, task.query_ratings.astype(np.float64)
    pred = scores[q]
    out = dict.fromkeys(METRICS, float("nan"))
    if predicts_ratings:
        out["mae"] = float(np.abs(pred - y).mean())
        out["rmse"] = float(np.sqrt(((pred - y) ** 2).mean()))
        if len(q) > 1 and positive is not None:
            out["ndcg5"] = float(ndcg_score(y[None], pred[None], k=5))
            out["ndcg5_random"] = random_ndcg(y, 5)
    order = ranking(scores, task, k, seed, max(cutoff, RECALL_AT))
    top = order[:cutoff]
    if item_share is not None:
        out["popularity"] = float(np.asarray(item_share)[top].mean())
    out["top"] = top
    relevant = positives(task, positive)
    if len(relevant):
        hit = np.isin(order, relevant)
        out["mrr"] = 1.0 / (1 + int(_rank(scores, task, k, seed, relevant).min()))
        out["recall10"] = float(hit[:cutoff].sum() / len(relevant))
        out["recall20"] = float(hit[:RECALL_AT].sum() / len(relevant))
        ideal = _discounts(min(len(relevant), cutoff)).sum()
        out["ndcg10"] = float((hit[:cutoff] * _discounts(cutoff)[: len(top)]).sum() / ideal)
    return out


def _one_metric(scores, task, k, seed, cutoff, positive, metric) -> dict:
    out = dict.fromkeys(METRICS, float("nan"))
    if metric == "mae":
        out["mae"] = float(np.abs(scores[task.query_items] - task.query_ratings).mean())
        return out
    relevant = positives(task, positive)
    if len(relevant):
        hit = np.isin(ranking(scores, task, k, seed, cutoff), relevant)
        out["ndcg10"] = float(
            (hit * _discounts(cutoff)[: len(hit)]).sum() / _discounts(min(len(relevant), cutoff)).sum()
        )
    return out


def item_share(train: Interactions) -> np.ndarray:
    """For each item, the share of the warm users (those with a rating in ``train``) who rated it."""
    users = max(len(np.unique(train.users)), 1)
    return np.bincount(train.items, minlength=train.n_items) / users


def evaluate_tasks(
    method,
    data: Interactions,
    tasks: list,
    shots=SHOTS,
    seed: int = 0,
    positive: float | None | str = "auto",
    only: str | None = None,
) -> dict:
    """Per-task metrics of ``method`` for each K: ``{K: {metric: array over tasks, "top": [tasks, 10]}}``.

    ``data`` is the warm training data: it gives the users' features (``data.user_features[task.user]``)
    and the items' popularity. ``positive``: the rating from which a query item counts as relevant in
    the ranking metrics; ``None`` counts every query item (implicit data); ``"auto"``: ``None`` for
    implicit data, else ``POSITIVE``. ``only``: one metric (``ndcg10`` or ``mae``), the others NaN."""
    positive = default_positive(data) if positive == "auto" else positive
    share = item_share(data)
    out = {}
    for k in shots:
        rows = []
        for task in tasks:
            items, ratings = task.support(k)
            scores = method.predict_items(items, ratings, data.user_features[task.user])
            rows.append(
                task_metrics(
                    scores, task, k, method.predicts_ratings, seed, positive=positive, item_share=share, only=only
                )
            )
        out[k] = {m: np.array([r[m] for r in rows]) for m in METRICS}
        if only is None:
            out[k]["top"] = np.stack([r["top"] for r in rows]) if rows else np.zeros((0, CUTOFF), np.int64)
    return out


def default_positive(data: Interactions) -> float | None:
    """The rating from which an item counts as liked: ``None`` for implicit data (every interaction
    counts), else the top quarter of the scale (4 on 1..5)."""
    if getattr(data, "implicit", False):
        return None
    lo, hi = data.scale
    return float(lo + 0.75 * (hi - lo))


def stat(values) -> dict:
    """Mean, 95% CI half-width and n of the finite values."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return {"mean": None, "ci95": None, "n": 0}
    ci = ci95(values)
    return {"mean": float(values.mean()), "ci95": None if np.isnan(ci) else ci, "n": int(len(values))}


def summarize(per_fold: list, n_items: int | None = None) -> dict:
    """``{K: {metric: {mean, ci95, n (over users), fold_mean, fold_ci95, folds}}}`` from a list of
    ``evaluate_tasks`` results, one per fold; with ``n_items``, also ``coverage``: the share of the
    catalogue that appears in at least one test user's top list."""
    out = {}
    for k in per_fold[0]:
        out[k] = {}
        for m in METRICS:
            s = stat(np.concatenate([f[k][m] for f in per_fold]))
            fold_means = [stat(f[k][m])["mean"] for f in per_fold]
            fold_means = [x for x in fold_means if x is not None]
            fs = stat(fold_means)
            s.update(fold_mean=fs["mean"], fold_ci95=fs["ci95"], folds=fs["n"])
            out[k][m] = s
        if n_items and all("top" in f[k] for f in per_fold):
            seen = np.unique(np.concatenate([f[k]["top"].ravel() for f in per_fold]))
            out[k]["coverage"] = {"mean": float(len(seen) / n_items), "ci95": None, "n": int(len(seen))}
    return out


def paired(per_fold_a: list, per_fold_b: list, k: int, metric: str = "ndcg10") -> dict:
    """Paired difference a - b of one metric over the same test users (all folds): mean, 95% CI, n, and
    the ratio of the means (a / b)."""
    x = np.concatenate([f[k][metric] for f in per_fold_a])
    y = np.concatenate([f[k][metric] for f in per_fold_b])
    if x.shape != y.shape:
        raise KshotError(f"paired: the two methods were scored on different tasks ({len(x)} vs {len(y)})")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    ci = ci95(d)
    return {
        "diff": float(d.mean()) if len(d) else None,
        "ci95": None if np.isnan(ci) else ci,
        "n": int(ok.sum()),
        "ratio": float(x[ok].mean() / y[ok].mean()) if len(d) and y[ok].mean() else None,
    }
