"""Sentence classification development sets: MR (movie-review polarity) and Subj (subjectivity).

Files, under the data root (the Kim 2014 benchmark copies, github.com/harvardnlp/sent-conv-torch):

* ``sentence-dev/rt-polarity.all``: MR, 10,662 sentences, ``0`` negative / ``1`` positive;
* ``sentence-dev/subj.all``: Subj, 10,000 sentences, ``0`` subjective / ``1`` objective.

One example per line, ``<label> <sentence>``, latin-1 bytes. There is no official split: ``train`` and
``test`` are fixed halves of each class (a permutation seeded with ``SPLIT_SEED``, so every user and every
run sees the same halves); ``all`` is the whole file. Class names are the words, not the digits.
"""

from __future__ import annotations

import functools

import numpy as np

from ..core.errors import DataError
from .base import LabeledData, class_halves
from .files import labeled_from_strings
from .store import data_root

FOLDER = "sentence-dev"
SPLITS = ("train", "test", "all")
SPLIT_SEED = 2005
SETS = {"mr": ("rt-polarity.all", ("negative", "positive")), "subj": ("subj.all", ("subjective", "objective"))}


def missing_files(name: str):
    def missing(root=None) -> list[str]:
        path = data_root(root) / FOLDER / SETS[name][0]
        return [] if path.is_file() else [f"{FOLDER}/{SETS[name][0]}"]

    return missing


@functools.lru_cache(maxsize=4)
def _rows(path: str) -> tuple[tuple[str, int], ...]:
    rows = []
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, start=1):
            label, _, text = line.strip().partition(" ")
            if not line.strip():
                continue
            if label not in ("0", "1") or not text.strip():
                raise DataError(f"{path}: line {number} is not '<0|1> <sentence>': {line[:60]!r}")
            rows.append((text.strip(), int(label)))
    return tuple(rows)


def load_sentences(name: str, split: str = "train", root=None) -> LabeledData:
    if split not in SPLITS:
        raise DataError(f"unknown {name} split {split!r}; choose one of: {', '.join(SPLITS)}")
    missing = missing_files(name)(root)
    if missing:
        raise DataError(
            f"{name} file missing under {data_root(root)}: {missing[0]} "
            "(see the docstring of kshot/data/sentences.py for where to get it)"
        )
    filename, names = SETS[name]
    rows = _rows(str(data_root(root) / FOLDER / filename))
    labels = np.array([y for _, y in rows])
    if split == "all":
        keep = np.arange(len(rows))
    else:
        keep = class_halves(labels, SPLIT_SEED)[0 if split == "train" else 1]
    return labeled_from_strings([rows[i][0] for i in keep], [names[labels[i]] for i in keep], name, split, list(names))


def load_mr(split: str = "train", root=None) -> LabeledData:
    """MR: movie-review sentence polarity, 2 classes; ``train``/``test``: fixed halves (5,331 each)."""
    return load_sentences("mr", split, root)


def load_subj(split: str = "train", root=None) -> LabeledData:
    """Subj: subjective vs objective sentences, 2 classes; ``train``/``test``: fixed halves (5,000 each)."""
    return load_sentences("subj", split, root)
