"""kshot.tagging with the packaged MiniLM: every method, windows, save/load, the CLI, bad inputs."""

import json

import numpy as np
import pytest

from kshot.cli import main
from kshot.core.errors import KshotError
from kshot.tagging.encoders import TokenEncoder
from kshot.tagging.io import read_conll, write_conll
from kshot.tagging.tagger import FewShotTagger

pytest.importorskip("sentence_transformers")

NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
CITIES = ["Paris", "London", "Berlin", "Madrid", "Rome", "Vienna"]
FILLER = ["we", "met", "today", "and", "talked", "about", "the", "weather", "for", "a", "while"]


def synthetic(n, seed):
    rng = np.random.default_rng(seed)
    sents, tags = [], []
    for _ in range(n):
        name, city = rng.choice(NAMES), rng.choice(CITIES)
        filler = list(rng.choice(FILLER, size=3))
        sents.append([name, "visited", city] + filler)
        tags.append(["B-person", "O", "B-location"] + ["O"] * 3)
    return sents, tags


TRAIN = synthetic(6, 0)
TEST = synthetic(10, 1)


@pytest.mark.parametrize(
    "kw",
    [
        dict(method="proto"),
        dict(method="nnshot"),
        dict(method="structshot"),
        dict(method="finetune", steps=3),
        dict(method="finetune", steps=3, crf=True),
        dict(method="episodic", backbone="lstm", steps=5),
        dict(method="episodic", backbone="gru", steps=5),
        dict(method="episodic", backbone="transformer", steps=5),
    ],
)
def test_methods_tag_synthetic_entities(kw):
    tagger = FewShotTagger(**kw).fit(*TRAIN)
    assert tagger.types_ == ["location", "person"]
    pred = tagger.predict(TEST[0])
    assert [len(p) for p in pred] == [len(s) for s in TEST[0]]
    assert tagger.score(*TEST)["micro"]["f1"] >= 0.8, kw


def test_predict_entities_raw_strings_and_save_load(tmp_path):
    tagger = FewShotTagger(method="structshot").fit(*TRAIN)
    ents = tagger.predict_entities(["Carol visited Rome today"])[0]
    assert {(e["text"], e["type"]) for e in ents} == {("Carol", "person"), ("Rome", "location")}
    assert all(0 < e["score"] <= 1 for e in ents)
    tagger.save(tmp_path / "m")
    loaded = FewShotTagger.load(tmp_path / "m")
    assert loaded.predict(TEST[0]) == tagger.predict(TEST[0])
    ft = FewShotTagger(method="finetune", steps=2, crf=True).fit(*TRAIN)
    ft.save(tmp_path / "ft")
    assert (tmp_path / "ft" / "encoder").is_dir()
    assert FewShotTagger.load(tmp_path / "ft").predict(TEST[0]) == ft.predict(TEST[0])


def test_episodic_training_on_a_source_corpus():
    rng = np.random.default_rng(3)
    src = [
        [
            str(rng.choice(["Toyota", "Honda"])),
            "makes",
            str(rng.choice(["Prius", "Civic"])),
            "in",
            str(rng.choice(["Japan", "Ohio"])),
        ]
        for _ in range(20)
    ]
    src_tags = [["B-corporation", "O", "B-product", "O", "B-country"]] * 20
    tagger = FewShotTagger(method="episodic", backbone="gru", steps=4).fit(*TRAIN, source=(src, src_tags))
    assert tagger.score(*TEST)["micro"]["f1"] >= 0.8
    with pytest.raises(KshotError, match="episodic"):
        FewShotTagger(method="proto").fit(*TRAIN, source=(src, src_tags))


def test_long_sentences_are_windowed_not_truncated():
    words = ["the"] * 40 + ["Alice", "visited", "Paris"]
    enc = TokenEncoder(window=12)
    assert enc.encode([words])[0].shape[0] == len(words)
    tagger = FewShotTagger(method="proto", window=12).fit(*TRAIN)
    gold = [["O"] * 40 + ["B-person", "O", "B-location"]]
    scores = tagger.score([words], gold)
    assert scores["micro"]["support"] == 2  # the entities past the first window are scored
    assert tagger.predict([words])[0][-3:] == gold[0][-3:]


def test_bad_inputs():
    with pytest.raises(KshotError, match="1 tags"):
        FewShotTagger().fit([["a", "b"]], [["O"]])
    with pytest.raises(KshotError, match="empty"):
        FewShotTagger().fit([], [])
    with pytest.raises(KshotError, match="no entities"):
        FewShotTagger().fit([["a"]], [["O"]])
    with pytest.raises(KshotError, match="product"):
        FewShotTagger().fit(*TRAIN, types=["person", "product"])
    tagger = FewShotTagger(method="proto").fit(*TRAIN, types=["person"])
    assert tagger.types_ == ["person"]
    with pytest.raises(KshotError, match="location"):
        tagger.score(*TEST)
    with pytest.raises(KshotError, match="unknown method"):
        FewShotTagger(method="magic").fit(*TRAIN)


def test_cli_fit_predict_eval(tmp_path, capsys):
    train, test = tmp_path / "train.conll", tmp_path / "test.conll"
    write_conll(train, *synthetic(30, 2))
    write_conll(test, *TEST)
    model = tmp_path / "m"
    assert (
        main(["tag", "fit", str(train), "--out", str(model), "--shots", "3", "--seed", "1", "--method", "nnshot"]) == 0
    )
    assert "fitted nnshot on" in capsys.readouterr().out
    assert main(["tag", "eval", str(model), str(test), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores["types"]) == {"location", "person"} and scores["micro"]["f1"] >= 0.8
    text = tmp_path / "in.txt"
    text.write_text("Erin visited Berlin\nDave visited London today\n")
    out = tmp_path / "out.conll"
    assert main(["tag", "predict", str(model), str(text), "--output", str(out)]) == 0
    tagged = read_conll(out)
    assert tagged.sentences[0] == ["Erin", "visited", "Berlin"] and tagged.tags[0] == ["B-person", "O", "B-location"]
    assert main(["tag", "predict", str(model), str(test), "--output", str(tmp_path / "o.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["tokens"] for r in rows] == TEST[0]
    assert main(["tag", "eval", str(model), str(test)]) == 0
    assert "micro" in capsys.readouterr().out


def test_cli_bad_inputs_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.conll"
    empty.write_text("")
    notags = tmp_path / "notags.conll"
    notags.write_text("Alice\tB-person\nvisited\n")
    train = tmp_path / "train.conll"
    write_conll(train, *TRAIN)
    model = tmp_path / "m"
    assert main(["tag", "fit", str(train), "--out", str(model), "--method", "proto", "--types", "person"]) == 0
    other = tmp_path / "other.conll"
    write_conll(other, [["Apple", "rocks"]], [["B-corporation", "O"]])
    cases = [
        ["tag", "fit", str(empty), "--out", str(tmp_path / "x")],
        ["tag", "fit", str(notags), "--out", str(tmp_path / "x")],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--types", "person,product"],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--shots", "2", "--types", "product"],
        ["tag", "eval", str(model), str(other)],
        ["tag", "predict", str(tmp_path), str(train)],
        ["tag", "predict", str(model), str(empty)],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, (argv, err)
