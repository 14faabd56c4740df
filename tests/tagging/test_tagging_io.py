"""kshot.tagging without a model: CoNLL/JSONL io, BIO<->IO, spans, sampling, windows, metrics, WNUT-17."""

import json
import random
from collections import Counter

import pytest

from kshot.core.errors import KshotError
from kshot.data import DATASETS, load_dataset
from kshot.tagging.encoders import windows
from kshot.tagging.io import (
    bio_to_io,
    io_to_bio,
    read_conll,
    read_jsonl,
    read_sentences,
    read_tagged,
    spans,
    tokenize,
    write_conll,
    write_jsonl,
)
from kshot.tagging.metrics import entity_scores
from kshot.tagging.sampling import fewnerd_episode, greedy_support, mention_counts, only_types

SENTS = [["Watching", "Star", "Wars", "in", "New", "York"], ["@bob", "loves", "Apple"], ["nothing", "here"]]
TAGS = [
    ["O", "B-creative-work", "I-creative-work", "O", "B-location", "I-location"],
    ["B-person", "O", "B-corporation"],
    ["O", "O"],
]


def test_conll_round_trip_tab_and_space(tmp_path):
    path = tmp_path / "a.conll"
    write_conll(path, SENTS, TAGS)
    data = read_conll(path)
    assert data.sentences == SENTS and data.tags == TAGS
    assert data.types == ["corporation", "creative-work", "location", "person"]
    spaced = tmp_path / "b.txt"
    spaced.write_text("-DOCSTART- -X- O\n\nStar NN B-NP B-creative-work\nWars NN I-NP I-creative-work\n \t\nhi O\n")
    d = read_conll(spaced)
    assert d.sentences == [["Star", "Wars"], ["hi"]] and d.tags[0] == ["B-creative-work", "I-creative-work"]


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, SENTS, TAGS)
    assert read_jsonl(path).tags == TAGS and read_tagged(path).sentences == SENTS
    assert read_sentences(path) == (SENTS, "jsonl")


@pytest.mark.parametrize("text,line", [("a\tO\nb\n", 2), ("a\tO\n\nb\tX-person\n", 3), ("a\tB-\n", 1)])
def test_malformed_conll_names_file_and_line(tmp_path, text, line):
    path = tmp_path / "bad.conll"
    path.write_text(text)
    with pytest.raises(KshotError, match=rf"bad.conll:{line}:"):
        read_conll(path)


def test_bad_jsonl_and_empty_files(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(KshotError, match="bad.jsonl:1: 2 tokens but 1 tags"):
        read_jsonl(path)
    path.write_text(json.dumps({"tokens": ["a", "b"]}) + "\n")
    with pytest.raises(KshotError, match="2 tokens but 0 tags"):
        read_jsonl(path)
    empty = tmp_path / "empty.conll"
    empty.write_text("\n\n")
    with pytest.raises(KshotError, match="no sentences"):
        read_conll(empty)
    blank = tmp_path / "empty.txt"
    blank.write_text(" \n")
    with pytest.raises(KshotError, match="no text"):
        read_sentences(blank)


def test_plain_text_is_tokenised(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("I love New-York, @bob!\n\nSee https://x.co/a #win\n")
    sents, fmt = read_sentences(path)
    assert fmt == "text"
    assert sents == [["I", "love", "New-York", ",", "@bob", "!"], ["See", "https://x.co/a", "#win"]]
    assert tokenize("it's 3.5") == ["it's", "3.5"]


def test_spans_match_seqeval_and_bio_io_conversion():
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(0)
    pool = ["O", "B-a", "I-a", "B-creative-work", "I-creative-work"]
    for _ in range(500):
        tags = [rng.choice(pool) for _ in range(rng.randint(1, 9))]
        assert sorted((s, e - 1, k) for s, e, k in spans(tags)) == sorted((s, e, k) for k, s, e in get_entities(tags))
        io = bio_to_io(tags)
        assert all(t == "O" or t.startswith("I-") for t in io)
        assert spans(io_to_bio(io)) == spans(io)
    assert spans(["B-creative-work", "I-creative-work", "O"]) == [(0, 2, "creative-work")]
    assert io_to_bio(["I-x", "I-x", "O", "I-y"]) == ["B-x", "I-x", "O", "B-y"]


def test_greedy_support_invariants():
    rng = random.Random(1)
    types = ["a", "b", "c"]
    tags = []
    for _ in range(200):
        row = ["O"] * 6
        for j in rng.sample(range(6), rng.randint(0, 2)):
            row[j] = "B-" + rng.choice(types)
        tags.append(row)
    for shots in (1, 3):
        for seed in range(3):
            idx = greedy_support(tags, shots, seed)
            assert idx == greedy_support(tags, shots, seed)  # fixed by the seed
            counts = mention_counts([tags[i] for i in idx])
            total = sum(counts, Counter())
            assert all(total[t] >= shots for t in types)
            for c in counts:  # minimal: dropping any sentence loses a type's K-th mention
                assert any(total[t] - c[t] < shots for t in types)
    assert greedy_support(tags, 2, 0) != greedy_support(tags, 2, 1)
    with pytest.raises(KshotError, match="fewer than 500 mentions"):
        greedy_support(tags, 500, 0)
    with pytest.raises(KshotError, match="zzz"):
        greedy_support(tags, 1, 0, types=["a", "zzz"])
    s, q, chosen = fewnerd_episode(tags, 2, 2, seed=0)
    assert len(chosen) == 2 and not set(s) & set(q)
    for part in (s, q):
        total = sum(mention_counts(only_types([tags[i] for i in part], chosen)), Counter())
        assert set(total) == set(chosen) and all(2 <= total[t] <= 4 for t in chosen)


def test_windows_cover_every_word():
    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(1, 4) for _ in range(rng.randint(1, 60))]
        limit = rng.randint(4, 20)
        ws = windows(lengths, limit)
        cores = [w for s, c0, c1, e in ws for w in range(c0, c1)]
        assert cores == list(range(len(lengths)))
        for s, c0, c1, e in ws:
            assert s <= c0 < c1 <= e and (sum(lengths[s:e]) <= limit or c1 - c0 == 1)


def test_metrics_are_seqeval():
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold = TAGS
    pred = [["O", "B-creative-work", "O", "O", "B-location", "I-location"], ["B-person", "O", "B-person"], ["O", "O"]]
    s = entity_scores(gold, pred)
    assert s["micro"]["f1"] == pytest.approx(f1_score(gold, pred))
    assert s["micro"]["precision"] == pytest.approx(precision_score(gold, pred)) == pytest.approx(2 / 4)
    assert s["micro"]["recall"] == pytest.approx(recall_score(gold, pred)) == pytest.approx(2 / 4)
    assert s["types"]["creative-work"]["f1"] == 0 and s["types"]["location"]["f1"] == 1


def test_wnut17_counts(real_data_root):
    assert DATASETS["wnut17"].kind == "tagging" and not DATASETS["wnut17"].files(real_data_root)
    expect = {"train": (3394, 62730, 1975), "dev": (1009, 15733, 836), "test": (1287, 23394, 1079)}
    for split, (n, tokens, ents) in expect.items():
        d = load_dataset("wnut17", split, root=real_data_root)
        assert (len(d), sum(map(len, d.sentences)), sum(len(spans(t)) for t in d.tags)) == (n, tokens, ents)
        assert d.types == ["corporation", "creative-work", "group", "location", "person", "product"]
    test = load_dataset("wnut17", "test", root=real_data_root)
    per_type = Counter(k for t in test.tags for _, _, k in spans(t))
    assert per_type == {
        "person": 429,
        "location": 150,
        "group": 165,
        "corporation": 66,
        "product": 127,
        "creative-work": 142,
    }
