"""Rating data for recommendation: who rated what, when, and the side features of users and items.

``Interactions`` holds one row per rating (user index, item index, rating, timestamp) and the feature
matrices of all users and items. ``read_interactions`` reads a shop's own files:

* ratings: CSV (header row) or JSONL (``.jsonl``/``.json``, one object per line) with the fields ``user``,
  ``item``, ``rating`` and optionally ``timestamp`` (a number; without it the file's order is the time order);
  with ``implicit=True`` (clicks, purchases, views: any interaction counts) the ``rating`` field may be
  left out and every row is an interaction of value 1 (``Interactions.implicit``);
* item features (optional): CSV with an ``item`` column, an optional ``title`` column and any other columns;
  a column whose values are all numbers becomes one standardised feature, any other column a one-hot
  block (a value ``a|b`` sets both ``a`` and ``b``, for genres); the same for user features with ``user``.

Bad input (an empty file, a rating outside the scale, the same (user, item) twice, a missing file or column)
raises a one-line ``DataError`` naming the file, the line and the value.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.errors import DataError


@dataclass
class Interactions:
    """Ratings ``(users[i], items[i], ratings[i], timestamps[i])`` as indices into ``user_ids`` / ``item_ids``."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    user_ids: list
    item_ids: list
    user_features: np.ndarray
    item_features: np.ndarray
    user_feature_names: list = field(default_factory=list)
    item_feature_names: list = field(default_factory=list)
    item_titles: list | None = None
    scale: tuple = (1.0, 5.0)
    name: str = ""
    implicit: bool = False  # every row is an interaction of value 1 (no ratings)

    def __post_init__(self):
        self.users = np.asarray(self.users, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.ratings = np.asarray(self.ratings, dtype=np.float32)
        self.timestamps = np.asarray(self.timestamps, dtype=np.int64)
        self.user_features = np.asarray(self.user_features, dtype=np.float32).reshape(len(self.user_ids), -1)
        self.item_features = np.asarray(self.item_features, dtype=np.float32).reshape(len(self.item_ids), -1)
        self.scale = (float(self.scale[0]), float(self.scale[1]))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.ratings)

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"ratings={len(self)}, user_features={self.user_features.shape[1]}, "
            f"item_features={self.item_features.shape[1]})"
        )

    def subset(self, mask: np.ndarray) -> "Interactions":
        """The ratings where ``mask`` is true; users, items and features keep their indices."""
        return replace(
            self,
            users=self.users[mask],
            items=self.items[mask],
            ratings=self.ratings[mask],
            timestamps=self.timestamps[mask],
        )

    def transpose(self) -> "Interactions":
        """Items as users and users as items (item cold start is user cold start on the transpose)."""
        return Interactions(
            self.items,
            self.users,
            self.ratings,
            self.timestamps,
            self.item_ids,
            self.user_ids,
            self.item_features,
            self.user_features,
            self.item_feature_names,
            self.user_feature_names,
            None,
            self.scale,
            f"{self.name} (transposed)",
            self.implicit,
        )

    def user_rows(self) -> list[np.ndarray]:
        """For each user, the indices of its ratings in time order (ties by item index)."""
        order = np.lexsort((self.items, self.timestamps, self.users))
        bounds = np.searchsorted(self.users[order], np.arange(self.n_users + 1))
        return [order[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

    def item_index(self) -> dict:
        return {str(i): n for n, i in enumerate(self.item_ids)}

    def validate(self, source: str = "") -> "Interactions":
        """Raise DataError when empty, a rating is outside ``scale`` or a (user, item) pair repeats."""
        where = f"{source}: " if source else ""
        if len(self) == 0:
            raise DataError(f"{where}no ratings (the file is empty)")
        lo, hi = self.scale
        bad = np.flatnonzero(~((self.ratings >= lo) & (self.ratings <= hi)))
        if len(bad):
            i = bad[0]
            raise DataError(
                f"{where}rating {self.ratings[i]:g} of user {self.user_ids[self.users[i]]} for item "
                f"{self.item_ids[self.items[i]]} is outside the scale {lo:g}..{hi:g} "
                f"({len(bad)} such rows)"
            )
        pair = self.users * self.n_items + self.items
        uniq, counts = np.unique(pair, return_counts=True)
        if (counts > 1).any():
            p = uniq[counts > 1][0]
            raise DataError(
                f"{where}duplicate rating of user {self.user_ids[p // self.n_items]} for item "
                f"{self.item_ids[p % self.n_items]} ({int((counts > 1).sum())} duplicated "
                "(user, item) pairs); keep one row per pair"
            )
        return self


def _need_file(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file {path} does not exist")
    return path


def _read_rows(path: Path) -> list[dict]:
    """Rows of a CSV (with a header) or JSONL file as dicts of strings, with their line numbers."""
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        if path.suffix.lower() in (".jsonl", ".json"):
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{n}: not a JSON object ({exc.msg})") from None
                    if not isinstance(obj, dict):
                        raise DataError(f"{path}:{n}: each line must be a JSON object")
                    rows.append(({k: ("" if v is None else str(v)) for k, v in obj.items()}, n))
        else:
            reader = csv.DictReader(f)
            for n, row in enumerate(reader, 2):
                rows.append(({k: (v or "").strip() for k, v in row.items() if k is not None}, n))
    return rows


def _number(value: str, what: str, where: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DataError(f"{where}: {what} {value!r} is not a number") from None
    if not np.isfinite(x):
        raise DataError(f"{where}: {what} {value!r} is not a finite number")
    return x


def encode_features(rows: list[dict], key: str, ids: list, path) -> tuple[np.ndarray, list, dict]:
    """Feature matrix ``[len(ids), F]`` from rows keyed by ``key`` (see the module docstring); ids
    without a row get zeros. Returns (matrix, feature names, titles by id)."""
    by_id = {}
    for row, n in rows:
        if key not in row:
            raise DataError(f"{path}: needs a column {key!r}; has {', '.join(row)}")
        by_id[row[key]] = row
    columns = [c for c in (rows[0][0] if rows else {}) if c not in (key, "title")]
    index = {i: n for n, i in enumerate(ids)}
    blocks, names = [], []
    for col in columns:
        values = [(index[i], r.get(col, "")) for i, r in by_id.items() if i in index]
        try:
            nums = np.array([float(v) for _, v in values], dtype=np.float64)
            numeric = np.isfinite(nums).all()
        except ValueError:
            numeric = False
        if numeric:
            block = np.zeros((len(ids), 1), np.float32)
            std = nums.std() or 1.0
            for (i, _), x in zip(values, nums):
                block[i, 0] = (x - nums.mean()) / std
            names.append(col)
        else:
            levels = sorted({part for _, v in values for part in v.split("|") if part})
            pos = {lv: n for n, lv in enumerate(levels)}
            block = np.zeros((len(ids), len(levels)), np.float32)
            for i, v in values:
                for part in v.split("|"):
                    if part:
                        block[i, pos[part]] = 1.0
            names.extend(f"{col}={lv}" for lv in levels)
        blocks.append(block)
    matrix = np.concatenate(blocks, 1) if blocks else np.zeros((len(ids), 0), np.float32)
    titles = {i: r["title"] for i, r in by_id.items() if r.get("title")}
    return matrix, names, titles


def _first_of_each(pair: np.ndarray, times) -> np.ndarray:
    """Row numbers of the earliest row (then the first in the file) of every distinct ``pair`` value."""
    order = np.lexsort((np.arange(len(pair)), np.asarray(times), pair))
    first = np.r_[True, pair[order][1:] != pair[order][:-1]]
    return np.sort(order[first])


def read_interactions(
    ratings, item_features=None, user_features=None, scale=(1, 5), name: str | None = None, implicit: bool = False
) -> Interactions:
    """Read a ratings file and optional feature files (see the module docstring); ``implicit``: the file
    lists interactions (``user,item[,timestamp]``), every one of value 1."""
    path = _need_file(ratings)
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: no ratings (the file is empty)")
    needed = ("user", "item") if implicit else ("user", "item", "rating")
    missing = [c for c in needed if c not in rows[0][0]]
    if missing:
        raise DataError(
            f"{path}: needs columns {','.join(needed)}[,timestamp]; missing {', '.join(missing)}"
            + (
                ""
                if implicit or "rating" not in missing or len(missing) > 1
                else " (interactions without ratings: pass implicit=True / --implicit)"
            )
        )
    if not implicit:
        lo, hi = (float(x) for x in scale)
        if not lo < hi:
            raise DataError(f"the rating scale must have lowest < highest, got {lo:g}..{hi:g}")
    has_time = "timestamp" in rows[0][0]
    users, items, values, times = [], [], [], []
    for k, (row, n) in enumerate(rows):
        if not row.get("user") or not row.get("item"):
            raise DataError(f"{path}:{n}: empty user or item")
        users.append(row["user"])
        items.append(row["item"])
        values.append(1.0 if implicit else _number(row.get("rating", ""), "rating", f"{path}:{n}"))
        times.append(int(_number(row.get("timestamp", ""), "timestamp", f"{path}:{n}")) if has_time else k)
    item_rows = _read_rows(_need_file(item_features)) if item_features else []
    user_rows = _read_rows(_need_file(user_features)) if user_features else []
    user_ids = sorted(set(users) | {r.get("user", "") for r, _ in user_rows} - {""})
    item_ids = sorted(set(items) | {r.get("item", "") for r, _ in item_rows} - {""})
    ifeat, inames, titles = encode_features(item_rows, "item", item_ids, item_features)
    ufeat, unames, _ = encode_features(user_rows, "user", user_ids, user_features)
    uidx = {u: n for n, u in enumerate(user_ids)}
    iidx = {i: n for n, i in enumerate(item_ids)}
    users, items = [uidx[u] for u in users], [iidx[i] for i in items]
    if implicit:  # repeated interactions (clicks) are one interaction, at its first time
        pair = np.asarray(users, np.int64) * len(item_ids) + np.asarray(items, np.int64)
        keep = _first_of_each(pair, times)
        users, items, values, times = ([x[k] for k in keep] for x in (users, items, values, times))
    data = Interactions(
        users,
        items,
        values,
        times,
        user_ids,
        item_ids,
        ufeat,
        ifeat,
        unames,
        inames,
        [titles.get(i, i) for i in item_ids] if titles else None,
        (1.0, 1.0) if implicit else tuple(scale),
        name or path.stem,
        implicit,
    )
    return data.validate(str(path))
