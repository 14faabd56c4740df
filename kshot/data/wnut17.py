"""WNUT-17 Emerging and Rare Entities (Derczynski et al. 2017), CC BY 4.0.

Files under ``wnut17/`` in the data root (github.com/leondz/emerging_entities_17):

* ``train``: ``wnut17train.conll`` (3,394 sentences)
* ``dev``: ``emerging.dev.conll`` (1,009)
* ``test``: ``emerging.test.annotated`` (1,287 sentences, 1,079 entities). ``emerging.test.conll`` is
  NOT used: its tags are comma-joined multi-annotations.

Six entity types, BIO tags: person, location, corporation, product, creative-work, group.
"""

from __future__ import annotations

from ..core.errors import DataError
from .conll import TaggedData, read_conll
from .store import data_root

FOLDER = "wnut17"
FILES = {"train": "wnut17train.conll", "dev": "emerging.dev.conll", "test": "emerging.test.annotated"}
SPLITS = tuple(FILES)
TYPES = ("corporation", "creative-work", "group", "location", "person", "product")


def missing_files(root=None) -> list[str]:
    folder = data_root(root) / FOLDER
    return [f"{FOLDER}/{f}" for f in FILES.values() if not (folder / f).is_file()]


def load_wnut17(split: str = "train", root=None) -> TaggedData:
    """One split of WNUT-17 as ``TaggedData`` (tokens and BIO tags)."""
    if split not in FILES:
        raise DataError(f"unknown wnut17 split {split!r}; choose one of: {', '.join(SPLITS)}")
    path = data_root(root) / FOLDER / FILES[split]
    if not path.is_file():
        raise DataError(f"wnut17 file missing: {path} (see the docstring of kshot/data/wnut17.py)")
    return read_conll(path, name="wnut17", split=split)
