"""FewShotImageClassifier on small drawn photo folders: fit / predict / partial_fit / save / load, the feature
cache, scikit-learn conventions, the input forms and the bad-input errors. Images run at 64 pixels to keep
the network cheap (the classes differ in colour and shape, which 64 pixels keep)."""

import csv
import json

import numpy as np
import pytest
from photos import draw, make_folder
from PIL import Image

from kshot import KshotError
from kshot.images import features
from kshot.images.classifier import FewShotImageClassifier
from kshot.images.photos import expand, read_folder, read_labeled

SMALL = dict(image_size=64)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    return make_folder(root / "train", 3, seed=0), make_folder(root / "test", 3, seed=1)


@pytest.fixture(scope="module")
def fitted(photos):
    return FewShotImageClassifier(method="logistic", **SMALL).fit(photos[0])


def test_fit_predict_proba_and_classes_order(photos, fitted):
    paths, labels = read_folder(photos[1])
    assert fitted.classes_ == ["circle", "square", "triangle"]
    proba = fitted.predict_proba(paths)
    assert proba.shape == (9, 3) and np.allclose(proba.sum(1), 1)
    assert list(fitted.predict(paths)) == [fitted.classes_[i] for i in proba.argmax(1)]
    assert fitted.score(paths, labels) == 1.0
    assert all(p == "unknown" for p in fitted.predict(paths, reject_below=1.01))


def test_prototype_and_inputs_as_arrays_and_pil_images(photos):
    rng = np.random.default_rng(5)
    arrays = [np.asarray(draw(s, rng)) for s in ("circle", "square", "triangle") for _ in range(3)]
    labels = [s for s in ("circle", "square", "triangle") for _ in range(3)]
    clf = FewShotImageClassifier(method="prototype", **SMALL).fit(arrays, labels)
    paths, truth = read_folder(photos[1])
    assert clf.score(paths, truth) >= 8 / 9
    pil = [Image.open(p) for p in paths]
    assert np.allclose(clf.predict_proba(pil), clf.predict_proba(paths), atol=1e-5)


def test_partial_fit_adds_a_class_without_embedding_old_photos(photos, monkeypatch):
    from collections import OrderedDict

    monkeypatch.setattr(features, "_CACHE", OrderedDict())  # nothing embedded by the other tests
    train, test = photos
    paths, labels = read_folder(train)
    keep = [i for i, y in enumerate(labels) if y != "triangle"]
    clf = FewShotImageClassifier(method="logistic", **SMALL).fit([paths[i] for i in keep], [labels[i] for i in keep])
    seen = []
    real = features.ImageEncoder.forward
    monkeypatch.setattr(
        features.ImageEncoder, "forward", lambda self, crops: seen.append(len(crops)) or real(self, crops)
    )
    new = [p for p, y in zip(paths, labels) if y == "triangle"]
    for p in new:  # the cache is by content: a copy under another name is not embedded again either
        p.with_name("copy_" + p.name).write_bytes(p.read_bytes())
    clf.partial_fit(new, ["triangle"] * len(new))
    assert sum(seen) == len(new) and clf.classes_[-1] == "triangle"
    clf.partial_fit([p.with_name("copy_" + p.name) for p in new], ["triangle"] * len(new))
    assert sum(seen) == len(new)
    for p in new:
        p.with_name("copy_" + p.name).unlink()
    test_paths, truth = read_folder(test)
    assert clf.score(test_paths, truth) == 1.0


def test_save_load_roundtrip_and_kshot_load(tmp_path, photos, fitted):
    import kshot

    paths, _ = read_folder(photos[1])
    fitted.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    assert manifest["kind"] == "image-classifier" and manifest["weights_id"] == "imagenet"
    for loaded in (FewShotImageClassifier.load(tmp_path / "m"), kshot.load(tmp_path / "m")):
        assert loaded.classes_ == fitted.classes_
        assert np.allclose(loaded.predict_proba(paths), fitted.predict_proba(paths), atol=1e-6)


def test_finetune_trains_the_last_blocks_and_saves_them(tmp_path, photos):
    paths, labels = read_folder(photos[0])
    clf = FewShotImageClassifier(method="finetune", steps=3, tune_blocks=1, **SMALL).fit(paths, labels)
    assert clf.finetuned_ and clf.steps_run_ == 3 and "fine-tuned the last 1 blocks" in clf.recipe_
    base = FewShotImageClassifier(method="logistic", **SMALL).fit(paths, labels)
    assert not np.allclose(clf.embed(paths[:2])[0], base.embed(paths[:2])[0])  # other features, not the cached ones
    test_paths, _ = read_folder(photos[1])
    clf.save(tmp_path / "ft")
    loaded = FewShotImageClassifier.load(tmp_path / "ft")
    assert np.allclose(loaded.predict_proba(test_paths), clf.predict_proba(test_paths), atol=1e-5)


def test_auto_keeps_frozen_features_with_few_photos_or_a_small_budget(photos, monkeypatch):
    from kshot.images import classifier

    clf = FewShotImageClassifier(**SMALL).fit(photos[0])
    assert clf.method_ == "logistic" and "3 photo(s) in the smallest class" in clf.recipe_
    monkeypatch.setattr(classifier, "AUTO_MIN_SHOTS", 2)
    clf = FewShotImageClassifier(time_budget=0.5, **SMALL).fit(photos[0])
    assert clf.method_ == "logistic" and "fit in the budget" in clf.recipe_


def test_sklearn_clone_and_grid_search(photos):
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    clf = FewShotImageClassifier(method="logistic", C=3.0, **SMALL)
    assert clone(clf).get_params() == clf.get_params()
    paths, labels = read_folder(photos[0])
    grid = GridSearchCV(clf, {"C": [1.0, 10.0]}, cv=3).fit(np.array(paths, dtype=object), labels)
    assert grid.best_params_["C"] in (1.0, 10.0) and grid.best_score_ == 1.0


def test_parameter_errors_name_the_value():
    with pytest.raises(KshotError, match="steps=5 does not apply to method 'prototype'"):
        FewShotImageClassifier(method="prototype", steps=5).fit(["a.jpg", "b.jpg"], ["a", "b"])
    with pytest.raises(KshotError, match="unknown backbone 'resnet'"):
        FewShotImageClassifier(backbone="resnet").fit(["a.jpg", "b.jpg"], ["a", "b"])
    with pytest.raises(KshotError, match="unknown method 'svm'"):
        FewShotImageClassifier(method="svm").fit(["a.jpg", "b.jpg"], ["a", "b"])
    with pytest.raises(KshotError, match="not fitted yet"):
        FewShotImageClassifier().predict(["a.jpg"])


def test_folder_table_and_glob_inputs(tmp_path, photos):
    train = photos[0]
    paths, labels = read_folder(train)
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows([[str(p.relative_to(train.parent)), y] for p, y in zip(paths, labels)])
    (train.parent / "labels.jsonl").write_text(
        "".join(json.dumps({"path": str(p), "label": y}) + "\n" for p, y in zip(paths, labels))
    )
    (train.parent / "rel.csv").write_text((tmp_path / "labels.csv").read_text())
    for table in (train.parent / "rel.csv", train.parent / "labels.jsonl"):
        assert read_labeled(table) == (paths, labels)
    found, skipped = expand([str(train / "circle"), str(train / "s*" / "*.png")])
    assert found == sorted((train / "circle").iterdir()) + sorted((train / "square").glob("*.png")) and skipped == 0


def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "flat" / "a.jpg")
    with pytest.raises(KshotError, match=r"flat has no class sub-folders.*found only files: a.jpg"):
        read_folder(tmp_path / "flat")
    make_folder(tmp_path / "p", 1)
    (tmp_path / "p" / "empty").mkdir()
    with pytest.raises(KshotError, match=r"class folder .*empty holds no images"):
        read_folder(tmp_path / "p")
    (tmp_path / "p" / "empty").rmdir()
    (tmp_path / "p" / "circle" / "notes.txt").write_text("hi")
    with pytest.raises(KshotError, match=r"notes.txt is not an image file"):
        read_folder(tmp_path / "p")
    (tmp_path / "p" / "circle" / "notes.txt").unlink()
    (tmp_path / "p" / "circle" / ".DS_Store").write_text("ignored")
    assert len(read_folder(tmp_path / "p")[0]) == 3
    with pytest.raises(KshotError, match=r"label file .*missing.csv does not exist"):
        read_labeled(tmp_path / "missing.csv")
    (tmp_path / "p" / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(KshotError, match=r"broken.jpg: "):
        FewShotImageClassifier(method="prototype", **SMALL).fit(tmp_path / "p")
    with pytest.raises(KshotError, match="1 class"):
        FewShotImageClassifier(method="prototype", **SMALL).fit([np.zeros((9, 9))], ["a"])
