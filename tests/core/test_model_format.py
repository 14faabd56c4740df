"""One saved-model format (kshot.core.model_format): a manifest + safetensors for every kind, kshot.load
for any of them, earlier layouts still load, foreign and newer manifests refused with one line."""

import json

import pytest
import torch
from ratings import synthetic

import kshot
from kshot.core.errors import KshotError
from kshot.core.model_format import FORMAT_VERSION, load_model, read_manifest, save_model
from kshot.recsys.protocol import make_fold
from kshot.recsys.recommender import Recommender


def test_save_model_writes_one_manifest_and_tensors(tmp_path):
    save_model(tmp_path / "m", "recommender", {"w": torch.arange(6.0)}, {"a": 1}, {"extra": [1, 2]})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]
    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    assert manifest["kind"] == "recommender" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["kshot_version"] == kshot.__version__ and manifest["params"] == {"a": 1}
    tensors, meta = load_model(tmp_path / "m", "recommender")
    assert torch.equal(tensors["w"], torch.arange(6.0)) and meta["extra"] == [1, 2]


def test_a_manifest_of_another_kind_or_a_newer_format_is_refused(tmp_path):
    save_model(tmp_path / "m", "tagger", {"w": torch.zeros(2)}, {})
    with pytest.raises(KshotError, match="holds an entity tagger.*not a recommender"):
        load_model(tmp_path / "m", "recommender")
    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    for change, message in [
        ({"format_version": FORMAT_VERSION + 1}, "upgrade kshot"),
        ({"kind": "hologram"}, "unknown kind 'hologram'"),
    ]:
        (tmp_path / "m" / "model.json").write_text(json.dumps({**manifest, **change}))
        with pytest.raises(KshotError, match=message) as err:
            kshot.load(tmp_path / "m")
        assert "\n" not in str(err.value)
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(KshotError, match="damaged"):
        read_manifest(tmp_path / "m")
    with pytest.raises(KshotError, match="not a kshot model directory"):
        kshot.load(tmp_path / "empty")


def test_kshot_load_returns_the_right_object_and_an_earlier_layout_still_loads(tmp_path):
    rec = Recommender("popularity").fit(make_fold(synthetic(), 0, n_folds=4, seed=3).train)
    rec.save(tmp_path / "new")
    loaded = kshot.load(tmp_path / "new")
    assert isinstance(loaded, Recommender)
    assert [r["item"] for r in loaded.recommend({"3": 5.0}, k=5)] == [r["item"] for r in rec.recommend({"3": 5.0}, k=5)]
    # the layout of kshot before the one format: model.json with "format": "kshot.recsys/1", no kind
    old = tmp_path / "old"
    rec.save(old)
    meta = json.loads((old / "model.json").read_text())
    legacy = {k: v for k, v in meta.items() if k not in ("kind", "format_version", "files")}
    (old / "model.json").write_text(json.dumps({**legacy, "format": "kshot.recsys/1"}))
    assert read_manifest(old)[1]["kind"] == "recommender"
    assert isinstance(kshot.load(old), Recommender)
