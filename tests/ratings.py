"""A small synthetic ratings set for the recsys tests (and any test that needs a fitted recommender), and
Interactions built from parallel lists."""

import numpy as np

from kshot.data.interactions import Interactions


def synthetic(n_users=80, n_items=50, per_user=24, seed=0) -> Interactions:
    """Users with a bias and a 2-d taste, items with a bias (popular items are the good ones) and a
    2-d profile whose sign pattern is the items' 'genre' features; ratings rounded into 1..5."""
    rng = np.random.default_rng(seed)
    taste, profile = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    ub, ib = rng.normal(0, 0.5, n_users), np.linspace(1.0, -1.0, n_items)
    popularity = np.exp(ib * 1.5)
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, per_user, replace=False, p=popularity / popularity.sum())
        for t, i in enumerate(chosen):
            users.append(u), items.append(i), times.append(1000 * u + t)
            ratings.append(np.clip(np.rint(3.3 + ub[u] + ib[i] + taste[u] @ profile[i] + rng.normal(0, 0.3)), 1, 5))
    item_features = np.concatenate([(profile > 0).astype(np.float32), rng.normal(size=(n_items, 1))], 1)
    user_features = np.stack([taste[:, 0] > 0, taste[:, 0] <= 0], 1).astype(np.float32)
    return interactions(
        users,
        items,
        ratings,
        times,
        n_items,
        user_features,
        ["g=a", "g=b"],
        item_features,
        ["x+", "y+", "year"],
        title="Movie",
        scale=(1, 5),
        name="synthetic",
    ).validate()


def interactions(
    users,
    items,
    ratings,
    times,
    n_items=None,
    user_features=None,
    user_feature_names=("none",),
    item_features=None,
    item_feature_names=("none",),
    title="Item",
    **kw,
) -> Interactions:
    """Interactions from parallel lists: users u0.., items 0.. up to ``n_items`` (by default the largest
    given), titled "<title> <i>", featureless unless features are given; ``kw``: scale, name, implicit."""
    n_users, n_items = int(max(users)) + 1, n_items or int(max(items)) + 1
    return Interactions(
        users,
        items,
        ratings,
        times,
        [f"u{u}" for u in range(n_users)],
        [str(i) for i in range(n_items)],
        np.zeros((n_users, 1)) if user_features is None else user_features,
        np.zeros((n_items, 1)) if item_features is None else item_features,
        list(user_feature_names),
        list(item_feature_names),
        [f"{title} {i}" for i in range(n_items)],
        **kw,
    )
