"""Fortune cookies by topic: the quotations and jokes of BSD ``fortune``, filed under 6 topics.

The files ship in the Debian package ``fortunes`` (``apt-get install fortunes``: ``/usr/share/games/fortunes``,
BSD licence; fortune-mod 1.99.1): one file per topic, entries separated by lines holding ``%``. This loader
reads them there, or from ``fortunes/`` under the data root (the same files). Short, witty texts whose topic
is often only implied: a hard topic task unlike news or intents.

Classes: ``computers``, ``food``, ``love``, ``politics``, ``science``, ``sports`` (147-1,050 entries each).
Items: the entry with its attribution, whitespace collapsed. No official split: ``train`` and ``test`` are
fixed halves of each class (``class_halves`` with ``SPLIT_SEED``); ``all`` is everything.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..core.errors import DataError
from .base import LabeledData
from .packaged import check_split, first_folder, from_rows, require

FOLDER = "fortunes"
INSTALLED = Path("/usr/share/games/fortunes")
SPLITS = ("train", "test", "all")
SPLIT_SEED = 1995
CLASSES = ("computers", "food", "love", "politics", "science", "sports")
HOW = "apt-get install fortunes, or copy its files to fortunes/ under the data root"


def _folder(root=None) -> Path | None:
    return first_folder(root, FOLDER, [INSTALLED])


def missing_files(root=None) -> list[str]:
    folder = _folder(root)
    if folder is None:
        return [f"{FOLDER}/{c}" for c in CLASSES]
    return [f"{FOLDER}/{c}" for c in CLASSES if not (folder / c).is_file()]


@functools.lru_cache(maxsize=2)
def _rows(folder: str) -> tuple[tuple[str, str], ...]:
    rows = []
    for topic in CLASSES:
        path = Path(folder, topic)
        if not path.is_file():
            raise DataError(f"fortunes: {path} is missing ({HOW})")
        entries = "\n".join(path.read_bytes().decode("utf-8", errors="replace").splitlines()).split("\n%\n")
        rows += [(" ".join(e.split()), topic) for e in entries if e.strip().strip("%")]
    return tuple(rows)


def load_fortunes(split: str = "train", root=None) -> LabeledData:
    """Fortune entries by topic (6 classes); ``train``/``test``: fixed halves of each class."""
    check_split("fortunes", split, SPLITS)
    folder = require(_folder(root), "fortunes", HOW)
    return from_rows(_rows(str(folder)), "fortunes", split, CLASSES, SPLIT_SEED, source=str(folder))
