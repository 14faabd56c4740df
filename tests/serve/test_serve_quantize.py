"""kshot serve with an int8 encoder: stored embeddings carry the encoder that made them, are re-encoded
when the serving encoder changes, never mixed unknowingly; export writes a float32 model directory.

In-process (ServedModel over a SQLite file), no HTTP: the HTTP paths are in test_serve.py."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest
from serve_helpers import make_model

from kshot.cli import main
from kshot.core.errors import KshotError

pytest.importorskip("sqlalchemy")

from kshot.serve.model import ServedModel, fingerprint  # noqa: E402
from kshot.serve.store import Store  # noqa: E402
from kshot.text import FewShotClassifier, SentenceEncoder  # noqa: E402

ADDED = [("I was charged twice for one coffee", "double_charge"), ("two payments for the same order", "double_charge")]


def served(model, store, quantize):
    return ServedModel(model, store, quantize=quantize)


def rows(db_file) -> dict[int, tuple]:
    con = sqlite3.connect(db_file)
    out = {
        i: (text, encoder, np.frombuffer(blob, np.float32))
        for i, text, encoder, blob in con.execute("SELECT id, text, encoder, embedding FROM examples")
    }
    con.close()
    return out


def test_int8_encoder_is_close_to_float32_and_keyed_apart():
    fp32 = SentenceEncoder()
    int8 = fp32.quantized("int8")
    assert SentenceEncoder(quantize="int8").model is int8.model  # made once per process
    assert int8.key == f"{fp32.key}#int8" and int8.quantize == "int8" and fp32.quantize == "none"
    texts = ["where is my card", "what is my balance"]
    a, b = fp32.encode(texts), int8.encode(texts)
    cos = (a * b).sum(1)
    assert np.all(cos > 0.9) and np.all(cos < 0.99999)  # close, and not the float32 cache
    assert fp32.quantized("none") is fp32
    with pytest.raises(KshotError, match="int4"):
        fp32.quantized("int4")
    with pytest.raises(KshotError, match="inference only"):
        int8.trainable()


def test_embeddings_carry_their_encoder_and_are_reencoded_when_it_changes(tmp_path):
    model = make_model()
    db = tmp_path / "kshot.db"
    store = Store(f"sqlite:///{db}")
    base = fingerprint(model)
    m = served(model, store, "none")
    X = m.clf.embed([t for t, _ in ADDED])
    ids, _ = store.add_examples([(t, y, x) for (t, y), x in zip(ADDED, X)], encoder=m.encoder)
    assert m.encoder == base and {r[1] for r in rows(db).values()} == {base}

    q = served(model, store, "int8")  # restart with int8: texts re-encoded, stored
    assert q.encoder == f"{base}#int8"
    after = rows(db)
    want = q.clf.embed([t for t, _ in ADDED])
    for i, x in zip(ids, want):
        assert after[i][1] == q.encoder and np.allclose(after[i][2], x, atol=1e-5)
        assert np.allclose(q.rows[i], x, atol=1e-5)
    seeds = {i for i, r in after.items() if r[0] is None}
    assert len(seeds) == 9 and all(after[i][1] == base for i in seeds)  # no text: kept, and counted
    assert q.foreign == seeds

    # a replica still on float32 adds an example: the int8 one re-encodes it in memory, the row stays
    (new,), _ = store.add_examples(
        [("charged two times", "double_charge", m.clf.embed(["charged two times"])[0])], encoder=m.encoder
    )
    assert q.reconcile()
    assert np.allclose(q.rows[new], q.clf.embed(["charged two times"])[0], atol=1e-5)
    assert rows(db)[new][1] == base and q.clf.predict(["charged two times"])[0] == "double_charge"

    back = served(model, store, "none")  # and back to float32
    assert {r[1] for r in rows(db).values()} == {base} and not back.foreign
    assert np.allclose(back.rows[ids[0]], X[0], atol=1e-5)
    for s in (m, q, back):
        s.executor.shutdown()
        s.refitter.shutdown()


def test_export_of_an_int8_service_is_a_float32_model_directory(tmp_path):
    model = make_model()
    store = Store(f"sqlite:///{tmp_path / 'kshot.db'}")
    q = served(model, store, "int8")
    X = q.clf.embed([t for t, _ in ADDED])
    store.add_examples([(t, y, x) for (t, y), x in zip(ADDED, X)], encoder=q.encoder)
    q.reconcile()
    path = q._export(tmp_path / "exported")
    clf = FewShotClassifier.load(path)
    assert clf.encoder_.quantize == "none" and "double_charge" in clf.classes_
    fp32 = clf.encoder_.encode([t for t, _ in ADDED])
    held = clf.head_.X.numpy()
    for x in fp32:  # the head holds the float32 embeddings of the added texts, not the int8 ones
        assert np.abs(held - x).max(1).min() < 1e-5
    assert clf.predict(["I was charged twice for my coffee"])[0] == "double_charge"
    q.executor.shutdown()
    q.refitter.shutdown()


def test_a_schema_1_database_is_migrated_and_tagged(tmp_path):
    db = tmp_path / "old.db"
    Store(f"sqlite:///{db}").seed("old-encoder", np.ones((2, 4), np.float32), ["a", "b"])
    con = sqlite3.connect(db)  # make it what schema 1 wrote: no encoder column, no schema row
    con.execute("ALTER TABLE examples DROP COLUMN encoder")
    con.execute("DELETE FROM state WHERE name = 'schema'")
    con.commit()
    con.close()
    store = Store(f"sqlite:///{db}")
    assert store.get("schema") == "3" and store.encoders() == {"old-encoder": 2}


def test_cli_refuses_an_unknown_quantize(tmp_path, capsys):
    assert main(["serve", str(make_model()), "--db", f"sqlite:///{tmp_path / 'x.db'}", "--quantize", "int4"]) == 2
    err = capsys.readouterr().err
    assert "--quantize" in err and "int4" in err and "int8" in err


def test_an_int8_service_runs_on_the_cpu_whatever_device_the_model_was_fitted_on(tmp_path, monkeypatch):
    from kshot.text import classifier

    clf = FewShotClassifier.load(make_model())
    clf.device = "cuda:7"  # as if fitted on a GPU machine ...
    clf.save(tmp_path / "gpu-model")
    monkeypatch.setattr(classifier, "check_device", lambda device, name="device": device)  # ... and served on one
    q = served(tmp_path / "gpu-model", Store(f"sqlite:///{tmp_path / 'kshot.db'}"), "int8")
    assert q.clf.encoder_.quantize == "int8" and q.clf.device == "cpu" and q.fp32_encoder.device == "cpu"
    assert q.clf.predict(["I was charged twice for my coffee"])[0] in q.clf.classes_
    q.executor.shutdown()
    q.refitter.shutdown()


def test_a_schema_2_database_gets_key_expiry_revocation_and_writer_ids(tmp_path):
    db = tmp_path / "v2.db"
    store = Store(f"sqlite:///{db}")
    key = store.create_key("write")
    store.add_examples([("a text", "a", np.ones(4, np.float32))], encoder="e")
    store.engine.dispose()
    con = sqlite3.connect(db)  # what schema 2 wrote
    for table, column in (("api_keys", "expires"), ("api_keys", "revoked"), ("examples", "key_id")):
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("UPDATE state SET value = '2' WHERE name = 'schema'")
    con.commit()
    con.close()
    store = Store(f"sqlite:///{db}")
    assert store.get("schema") == "3" and store.check_key(key) == "write"
    assert store.examples()[0]["key_id"] is None
    assert store.revoke_key(key.split("_")[1]) and store.check_key(key) is None
    soon = store.create_key("read", expires=time.time() - 1)
    assert store.check_key(soon) is None and [k["role"] for k in store.list_keys()] == ["write", "read"]


def test_windows_are_part_of_what_stored_embeddings_depend_on(tmp_path):
    truncating = FewShotClassifier(method="logistic", windows=1).fit(["a card", "my balance"], ["c", "b"])
    windowed = FewShotClassifier(method="logistic").fit(["a card", "my balance"], ["c", "b"])
    assert fingerprint(truncating.save(tmp_path / "w1")) == "all-MiniLM-L6-v2"
    assert fingerprint(windowed.save(tmp_path / "w4")) == "all-MiniLM-L6-v2#w4"
    assert fingerprint(tmp_path / "w4", "int8") == "all-MiniLM-L6-v2#w4#int8"
    # the same int8 encoder, whichever way it is asked for: one cache key
    assert SentenceEncoder(windows=4, quantize="int8").key == SentenceEncoder(windows=4).quantized("int8").key
