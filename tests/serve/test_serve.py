"""kshot serve on SQLite: real HTTP on 127.0.0.1 against server processes started here.

One server (and one model directory) serves the whole module; the last tests SIGKILL it while clients
add examples and restart it on the same database."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path

import httpx
import pytest
from serve_helpers import Server, assert_error, make_model

from kshot.cli import main
from kshot.serve.store import Store

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

LIMITS = [
    "--max-texts",
    "16",
    "--max-chars",
    "300",
    "--max-examples-per-label",
    "40",
    "--max-body-bytes",
    "20000",
    "--rate-limit",
    "1000",
    "--burst",
    "1000",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("serve")
    db = f"sqlite:///{work / 'kshot.db'}"
    model = make_model()
    server = Server(model, db, work, *LIMITS)
    store = Store(db)
    keys = {role: store.create_key(role) for role in ("read", "write", "admin")}
    server.wait()
    yield {"work": work, "db": db, "model": model, "server": server, "keys": keys, "store": store}
    server.stop()


def client(env, role="write"):
    return env["server"].client(env["keys"][role])


def listed(server, key, **params) -> list[dict]:
    """Every stored example, page by page."""
    out, after = [], 0
    with server.client(key) as c:
        while after is not None:
            r = c.get("/v1/examples", params={**params, "after_id": after, "limit": 1000})
            assert r.status_code == 200, r.text
            out += r.json()["examples"]
            after = r.json()["next_after_id"]
    return out


def predict(c, *texts, **extra):
    r = c.post("/v1/predict", json={"texts": list(texts), **extra})
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def test_keys_create_prints_the_key_alone_on_its_last_line(env, capsys):
    assert main(["serve", "keys", "create", "--role", "read", "--db", env["db"]]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("ks_") and " " not in key
    with env["server"].client(key) as c:
        assert c.post("/v1/predict", json={"texts": ["where is my card"]}).status_code == 200
        assert_error(c.post("/v1/examples", json={"text": "a", "label": "b"}), 403)
    assert main(["serve", "keys", "create", "--role", "root", "--db", env["db"]]) == 2
    assert "root" in capsys.readouterr().err
    con = sqlite3.connect(env["work"] / "kshot.db")
    secret = key.split("_", 2)[2]
    assert all(secret not in (h + s) for s, h in con.execute("SELECT salt, hash FROM api_keys"))
    con.close()


def test_serve_refuses_a_database_of_another_encoder_and_a_non_model_dir(env, tmp_path, capsys):
    import numpy as np

    url = f"sqlite:///{tmp_path / 'other.db'}"
    Store(url).seed("some-other-encoder", np.zeros((1, 4), np.float32), ["x"])
    assert main(["serve", str(env["model"]), "--db", url, "--port", "1"]) == 2
    assert "some-other-encoder" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--db", url]) == 2
    assert "not a kshot model directory" in capsys.readouterr().err
    assert main(["serve", str(env["model"]), "--db", "mysql://nobody@127.0.0.1/x"]) == 2
    assert "--db" in capsys.readouterr().err


def test_predict_gives_label_score_top_k_and_rejection(env):
    with client(env, "read") as c:
        out = predict(c, "my card has still not arrived", "how much money do I have", top_k=2)
        assert [p["label"] for p in out] == ["card_arrival", "balance"]
        assert len(out[0]["top"]) == 2 and out[0]["top"][0]["label"] == "card_arrival"
        assert out[0]["score"] == out[0]["top"][0]["score"] and not out[0]["rejected"]
        rejected = predict(c, "my card has still not arrived", reject_below=1.0)[0]
        assert rejected["rejected"] and rejected["label"] == "oos"


def test_keys_no_key_401_wrong_role_403(env):
    with env["server"].client(None) as c:
        r = c.post("/v1/predict", json={"texts": ["hi"]})
        assert_error(r, 401, field="Authorization")
        assert r.headers["www-authenticate"] == "Bearer"
    with env["server"].client("ks_000000000000_nope") as c:
        assert_error(c.post("/v1/predict", json={"texts": ["hi"]}), 401)
    with env["server"].client(env["keys"]["read"] + "x") as c:
        assert_error(c.post("/v1/predict", json={"texts": ["hi"]}), 401)
    with client(env, "read") as c:
        assert_error(c.delete("/v1/labels/balance"), 403)
        assert_error(c.post("/v1/feedback", json={"text": "a", "label": "b"}), 403)
    with client(env, "write") as c:
        assert_error(c.post("/v1/export", json={}), 403)
        assert_error(c.post("/v1/keys", json={"role": "admin"}), 403)
    with client(env, "admin") as c:
        new = c.post("/v1/keys", json={"role": "read"}).json()["key"]
    with env["server"].client(new) as c:
        assert c.get("/v1/labels").status_code == 200


@pytest.mark.parametrize(
    "path,body,status,field",
    [
        ("/v1/predict", b"{not json", 400, "body"),
        ("/v1/predict", b"", 400, "body"),
        ("/v1/predict", b"[" * 5000 + b"]" * 5000, 400, "body"),
        ("/v1/predict", b'{"texts": ["\xff\xfe"]}', 400, "body"),
        ("/v1/predict", b'["a"]', 422, "body"),
        ("/v1/predict", b'{"texts": "one string"}', 422, "texts"),
        ("/v1/predict", b'{"texts": []}', 422, "texts"),
        ("/v1/predict", b'{"texts": ["ok", 3]}', 422, "texts[1]"),
        ("/v1/predict", b'{"texts": ["   "]}', 422, "texts[0]"),
        ("/v1/predict", b'{"texts": ["ok"], "reject_below": "high"}', 422, "reject_below"),
        ("/v1/predict", b'{"texts": ["ok"], "reject_below": 2}', 422, "reject_below"),
        ("/v1/predict", b'{"texts": ["ok"], "top_k": 0}', 422, "top_k"),
        ("/v1/examples", b'{"text": "a message", "label": ""}', 422, "label"),
        ("/v1/examples", b'{"text": "a message", "label": 7}', 422, "label"),
        ("/v1/examples", b'{"text": "", "label": "x"}', 422, "text"),
        ("/v1/examples", b'{"label": "x"}', 422, "text"),
        ("/v1/examples", b'[{"text": "fine", "label": "x"}, {"text": "fine", "label": null}]', 422, "[1].label"),
        ("/v1/examples", b'{"examples": []}', 422, "examples"),
        ("/v1/feedback", b'{"text": "fine", "label": ["x"]}', 422, "label"),
        # a lone surrogate is valid JSON but not text; NUL is refused by PostgreSQL: both 422 before any work
        ("/v1/predict", b'{"texts": ["ok", "bad \\ud800 text"]}', 422, "texts[1]"),
        ("/v1/predict", b'{"texts": ["nul \\u0000 inside"]}', 422, "texts[0]"),
        ("/v1/examples", b'{"text": "a message", "label": "x\\udfff"}', 422, "label"),
        ("/v1/examples", b'{"text": "a message", "label": "x\\u0000"}', 422, "label"),
        ("/v1/feedback", b'{"text": "\\ud83d", "label": "x"}', 422, "text"),
        ("/v1/predict", b'{"texts": ["ok"], "top_k": ' + b"7" * 5000 + b"}", 400, "body"),
        ("/v1/predict", b'{"texts": ["ok"], "top_k": 100000000000000000000}', 422, "top_k"),
        ("/v1/predict", b'{"texts": ["ok"], "reject_below": NaN}', 422, "reject_below"),
        ("/v1/predict", b'{"texts": ["ok"], "top_k": true}', 422, "top_k"),
        ("/v1/examples", b"[" + b'{"text": "t", "label": "x"},' * 20 + b'{"text": "t", "label": "x"}]', 413, "body"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(env, path, body, status, field):
    with client(env) as c:
        assert_error(c.post(path, content=body, headers={"Content-Type": "application/json"}), status, field=field)


def test_bad_ids_and_unknown_paths(env):
    with client(env) as c:
        assert_error(c.delete("/v1/examples/987654"), 404, field="id")
        assert_error(c.delete("/v1/examples/abc"), 422, field="example_id")
        assert_error(c.delete("/v1/labels/no-such-label"), 404, field="label")
        assert_error(c.get("/v1/nothing"), 404)
        assert_error(c.get("/v1/examples", params={"limit": 0}), 422, field="limit")
        assert_error(c.get("/v1/examples", params={"limit": 1001}), 422, field="limit")
        assert_error(c.get("/v1/examples", params={"after_id": 10**20}), 422, field="after_id")
        assert_error(c.get("/v1/examples", params={"after_id": "9" * 5000}), 422, field="after_id")
        assert_error(c.get("/v1/examples", params={"label": "a\x00b"}), 422, field="label")
        assert_error(c.delete(f"/v1/examples/{10**20}"), 422, field="example_id")
        assert_error(c.delete("/v1/examples/0"), 422, field="example_id")
        assert_error(c.delete("/v1/labels/a%00b"), 422, field="label")
        page = c.get("/v1/examples", params={"limit": 2, "after_id": 1}).json()["examples"]
        assert [e["id"] for e in page] == [2, 3] and page[0]["text"] is None
        assert_error(c.put("/v1/predict"), 405)


def test_limits_are_json_errors_naming_the_limit(env):
    with client(env) as c:
        assert_error(c.post("/v1/predict", json={"texts": ["a"] * 17}), 413, field="texts", limit="max_texts")
        assert_error(c.post("/v1/predict", json={"texts": ["a" * 301]}), 413, field="texts[0]", limit="max_chars")
        big = b'{"texts": ["' + b"a" * 30000 + b'"]}'
        assert_error(c.post("/v1/predict", content=big), 413, limit="max_body_bytes")
        ok = c.post("/v1/examples", json=[{"text": f"limit text {i}", "label": "limits"} for i in range(16)])
        assert ok.status_code == 201, ok.text
        ok = c.post("/v1/examples", json={"examples": [{"text": f"more {i}", "label": "limits"} for i in range(16)]})
        assert ok.status_code == 201, ok.text
        err = assert_error(
            c.post("/v1/examples", json=[{"text": f"x {i}", "label": "limits"} for i in range(9)]),
            413,
            limit="max_examples_per_label",
        )
        assert "limits" in err["message"]
        assert c.delete("/v1/labels/limits").json()["examples"] == 32


def test_a_new_intent_counts_from_the_next_prediction(env):
    message = "the app charged my card twice for one coffee"
    with client(env) as c:
        before = predict(c, message)[0]["label"]
        assert before != "double_charge"
        r = c.post(
            "/v1/examples",
            json=[
                {"text": "I was charged twice for the same purchase", "label": "double_charge"},
                {"text": "two payments were taken for one order", "label": "double_charge"},
            ],
        )
        assert r.status_code == 201 and len(r.json()["ids"]) == 2
        assert predict(c, message)[0]["label"] == "double_charge"
        counts = {x["label"]: x["examples"] for x in c.get("/v1/labels").json()["labels"]}
        assert counts == {"balance": 3, "card_arrival": 3, "close_account": 3, "double_charge": 2}
        fb = c.post("/v1/feedback", json={"text": message, "label": "double_charge", "predicted": before})
        assert fb.status_code == 201
        listed = c.get("/v1/examples", params={"label": "double_charge"}).json()["examples"]
        assert {e["text"] for e in listed} >= {message} and {e["source"] for e in listed} == {"api", "feedback"}
        assert c.delete(f"/v1/examples/{fb.json()['ids'][0]}").status_code == 200
        assert c.delete("/v1/labels/double_charge").json()["examples"] == 2
        assert predict(c, message)[0]["label"] != "double_charge"
        assert "double_charge" not in {x["label"] for x in c.get("/v1/labels").json()["labels"]}


def test_labels_with_slashes_and_spaces_can_be_deleted(env):
    from urllib.parse import quote

    with client(env) as c:
        label = "billing/refund request"
        assert c.post("/v1/examples", json={"text": "refund me for the double bill", "label": label}).status_code == 201
        assert label in {x["label"] for x in c.get("/v1/labels").json()["labels"]}
        assert c.delete(f"/v1/labels/{quote(label, safe='')}").json()["examples"] == 1


def test_concurrent_writers_lose_nothing(env):
    acked, errors = [], []

    def writer(w):
        with client(env) as c:
            for i in range(6):
                items = [{"text": f"writer {w} message {i} part {j}", "label": f"w{w % 3}"} for j in range(1 + i % 2)]
                r = c.post("/v1/examples", json=items if len(items) > 1 else items[0])
                (acked.extend(zip(r.json()["ids"], items)) if r.status_code == 201 else errors.append(r.text))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len({i for i, _ in acked}) == len(acked) == 6 * 9
    with client(env) as c:
        stored = {e["id"]: e for e in listed(env["server"], env["keys"]["write"])}
        for i, item in acked:
            assert stored[i]["text"] == item["text"] and stored[i]["label"] == item["label"]
        for label in ("w0", "w1", "w2"):
            assert c.delete(f"/v1/labels/{label}").status_code == 200


def test_deleting_a_label_while_predictions_run_never_gives_500(env):
    statuses, stop = [], threading.Event()

    def predictor():
        with client(env, "read") as c:
            for _ in range(40):
                if stop.is_set():
                    break
                r = c.post("/v1/predict", json={"texts": ["refund my double payment please"], "top_k": 4})
                statuses.append(r.status_code)
                assert "Traceback" not in r.text

    threads = [threading.Thread(target=predictor) for _ in range(3)]
    for t in threads:
        t.start()
    with client(env) as c:
        for round_ in range(4):
            r = c.post(
                "/v1/examples",
                json=[{"text": f"refund round {round_} payment {j}", "label": "refund"} for j in range(2)],
            )
            assert r.status_code == 201
            assert c.delete("/v1/labels/refund").status_code == 200
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert statuses and set(statuses) == {200}


def test_export_writes_a_model_directory_that_kshot_predict_loads(env, tmp_path, capsys):
    from kshot.text.classifier import FewShotClassifier

    with client(env) as c:
        c.post(
            "/v1/examples",
            json=[
                {"text": "I lost my phone and my banking app", "label": "lost_phone"},
                {"text": "my phone was stolen", "label": "lost_phone"},
            ],
        )
    with client(env, "admin") as c:
        r = c.post("/v1/export", json={"name": "snapshot"})
        assert r.status_code == 200, r.text
        path = Path(r.json()["path"])
        assert_error(c.post("/v1/export", json={"name": "snapshot"}), 409, field="name")
        assert_error(c.post("/v1/export", json={"name": "../escape"}), 422, field="name")
        assert_error(c.post("/v1/export", json={"name": "x\n"}), 422, field="name")
        assert_error(c.post("/v1/export", json={"name": 7}), 422, field="name")
    assert path.parent == env["work"] / "exports" and not list(path.parent.glob(".*part"))
    clf = FewShotClassifier.load(path)
    assert "lost_phone" in clf.classes_ and clf.predict(["someone stole my phone"])[0] == "lost_phone"
    serve = json.loads((path / "model.json").read_text())["serve"]  # int8 service, float32 head
    assert serve["served_quantize"] == "int8" and serve["head_fitted_on"] == "all-MiniLM-L6-v2#w4"
    (tmp_path / "in.csv").write_text("text\nsomeone stole my phone\n")
    assert main(["predict", str(path), str(tmp_path / "in.csv")]) == 0
    assert "lost_phone" in capsys.readouterr().out
    with client(env) as c:
        c.delete("/v1/labels/lost_phone")


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**kw) -> frozenset:
    return frozenset(kw.items())


def test_health_and_metrics(env):
    with env["server"].client(None) as c:
        health = c.get("/v1/health").json()
        assert health["status"] == "ok" and health["ready"] and health["labels"] == 3
        assert health["checks"] == {"model": True, "batcher": True, "database": True}
        with client(env, "read") as r:
            predict(r, "where is my card")
        got = samples(c.get("/metrics").text)
    assert got[("kshot_requests_total", labels(method="POST", route="/v1/predict", status="200"))] >= 1
    assert got[("kshot_request_duration_seconds_bucket", labels(route="/v1/predict", le="+Inf"))] >= 1
    assert got[("kshot_examples", frozenset())] == 9 and ("kshot_model_version", frozenset()) in got
    assert got[("kshot_batch_texts_count", frozenset())] >= 1 and got[("kshot_ready", frozenset())] == 1


def _chromium():
    for name in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.path.exists(name):
            pytest.skip(f"{name} is missing (.ci/run installs Debian's chromium and chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="kshot-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service), profile


def test_web_page_classifies_and_learns_in_a_browser(env):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, profile = _chromium()
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(env["server"].url + "/")
        driver.find_element(By.ID, "key").send_keys(env["keys"]["write"])
        driver.find_element(By.ID, "save-key").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#labels tr")) == 3)
        message = "my parcel from the shop never showed up"
        driver.find_element(By.ID, "text").send_keys(message)
        driver.find_element(By.ID, "classify").click()
        wait.until(lambda d: d.find_element(By.ID, "intent").text)
        assert driver.find_element(By.ID, "intent").text != "missing_parcel"
        assert len(driver.find_elements(By.CSS_SELECTOR, "#scores tr")) == 3
        driver.find_element(By.ID, "label").send_keys("missing_parcel")
        driver.find_element(By.ID, "add").click()
        wait.until(lambda d: "missing_parcel" in d.find_element(By.ID, "labels").text)
        driver.find_element(By.ID, "classify").click()
        wait.until(lambda d: d.find_element(By.ID, "intent").text == "missing_parcel")
        assert driver.find_element(By.ID, "status").text == ""
        # the key was never stored in the browser, and the page ran under its CSP without a violation
        assert driver.execute_script("return localStorage.length + sessionStorage.length") == 0
        driver.get(env["server"].url + "/docs")  # Swagger UI from the server's own files, under its CSP
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"))
        assert "/v1/predict" in driver.find_element(By.ID, "swagger-ui").text
        logs = [e["message"] for e in driver.get_log("browser")]
        assert not [m for m in logs if "Content Security Policy" in m or "Refused" in m], logs
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    with client(env) as c:
        assert c.delete("/v1/labels/missing_parcel").json()["examples"] == 1


# ---------------------------------------------------------------- hostile clients (issue 27)
def test_a_lone_surrogate_fails_only_its_own_request(env):
    """Texts with a lone surrogate among 16 concurrent clients: 422 for them, 200 for every other request
    (they used to fail the tokenizer inside a shared batch, 500 for the whole batch)."""
    codes, lock = {"good": [], "bad": []}, threading.Lock()

    def worker(w):
        with client(env, "read") as c:
            for i in range(6):
                bad = w % 4 == 0
                text = f"where is my card {w} {i}" + (" \ud800" if bad else "")
                r = c.post(
                    "/v1/predict",
                    content=json.dumps({"texts": [text]}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with lock:
                    codes["bad" if bad else "good"].append(r.status_code)
                if bad:
                    assert_error(r, 422, field="texts[0]")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert set(codes["good"]) == {200} and len(codes["good"]) == 72, codes
    assert set(codes["bad"]) == {422} and len(codes["bad"]) == 24


def test_listing_texts_needs_write_and_pages_record_the_key(env):
    with client(env, "read") as c:
        assert_error(c.get("/v1/examples"), 403)
        assert c.get("/v1/labels").status_code == 200
    with client(env) as c:
        items = [{"text": f"paging text {i}", "label": "paging"} for i in range(5)]
        ids = c.post("/v1/examples", json=items).json()["ids"]
        page = {"label": "paging", "limit": 3}
        first = c.get("/v1/examples", params=page).json()
        second = c.get("/v1/examples", params={**page, "after_id": first["next_after_id"]}).json()
        assert [e["id"] for e in first["examples"] + second["examples"]] == ids and second["next_after_id"] is None
        assert {e["key_id"] for e in first["examples"]} == {env["keys"]["write"].split("_")[1]}
        assert c.delete("/v1/labels/paging").json()["examples"] == 5


def test_examples_of_the_model_directory_need_admin_to_delete(env):
    seed = next(e for e in listed(env["server"], env["keys"]["write"]) if e["source"] == "model")
    with client(env) as c:
        assert "admin" in assert_error(c.delete(f"/v1/examples/{seed['id']}"), 403)["message"]
        assert "admin" in assert_error(c.delete(f"/v1/labels/{seed['label']}"), 403)["message"]
        counts = {x["label"]: x["examples"] for x in c.get("/v1/labels").json()["labels"]}
        assert counts[seed["label"]] == 3


def test_keys_are_listed_revoked_and_expire(env, capsys):
    import time

    with client(env, "admin") as admin:
        made = admin.post("/v1/keys", json={"role": "read"}).json()
        short = admin.post("/v1/keys", json={"role": "read", "expires_in": 1.5}).json()
        assert short["expires"] > made["id"] and made["expires"] is None if False else short["expires"]
        assert_error(admin.post("/v1/keys", json={"role": "read", "expires_in": -1}), 422, field="expires_in")
        assert_error(admin.post("/v1/keys", json={"role": "root"}), 422, field="role")
        listed_keys = {k["id"]: k for k in admin.get("/v1/keys").json()["keys"]}
        assert listed_keys[made["id"]]["role"] == "read" and "hash" not in listed_keys[made["id"]]
        with env["server"].client(made["key"]) as c, env["server"].client(short["key"]) as d:
            assert c.get("/v1/labels").status_code == 200 and d.get("/v1/labels").status_code == 200
            assert admin.delete(f"/v1/keys/{made['id']}").json() == {"revoked": made["id"]}
            assert_error(c.get("/v1/labels"), 401)  # at once on this worker
            assert_error(admin.delete(f"/v1/keys/{made['id']}"), 404)
            assert_error(admin.delete("/v1/keys/nothex"), 422, field="key_id")
            time.sleep(1.6)
            assert_error(d.get("/v1/labels"), 401)  # expired
    # the CLI: list shows them, revoke takes an id or the whole key; the server sees it within --poll
    assert main(["serve", "keys", "create", "--role", "write", "--db", env["db"], "--expires-in", "2d"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["serve", "keys", "list", "--db", env["db"]]) == 0
    table = capsys.readouterr().out
    assert f"{made['id']}" in table and "revoked" in table and "expired" in table and key.split("_")[1] in table
    with env["server"].client(key) as c:
        assert c.get("/v1/examples", params={"limit": 1}).status_code == 200
        assert main(["serve", "keys", "revoke", key, "--db", env["db"]]) == 0
        for _ in range(50):  # the poller (--poll 0.3) reloads the key table
            if c.get("/v1/labels").status_code == 401:
                break
            time.sleep(0.1)
        assert_error(c.get("/v1/labels"), 401)
    assert main(["serve", "keys", "revoke", "0123456789ab", "--db", env["db"]]) == 2
    assert main(["serve", "keys", "create", "--role", "read", "--db", env["db"], "--expires-in", "soon"]) == 2
    assert "--expires-in" in capsys.readouterr().err


def test_failed_authentications_are_limited_per_address(env):
    """Made-up keys: 401, then 429 with Retry-After once the address passed its burst; a good key from the
    same address still works."""
    statuses = []
    with env["server"].client("ks_0123456789ab_madeup") as bad:
        for _ in range(30):
            statuses.append(bad.post("/v1/predict", json={"texts": ["hi"]}))
    assert statuses[0].status_code == 401 and statuses[-1].status_code == 429
    err = assert_error(statuses[-1], 429, field="Authorization", limit="auth_failures_per_s")
    assert "failed authentications" in err["message"] and int(statuses[-1].headers["retry-after"]) >= 1
    with client(env, "read") as c:
        predict(c, "where is my card")


def test_unknown_methods_are_counted_as_other(env):
    with httpx.Client(base_url=env["server"].url) as c:
        for method in ("FOO1", "FOO2"):
            assert c.request(method, "/v1/predict").status_code == 405
        text = c.get("/metrics").text
    assert "FOO1" not in text and "FOO2" not in text
    assert samples(text)[("kshot_requests_total", labels(method="other", route="/v1/predict", status="405"))] >= 2


def test_page_and_docs_load_nothing_from_elsewhere(env):
    with httpx.Client(base_url=env["server"].url) as c:
        page = c.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert (
            "<script>" not in page.text
            and "<style>" not in page.text
            and "localStorage.setItem" not in c.get("/static/page.js").text
        )
        docs = c.get("/docs")
        assert docs.status_code == 200 and "script-src 'self'" in docs.headers["content-security-policy"]
        assert "http" not in docs.text.replace("http-equiv", "")  # no other origin named
        for src in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/static/docs.js"):
            assert src in docs.text and c.get(src).status_code == 200
        assert_error(c.get("/docs/assets/../../app.py"), 404)
        assert_error(c.get("/static/app.py"), 404)
        spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PredictRequest"}
    assert set(schemas["PredictRequest"]["properties"]) == {"texts", "reject_below", "top_k"}
    assert "ExampleIn" in schemas and "PredictResponse" in schemas and "KeyRequest" in schemas
    ok = spec["paths"]["/v1/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/PredictResponse"}


def test_the_database_password_is_never_printed(env, tmp_path, capsys):
    assert main(["serve", str(env["model"]), "--db", "postgresql://kshot:hunter2@127.0.0.1:1/kshot"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "***" in err and err.startswith("error:")
    assert main(["serve", "keys", "list", "--db", "postgresql://kshot:hunter2@127.0.0.1:1/kshot"]) == 2
    assert "hunter2" not in capsys.readouterr().err


def test_sigkill_while_adding_loses_no_acknowledged_example(env):
    """The server dies (SIGKILL) under writers; after a restart every acknowledged example is there and
    every stored row is whole. The restarted server then checks the rate limit.

    Each writer has its own label (the server allows 40 per label), and the kill comes once 12 examples
    are acknowledged, however fast the machine: the writers are still writing when the server dies."""
    acked, sent, bad, lock, enough, died = [], set(), [], threading.Lock(), threading.Event(), []

    def writer(w):
        with client(env) as c:
            for i in range(40):
                text = f"crash writer {w} example {i}"
                with lock:
                    sent.add(text)
                try:
                    r = c.post("/v1/examples", json={"text": text, "label": f"crash{w}"}, timeout=10)
                except Exception:  # noqa: BLE001  (the server is gone)
                    died.append(w)
                    return
                if r.status_code != 201:
                    bad.append(r.text)
                    return
                with lock:
                    acked.append((r.json()["ids"][0], text))
                    if len(acked) >= 12:
                        enough.set()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    assert enough.wait(120)
    env["server"].kill()
    for t in threads:
        t.join(timeout=60)
    assert acked and not bad and died, (len(acked), bad, died)
    server = Server(env["model"], env["db"], env["work"], "--rate-limit", "2", "--burst", "3").wait()
    try:
        with server.client(env["keys"]["read"]) as c:
            stored = {e["id"]: e for e in listed(server, env["keys"]["write"]) if e["label"].startswith("crash")}
            for i, text in acked:
                assert stored[i]["text"] == text
            assert set(e["text"] for e in stored.values()) <= sent
            assert c.get("/v1/health").json()["examples"] == 9 + len(stored)
            con = sqlite3.connect(env["work"] / "kshot.db")
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert {n for (n,) in con.execute("SELECT length(embedding) FROM examples")} == {384 * 4}
            con.close()
            codes = [c.post("/v1/predict", json={"texts": ["balance?"]}) for _ in range(6)]
            limited = [r for r in codes if r.status_code == 429]
            assert limited and codes[0].status_code == 200
            assert_error(limited[0], 429, limit="rate_per_s")
            assert int(limited[0].headers["retry-after"]) >= 1
    finally:
        server.stop()
