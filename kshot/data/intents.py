"""Intent classification benchmarks: BANKING77 and CLINC150 (with its out-of-scope split).

Files, under the data root:

* ``banking77/train.csv``, ``banking77/test.csv`` (columns ``text,category``; github.com/PolyAI-LDN/task-specific-datasets)
* ``clinc150/data_full.json`` (keys ``train``, ``val``, ``test``, ``oos_train``, ``oos_val``, ``oos_test``;
  each a list of ``[text, intent]``; github.com/clinc/oos-eval)
* ``clinc150/domains.json`` (domain -> its 15 intents; same source): ``clinc150-domains`` labels the in-scope
  queries with their domain instead (10 classes, e.g. ``banking``, ``travel``, ``small_talk``): a topic task
  whose classes each hold many kinds of request, unlike the one-request-per-class intents

Items are lists of strings. In-scope splits use the sorted intent names of the training split as
classes; CLINC150's ``oos_*`` splits hold one class, ``oos``.
"""

from __future__ import annotations

import csv
import functools
import json

from ..core.errors import DataError
from .base import LabeledData
from .files import labeled_from_strings
from .store import data_root

BANKING77_FOLDER = "banking77"
BANKING77_SPLITS = ("train", "test")
CLINC150_FOLDER = "clinc150"
CLINC150_SPLITS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")
OOS = "oos"


def banking77_missing(root=None) -> list[str]:
    folder = data_root(root) / BANKING77_FOLDER
    return [f"{BANKING77_FOLDER}/{s}.csv" for s in BANKING77_SPLITS if not (folder / f"{s}.csv").is_file()]


def clinc150_missing(root=None) -> list[str]:
    path = data_root(root) / CLINC150_FOLDER / "data_full.json"
    return [] if path.is_file() else [f"{CLINC150_FOLDER}/data_full.json"]


def clinc150_domains_missing(root=None) -> list[str]:
    path = data_root(root) / CLINC150_FOLDER / "domains.json"
    return clinc150_missing(root) + ([] if path.is_file() else [f"{CLINC150_FOLDER}/domains.json"])


def _require(missing: list[str], root, name: str) -> None:
    if missing:
        raise DataError(
            f"{name} files missing under {data_root(root)}: {', '.join(missing)} "
            "(see the docstring of kshot/data/intents.py for where to get them)"
        )


def _check_split(name: str, split: str, splits) -> None:
    if split not in splits:
        raise DataError(f"unknown {name} split {split!r}; choose one of: {', '.join(splits)}")


@functools.lru_cache(maxsize=4)
def _banking77_rows(folder: str, split: str) -> tuple[tuple[str, str], ...]:
    with open(f"{folder}/{split}.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise DataError(f"{folder}/{split}.csv must have columns text,category; has {reader.fieldnames}")
        return tuple((r["text"], r["category"]) for r in reader)


def load_banking77(split: str = "train", root=None) -> LabeledData:
    """BANKING77: 77 banking intents; ``train`` (10,003 texts) and ``test`` (3,080)."""
    _check_split("banking77", split, BANKING77_SPLITS)
    _require(banking77_missing(root), root, "banking77")
    folder = str(data_root(root) / BANKING77_FOLDER)
    classes = sorted({y for _, y in _banking77_rows(folder, "train")})
    rows = _banking77_rows(folder, split)
    return labeled_from_strings([t for t, _ in rows], [y for _, y in rows], "banking77", split, classes)


@functools.lru_cache(maxsize=2)
def _clinc150(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from None


def load_clinc150(split: str = "train", root=None) -> LabeledData:
    """CLINC150: 150 in-scope intents (``train`` 15,000 / ``val`` 3,000 / ``test`` 4,500 texts) and
    out-of-scope queries (``oos_train`` 100 / ``oos_val`` 100 / ``oos_test`` 1,000), labelled ``oos``."""
    _check_split("clinc150", split, CLINC150_SPLITS)
    _require(clinc150_missing(root), root, "clinc150")
    path = data_root(root) / CLINC150_FOLDER / "data_full.json"
    data = _clinc150(str(path))
    missing = [s for s in CLINC150_SPLITS if s not in data]
    if missing:
        raise DataError(f"{path} lacks the keys {', '.join(missing)}")
    classes = [OOS] if split.startswith("oos_") else sorted({y for _, y in data["train"]})
    rows = data[split]
    return labeled_from_strings([t for t, _ in rows], [y for _, y in rows], "clinc150", split, classes)


def load_clinc150_domains(split: str = "train", root=None) -> LabeledData:
    """CLINC150's in-scope queries labelled by domain (10 classes of 15 intents each); splits ``train``,
    ``val``, ``test`` as in ``load_clinc150``."""
    _check_split("clinc150-domains", split, CLINC150_SPLITS[:3])
    _require(clinc150_domains_missing(root), root, "clinc150-domains")
    path = data_root(root) / CLINC150_FOLDER / "domains.json"
    domains = _clinc150.__wrapped__(str(path))  # a small file: read it each time, uncached
    if not isinstance(domains, dict) or not all(isinstance(v, list) for v in domains.values()):
        raise DataError(f"{path} must map each domain to a list of intents")
    domain_of = {intent: d for d, intents in domains.items() for intent in intents}
    intents = load_clinc150(split, root)
    missing = sorted(set(intents.class_names) - set(domain_of))
    if missing:
        raise DataError(f"{path} gives no domain for the intents {', '.join(missing[:5])}")
    labels = [domain_of[intents.class_names[y]] for y in intents.labels]
    return labeled_from_strings(list(intents.items), labels, "clinc150-domains", split, sorted(domains))
