"""kshot serve when things go wrong inside: a slow database, a failing encoder pass or refit, a dead
batcher, a full queue, a slow export. Real HTTP on 127.0.0.1 against the app run by uvicorn in a thread
of this process (``InProcess``), so that a test can make the fault happen."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from serve_helpers import InProcess, assert_error, make_model

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from kshot.serve.store import Store  # noqa: E402

LIMITS = {"max_labels": 6, "max_examples": 40, "max_examples_per_label": 30, "rate_per_s": 0, "auth_failures_burst": 5}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    work = tmp_path_factory.mktemp("serve-faults")
    db = f"sqlite:///{work / 'kshot.db'}"
    keys = {role: Store(db).create_key(role) for role in ("read", "write", "admin")}
    server = InProcess(make_model(), db, work, LIMITS, poll=0.2, quantize="int8")
    server.keys = keys
    yield server
    server.stop()


def post_many(server, key, bodies, path="/v1/predict"):
    """POST each body from its own thread at once; the responses in order."""
    out = [None] * len(bodies)

    def send(i):
        with server.client(key) as c:
            out[i] = c.post(path, json=bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_a_failing_encoder_pass_fails_only_the_request_that_broke_it(srv, monkeypatch):
    m = srv.model
    forward = m._forward

    def fragile(texts):
        if any("POISON" in t for t in texts):
            raise RuntimeError("the tokenizer choked")
        return forward(texts)

    monkeypatch.setattr(m, "_forward", fragile)
    monkeypatch.setattr(m, "window", 0.3)  # the requests below share one batch
    bodies = [{"texts": [f"where is my card {i}"]} for i in range(6)] + [{"texts": ["POISON pill"]}]
    codes = [r.status_code for r in post_many(srv, srv.keys["read"], bodies)]
    assert codes == [200] * 6 + [500], codes


def test_a_slow_database_and_made_up_keys_do_not_freeze_the_worker(srv, monkeypatch):
    """Key lookups of unknown ids take 1 s each: 30 requests with made-up keys at once; health and a
    good key answer meanwhile, and the address is soon refused without lookups (429)."""
    store, rows = srv.store, srv.store.key_rows
    calls = []

    def slow(key_id=None):
        if key_id is not None:  # not the poller's reload of the whole table
            calls.append(key_id)
        time.sleep(1.0)
        return rows(key_id)

    monkeypatch.setattr(store, "key_rows", slow)
    done = []

    def bad(i):
        with srv.client(f"ks_{i:012x}_made-up-secret") as c:
            done.append(c.post("/v1/predict", json={"texts": ["hi"]}).status_code)

    threads = [threading.Thread(target=bad, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    with srv.client(None) as c:
        t0 = time.perf_counter()
        assert c.get("/v1/health").status_code == 200
        assert time.perf_counter() - t0 < 1.0
    with srv.client(srv.keys["read"]) as c:
        t0 = time.perf_counter()
        assert c.post("/v1/predict", json={"texts": ["where is my card"]}).status_code == 200
        assert time.perf_counter() - t0 < 1.0
    for t in threads:
        t.join(timeout=60)
    assert set(done) <= {401, 429} and 429 in done and len(calls) <= 4 + 5, (sorted(done), len(calls))


def test_a_dead_batcher_makes_the_worker_unready_and_requests_fail_fast(srv):
    m = srv.model
    batcher = m.tasks[0]
    srv.call(_cancel(batcher))
    try:
        with srv.client(None) as c:
            r = c.get("/v1/health")
            assert r.status_code == 503 and r.json()["checks"]["batcher"] is False and not r.json()["ready"]
        with srv.client(srv.keys["read"]) as c:
            t0 = time.perf_counter()
            err = assert_error(c.post("/v1/predict", json={"texts": ["where is my card"]}), 503)
            assert time.perf_counter() - t0 < 2 and "batcher" in err["message"]
    finally:
        m.tasks[0] = srv.call(_restart(m))
    with srv.client(None) as c:
        assert c.get("/v1/health").status_code == 200


async def _cancel(task):
    task.cancel()
    await asyncio.sleep(0)


async def _restart(m):
    return asyncio.get_running_loop().create_task(m.batcher())


def test_a_full_queue_sheds_with_503_and_retry_after_and_a_deadline_ends_a_wait(srv, monkeypatch):
    m = srv.model
    monkeypatch.setattr(m, "max_queue", 4)
    monkeypatch.setattr(m, "window", 0.25)
    responses = post_many(srv, srv.keys["read"], [{"texts": [f"card {i}", f"balance {i}"]} for i in range(8)])
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 503 in codes and set(codes) == {200, 503}, codes
    shed = next(r for r in responses if r.status_code == 503)
    assert_error(shed, 503, limit="max_queue")
    assert int(shed.headers["retry-after"]) >= 1
    monkeypatch.setattr(m, "max_queue", 256)
    forward = m._forward
    monkeypatch.setattr(m, "_forward", lambda texts: (time.sleep(1.0), forward(texts))[1])
    monkeypatch.setattr(m, "timeout", 0.3)
    with srv.client(srv.keys["read"]) as c:
        t0 = time.perf_counter()
        r = c.post("/v1/predict", json={"texts": ["where is my card"]})
        assert_error(r, 503, limit="timeout")
        assert time.perf_counter() - t0 < 0.9 and r.headers["retry-after"]
    time.sleep(1.0)  # let the slow pass finish before the next test


def test_a_failed_refit_after_the_commit_still_acknowledges_the_stored_example(srv, monkeypatch):
    from kshot.text.classifier import FewShotClassifier

    fit = FewShotClassifier.fit_embeddings

    def broken(self, *a, **k):
        raise RuntimeError("the solver ran out of memory")

    monkeypatch.setattr(FewShotClassifier, "fit_embeddings", broken)
    with srv.client(srv.keys["write"]) as c:
        r = c.post(
            "/v1/examples",
            json=[
                {"text": "I was charged twice for one coffee", "label": "double_charge"},
                {"text": "two payments for one order", "label": "double_charge"},
            ],
        )
        assert r.status_code == 201 and r.json()["applied"] is False, r.text
        ids = r.json()["ids"]
        monkeypatch.setattr(FewShotClassifier, "fit_embeddings", fit)
        deadline = time.monotonic() + 10  # the next poll rebuilds the head from what is stored
        while "double_charge" not in srv.model.clf.classes_ and time.monotonic() < deadline:
            time.sleep(0.1)
        assert set(ids) <= set(srv.model.ids) and "double_charge" in srv.model.clf.classes_
        assert c.delete("/v1/labels/double_charge").json()["examples"] == 2


def test_deleting_a_label_removes_its_examples_still_waiting_for_a_refit(srv):
    """An example committed but not yet published (pending) when its label is deleted never reaches the head."""
    m = srv.model
    x = m.clf.embed(["refund my order please"])
    ids, version = srv.store.add_examples([("refund my order please", "refund", x[0])], encoder=m.encoder)
    with m.pending_lock:  # what ServedModel.add does after the commit, before its refit ran
        m.pending.append(({ids[0]: ("refund", x[0])}, version))
    with srv.client(srv.keys["write"]) as c:
        assert c.delete("/v1/labels/refund").json()["examples"] == 1
    assert "refund" not in m.clf.classes_ and ids[0] not in m.ids


def test_an_export_does_not_hold_up_adds(srv, monkeypatch):
    m = srv.model
    fp32 = m._fp32
    monkeypatch.setattr(m, "_fp32", lambda clf, ids: (time.sleep(1.5), fp32(clf, ids))[1])
    exported = []
    t = threading.Thread(
        target=lambda: exported.append(srv.client(srv.keys["admin"]).post("/v1/export", json={"name": "slow"}))
    )
    t.start()
    time.sleep(0.3)
    with srv.client(srv.keys["write"]) as c:
        t0 = time.perf_counter()
        r = c.post("/v1/examples", json={"text": "my phone was stolen", "label": "lost_phone"})
        took = time.perf_counter() - t0
        assert r.status_code == 201 and took < 1.0, took
        t.join(timeout=60)
        assert exported[0].status_code == 200, exported[0].text
        assert c.delete("/v1/labels/lost_phone").status_code == 200


def test_caps_on_labels_and_examples_are_checked_in_the_add(srv):
    with srv.client(srv.keys["write"]) as c:
        ok = c.post("/v1/examples", json=[{"text": f"cap text {i}", "label": f"cap{i}"} for i in range(3)])
        assert ok.status_code == 201  # 3 + 3 = 6 labels, the cap
        err = assert_error(
            c.post("/v1/examples", json={"text": "one more", "label": "cap_new"}), 413, limit="max_labels"
        )
        assert "6" in err["message"]
        assert c.post("/v1/examples", json={"text": "an old label is fine", "label": "cap0"}).status_code == 201
        have = srv.model.store.label_counts()
        room = 40 - sum(have.values())
        many = [{"text": f"fill {i}", "label": "cap1"} for i in range(room + 1)]
        err = assert_error(c.post("/v1/examples", json=many), 413, limit="max_examples")
        assert "40" in err["message"]
        for i in range(3):
            assert c.delete(f"/v1/labels/cap{i}").status_code == 200


def test_500s_are_counted_and_health_stays_generic(srv, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    def broken():
        raise RuntimeError("connection to server at 10.1.2.3 failed: password authentication failed for kshot")

    monkeypatch.setattr(srv.store, "label_counts", broken)
    monkeypatch.setattr(srv.store, "version", broken)  # the poller fails too
    with srv.client(srv.keys["read"]) as c:
        for _ in range(2):
            assert_error(c.get("/v1/labels"), 500)
        time.sleep(0.5)
        monkeypatch.setattr(srv.model, "polled", time.monotonic() - 60)  # as if the database were away a minute
        health = c.get("/v1/health")
        assert health.status_code == 503 and health.json()["checks"]["database"] is False
        assert "password" not in health.text and "10.1.2.3" not in health.text
        text = c.get("/metrics").text
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert got[("kshot_requests_total", (("method", "GET"), ("route", "/v1/labels"), ("status", "500")))] == 2
    assert got[("kshot_ready", ())] == 0


def test_a_request_whose_client_hung_up_is_not_encoded(srv, monkeypatch):
    import socket

    m = srv.model
    forward, seen = m._forward, []

    def slow(texts):
        seen.extend(texts)
        time.sleep(0.8)
        return forward(texts)

    monkeypatch.setattr(m, "_forward", slow)
    first = threading.Thread(target=lambda: post_many(srv, srv.keys["read"], [{"texts": ["keeps the encoder busy"]}]))
    first.start()
    time.sleep(0.2)
    body = b'{"texts": ["nobody waits for this one"]}'
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {srv.keys['read']}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.2)
    first.join(timeout=30)
    time.sleep(0.3)
    assert "keeps the encoder busy" in seen and "nobody waits for this one" not in seen
