"""MovieLens-100K (GroupLens): 943 users, 1,682 movies, 100,000 ratings 1-5, with side features.

Files, under the data root: ``movielens-100k/u.data`` (user, item, rating, timestamp; tab-separated),
``movielens-100k/u.item`` (id|title|release date|video date|url|19 genre flags, Latin-1) and
``movielens-100k/u.user`` (id|age|gender|occupation|zip). They come from the official
``ml-100k.zip`` (https://files.grouplens.org/datasets/movielens/ml-100k.zip). Its licence forbids
redistribution: kshot never ships it. ``download_movielens(root)`` fetches the official zip (sha256
checked) and unpacks those files, each written atomically.

Side features: items get the 19 genre flags and the standardised release year; users get the
standardised age, seven age groups (as in MovieLens-1M), gender, occupation (one-hot) and the first
digit of the zip code (one-hot; ``other`` for non-numeric codes).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..core.io import atomic_write, download
from .base import DatasetInfo
from .interactions import Interactions
from .store import data_root

FOLDER = "movielens-100k"
FILES = ("u.data", "u.item", "u.user")
URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# sha256 and size of the official zip, as recorded in tensorflow/datasets (url_checksums/movielens.txt)
SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
AGE_GROUPS = (18, 25, 35, 45, 50, 56)  # bounds of the groups <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+


def missing_files(root=None) -> list[str]:
    folder = data_root(root) / FOLDER
    return [f"{FOLDER}/{f}" for f in FILES if not (folder / f).is_file()]


def download_movielens(root=None, url: str = URL, sha256: str | None = SHA256, progress: bool = True) -> Path:
    """Fetch the official zip into ``<root>/movielens-100k/`` (sha256 checked) and unpack u.data, u.item,
    u.user there; returns the folder. Each file appears complete or not at all."""
    folder = data_root(root) / FOLDER
    zip_path = download(url, folder / "ml-100k.zip", sha256, progress=progress)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = {Path(n).name: n for n in zf.namelist()}
            for f in FILES:
                if f not in names:
                    raise DataError(f"{zip_path} has no {f}; is it the MovieLens-100K zip?")
                with atomic_write(folder / f) as out:
                    out.write(zf.read(names[f]))
    except zipfile.BadZipFile:
        raise DataError(f"{zip_path} is not a zip file; delete it and download again") from None
    return folder


def _table(path: Path, sep: str) -> list[list[str]]:
    text = path.read_bytes().decode("latin-1")
    return [line.split(sep) for line in text.splitlines() if line.strip()]


def _year(date: str) -> float:
    try:
        return float(date.strip()[-4:])
    except ValueError:
        return float("nan")


def load_movielens(split: str = "all", root=None) -> Interactions:
    """All 100,000 ratings with the item and user features (``split`` is always ``all``: the protocol in
    ``kshot.recsys.protocol`` makes the folds)."""
    if split != "all":
        raise DataError(f"unknown movielens-100k split {split!r}; choose one of: all")
    missing = missing_files(root)
    if missing:
        raise DataError(
            f"movielens-100k files missing under {data_root(root)}: {', '.join(missing)}; unzip u.data, u.item "
            f"and u.user from {URL} into {data_root(root) / FOLDER}/ (or call "
            "kshot.data.movielens.download_movielens() on a machine with a network)"
        )
    folder = data_root(root) / FOLDER
    try:
        raw = np.loadtxt(folder / "u.data", dtype=np.int64, ndmin=2)
        items = _table(folder / "u.item", "|")
        users = _table(folder / "u.user", "|")
        if raw.shape[1] != 4 or any(len(r) != 24 for r in items) or any(len(r) != 5 for r in users):
            raise ValueError("unexpected number of columns")
    except ValueError as exc:
        raise DataError(f"{folder}: malformed MovieLens-100K files ({exc})".splitlines()[0]) from None
    item_ids = [r[0] for r in items]
    user_ids = [r[0] for r in users]
    genres = np.array([[float(x) for x in r[5:24]] for r in items], np.float32)
    year = np.array([_year(r[2]) for r in items])
    year = np.where(np.isnan(year), np.nanmedian(year), year)
    item_features = np.concatenate([genres, ((year - year.mean()) / year.std())[:, None]], 1)
    age = np.array([float(r[1]) for r in users])
    groups = np.searchsorted(AGE_GROUPS, age, side="right")
    occupations = sorted({r[3] for r in users})
    zips = [r[4][0] if r[4][:1].isdigit() else "other" for r in users]
    zip_levels = [str(d) for d in range(10)] + ["other"]
    user_features = np.concatenate(
        [
            ((age - age.mean()) / age.std())[:, None],
            np.eye(len(AGE_GROUPS) + 1)[groups],
            np.array([[r[2] == "M", r[2] == "F"] for r in users], np.float64),
            np.eye(len(occupations))[[occupations.index(r[3]) for r in users]],
            np.eye(len(zip_levels))[[zip_levels.index(z) for z in zips]],
        ],
        1,
    )
    user_names = (
        ["age"]
        + [f"age_group={g}" for g in range(len(AGE_GROUPS) + 1)]
        + ["gender=M", "gender=F"]
        + [f"occupation={o}" for o in occupations]
        + [f"zip={z}" for z in zip_levels]
    )
    uidx = {u: n for n, u in enumerate(user_ids)}
    iidx = {i: n for n, i in enumerate(item_ids)}
    try:
        u = [uidx[str(x)] for x in raw[:, 0]]
        i = [iidx[str(x)] for x in raw[:, 1]]
    except KeyError as exc:
        raise DataError(f"{folder / 'u.data'}: id {exc} is not in u.user / u.item") from None
    data = Interactions(
        u,
        i,
        raw[:, 2],
        raw[:, 3],
        user_ids,
        item_ids,
        user_features,
        item_features,
        user_names,
        [f"genre={g}" for g in GENRES] + ["year"],
        [r[1] for r in items],
        (1, 5),
        "movielens-100k",
    )
    return data.validate(str(folder / "u.data"))


INFO = DatasetInfo(
    name="movielens-100k",
    description="MovieLens-100K ratings 1-5 with genres/year and user demographics (recsys; "
    "not redistributable: bring your own copy)",
    folder=FOLDER,
    splits=("all",),
    files=missing_files,
    load=load_movielens,
    kind="recsys",
)

__all__ = ["INFO", "download_movielens", "load_movielens", "missing_files"]
