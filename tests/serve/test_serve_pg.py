"""kshot serve on PostgreSQL: two replicas on one throwaway cluster (initdb/pg_ctl on a loopback port),
the second with two worker processes, see each other's examples and deletions; concurrent writers on
both lose nothing."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from serve_helpers import Postgres, Server, make_model

from kshot.serve.store import Store

pytest.importorskip("fastapi")
pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    work = tmp_path_factory.mktemp("serve-pg")
    pg = Postgres()
    try:
        model = make_model()
        store = Store(pg.url)
        key = store.create_key("write")
        store.engine.dispose()
        flags = ["--rate-limit", "0", "--max-examples-per-label", "20"]
        a = Server(model, pg.url, work, *flags)
        # both seed the same database at once; b has two worker processes
        b = Server(model, pg.url, work, *flags, "--workers", "2")
        try:
            yield a.wait(), b.wait(), key, pg
        finally:
            a.stop()
            b.stop()
    finally:
        pg.stop()


def wait_for(fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.2)
    return False


def top_label(c, text):
    r = c.post("/v1/predict", json={"texts": [text]})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]["label"]


def test_replicas_share_examples_and_deletions(replicas):
    a, b, key, _ = replicas
    with a.client(key) as ca, b.client(key) as cb:
        counts = {x["label"]: x["examples"] for x in cb.get("/v1/labels").json()["labels"]}
        assert counts == {"balance": 3, "card_arrival": 3, "close_account": 3}  # seeded once, not twice
        message = "the shop charged my card two times"
        assert top_label(cb, message) != "double_charge"
        r = ca.post(
            "/v1/examples",
            json=[
                {"text": "I was charged twice for one purchase", "label": "double_charge"},
                {"text": "two payments taken for the same order", "label": "double_charge"},
            ],
        )
        assert r.status_code == 201
        assert top_label(ca, message) == "double_charge"
        assert wait_for(lambda: top_label(cb, message) == "double_charge"), "replica b never saw a's examples"
        assert cb.delete("/v1/labels/double_charge").json()["examples"] == 2
        assert top_label(cb, message) != "double_charge"
        assert wait_for(lambda: top_label(ca, message) != "double_charge"), "replica a never saw b's deletion"


def test_writers_on_both_replicas_lose_nothing(replicas):
    a, b, key, _ = replicas
    acked, errors = [], []

    def writer(server, w):
        with server.client(key) as c:
            for i in range(5):
                item = {"text": f"replica writer {w} note {i}", "label": f"pg{w % 2}"}
                r = c.post("/v1/examples", json=item)
                (acked.append((r.json()["ids"][0], item)) if r.status_code == 201 else errors.append(r.text))

    threads = [threading.Thread(target=writer, args=((a, b)[w % 2], w)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len({i for i, _ in acked}) == 30
    for server in (a, b):
        with server.client(key) as c:
            stored = {e["id"]: e for e in c.get("/v1/examples", params={"limit": 1000}).json()["examples"]}
            assert all(stored[i]["text"] == item["text"] for i, item in acked)
            assert wait_for(lambda: c.get("/v1/health").json()["examples"] == 9 + 30)


def test_a_schema_1_database_is_migrated_and_tagged_on_postgresql(replicas):
    import numpy as np
    import sqlalchemy as sa

    pg = replicas[3]
    admin = sa.create_engine("postgresql+psycopg://" + pg.url.split("://", 1)[1], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE schema1"))
    admin.dispose()
    url = pg.url.rsplit("/", 1)[0] + "/schema1"
    old = Store(url)
    old.seed("old-encoder", np.ones((2, 4), np.float32), ["a", "b"])
    with old.engine.begin() as conn:  # make it what schema 1 wrote: no encoder column, no schema row
        conn.execute(sa.text("ALTER TABLE examples DROP COLUMN encoder"))
        conn.execute(sa.text("DELETE FROM state WHERE name = 'schema'"))
    old.engine.dispose()
    store = Store(url)
    assert store.get("schema") == "3" and store.encoders() == {"old-encoder": 2}
    store.engine.dispose()


def test_concurrent_writers_on_both_replicas_never_pass_the_per_label_cap(replicas):
    """12 writers on three worker processes add 36 examples to one label capped at 20: exactly 20 are
    stored (each add locks the version row, so no two writers count at once), the rest get 413."""
    a, b, key, _ = replicas
    codes, lock = [], threading.Lock()

    def writer(server, w):
        with server.client(key) as c:
            for i in range(3):
                r = c.post("/v1/examples", json={"text": f"race {w} {i}", "label": "race"})
                with lock:
                    codes.append(r.status_code)

    threads = [threading.Thread(target=writer, args=((a, b)[w % 2], w)) for w in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with a.client(key) as c:
        counts = {x["label"]: x["examples"] for x in c.get("/v1/labels").json()["labels"]}
        assert counts["race"] == 20 and codes.count(201) == 20 and codes.count(413) == 16, (counts, sorted(codes))
        assert c.delete("/v1/labels/race").json()["examples"] == 20
        r = c.delete("/v1/labels/a%00b")
        assert r.status_code == 422 and r.json()["error"]["field"] == "label"


def test_metrics_of_two_workers_are_summed(replicas):
    """b runs two worker processes: /metrics counts every request whichever worker answers the scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    _, b, key, _ = replicas

    def count():
        text = httpx.get(b.url + "/metrics", timeout=30).text
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "kshot_requests_total"
            and s.labels.get("route") == "/v1/labels"
            and s.labels.get("status") == "200"
        )

    before = count()
    for _ in range(12):  # a new connection each time: the kernel hands them to both workers
        r = httpx.get(b.url + "/v1/labels", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert r.status_code == 200
    assert [count() - before for _ in range(4)] == [12] * 4


def test_a_revoked_key_is_refused_by_every_replica_within_the_poll(replicas):
    a, b, _, pg = replicas
    store = Store(pg.url)
    key = store.create_key("read")
    for server in (a, b, b):
        assert httpx.get(server.url + "/v1/labels", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert store.revoke_key(key.split("_")[1])
    store.engine.dispose()
    time.sleep(1.0)  # --poll 0.3
    for server in (a, b, b, b):
        r = httpx.get(server.url + "/v1/labels", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401, r.text
