"""The two-stage span tagger (find the spans, then type them), a source corpus, scikit-learn conventions,
progress bars and the CLI (a --source with the target's own types refused), with the packaged MiniLM on
small synthetic sentences."""

import json

import numpy as np
import pytest
from sklearn.base import clone
from test_tagging import TEST, TRAIN, synthetic  # the sentences of person visited city

from kshot.cli import main
from kshot.core.errors import KshotError
from kshot.tagging.descriptions import describe
from kshot.tagging.io import write_conll
from kshot.tagging.methods.base import io_runs
from kshot.tagging.tagger import FewShotTagger

pytest.importorskip("sentence_transformers")


def source_corpus(n=20, seed=3):
    """Other entity types than the target's: companies and products."""
    rng = np.random.default_rng(seed)
    sents = [
        [
            str(rng.choice(["Toyota", "Honda", "Sony"])),
            "makes",
            "the",
            str(rng.choice(["Prius", "Civic", "Walkman"])),
            "now",
        ]
        for _ in range(n)
    ]
    return sents, [["B-corporation", "O", "O", "B-product", "O"]] * n


def test_io_runs_and_descriptions():
    assert io_runs([0, 1, 1, 0, 2, 2, 1, 0]) == [(1, 3, 1), (4, 6, 2), (6, 7, 1)]
    assert io_runs([0, 0]) == [] and io_runs([3, 3]) == [(0, 2, 3)]
    assert describe("PER").startswith("person") and describe("creative_work").startswith("creative work")
    assert describe("drug") == "drug" and describe("drug", {"drug": "a medicine"}) == "a medicine"


def test_span_tagger_fits_predicts_saves_and_loads(tmp_path, capsys):
    tagger = FewShotTagger(method="span", steps=4).fit(*TRAIN)
    assert "fine-tuning" not in capsys.readouterr().err  # progress=False: no bars
    assert tagger.types_ == ["location", "person"]
    assert tagger.score(*TEST)["micro"]["f1"] >= 0.8
    ents = tagger.predict_entities(["Carol visited Rome today"])[0]
    assert {(e["text"], e["type"]) for e in ents} == {("Carol", "person"), ("Rome", "location")}
    assert all(0 < e["score"] <= 1 for e in ents)
    tagger.save(tmp_path / "m")
    loaded = FewShotTagger.load(tmp_path / "m")
    assert loaded.method == "span" and loaded.predict(TEST[0]) == tagger.predict(TEST[0])


def test_span_tagger_with_a_source_corpus():
    src = source_corpus()
    tagger = FewShotTagger(method="span", steps=3, source_steps=3).fit(*TRAIN, source=src)
    assert tagger.method_.map is not None  # the typer's map was trained on the source's episodes
    assert tagger.score(*TEST)["micro"]["f1"] >= 0.8
    own = ([["Alice", "rocks"]] * 3, [["B-person", "O"]] * 3)  # a source with the target's own type
    with pytest.raises(KshotError, match="own type.*person"):
        FewShotTagger(method="span", steps=2).fit(*TRAIN, source=own)
    with pytest.raises(KshotError, match="episodic, span"):
        FewShotTagger(method="proto").fit(*TRAIN, source=src)


def test_self_training_on_unlabeled_sentences():
    unlabeled = synthetic(24, 5)[0]  # the same kind of sentences, tags dropped
    plain = FewShotTagger(method="span", steps=4).fit(*TRAIN)
    tagger = FewShotTagger(method="span", steps=4, pseudo=0.6, pool=20).fit(*TRAIN, unlabeled=unlabeled)
    kept = tagger.method_.pseudo_count
    assert 0 < kept <= 20  # a pool of 20 of the 24 sentences, those typed with confidence kept
    assert not np.allclose(tagger.method_.text_protos.numpy(), plain.method_.text_protos.numpy())
    assert tagger.score(*TEST)["micro"]["f1"] >= 0.8
    # raw strings are tokenised; a higher threshold keeps fewer sentences
    strict = FewShotTagger(method="span", steps=4, pseudo=0.95, pool=20).fit(*TRAIN, unlabeled=unlabeled)
    assert strict.method_.pseudo_count <= kept
    for bad, match in [(dict(pseudo=1.5), "pseudo must be"), (dict(pool=0), "pool must be")]:
        with pytest.raises(KshotError, match=match):
            FewShotTagger(method="span", **bad).fit(*TRAIN, unlabeled=unlabeled)
    with pytest.raises(KshotError, match="unlabeled sentences train the method span, not 'proto'"):
        FewShotTagger(method="proto").fit(*TRAIN, unlabeled=unlabeled)
    with pytest.raises(KshotError, match="sentence 1 is empty"):
        FewShotTagger(method="span", steps=2).fit(*TRAIN, unlabeled=["Carol visited Rome", ""])


def test_scikit_learn_conventions_and_method_parameters():
    tagger = FewShotTagger(method="span", describe=0.5, descriptions={"person": "a human"}, seed=3)
    twin = clone(tagger)
    assert twin is not tagger and twin.get_params() == tagger.get_params()
    assert twin.get_params()["describe"] == 0.5 and twin.descriptions == {"person": "a human"}
    assert twin.set_params(seed=4, steps=10) is twin and (twin.seed, twin.steps) == (4, 10)
    assert set(FewShotTagger().get_params()) >= {"method", "encoder", "progress", "describe", "none", "crf"}
    for bad, match in [
        (dict(method="proto", crf=True), "crf=True does not apply to method 'proto'"),
        (dict(method="finetune", describe=0.5), "describe=0.5 does not apply"),
        (dict(method="span", tau=0.1), "tau=0.1 does not apply to method 'span'"),
        (dict(method="span", descriptions=["person"]), "descriptions must map"),
    ]:
        with pytest.raises(KshotError, match=match):
            FewShotTagger(**bad).fit(*TRAIN)


def test_progress_bars_on_fitting(capsys):
    FewShotTagger(method="finetune", steps=2, progress=True).fit(*TRAIN)
    assert "fine-tuning the tagger" in capsys.readouterr().err


def test_cli_span_and_bad_inputs(tmp_path, capsys):
    train, test, own = (tmp_path / f"{n}.conll" for n in ("train", "test", "own"))
    write_conll(train, *synthetic(30, 2))
    write_conll(test, *TEST)
    write_conll(own, [["Alice", "rocks"]], [["B-person", "O"]])
    model = tmp_path / "m"
    assert main(["tag", "fit", str(train), "--out", str(model), "--shots", "3", "--steps", "3", "--no-progress"]) == 0
    assert "fitted span on" in capsys.readouterr().out
    assert main(["tag", "score", str(model), str(test), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["micro"]["f1"] >= 0.8
    raw = tmp_path / "raw.txt"
    raw.write_text("".join(" ".join(s) + "\n" for s in synthetic(12, 7)[0]))
    argv = ["tag", "fit", str(train), "--out", str(tmp_path / "st"), "--shots", "3", "--steps", "3"]
    assert main(argv + ["--unlabeled", str(raw), "-p", "pseudo=0.6", "--no-progress"]) == 0
    assert FewShotTagger.load(tmp_path / "st").method_.params["pseudo"] == 0.6
    (tmp_path / "empty.txt").write_text("\n")
    notmodel = tmp_path / "notmodel"
    notmodel.mkdir()
    (notmodel / "config.json").write_text("{}")
    for argv in [
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--source", str(own)],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--source", str(tmp_path / "nope.conll")],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--encoder", str(notmodel)],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--method", "proto", "--crf"],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "-p", "colour=3"],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--unlabeled", str(tmp_path / "empty.txt")],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--unlabeled", str(tmp_path / "nope.txt")],
        ["tag", "fit", str(train), "--out", str(tmp_path / "x"), "--method", "proto", "--unlabeled", str(raw)],
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, (argv, err)
