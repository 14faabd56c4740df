"""Load on `kshot serve`: throughput, latency, errors, nothing acknowledged lost; how soon an added
example changes predictions on the same replica and on another replica sharing PostgreSQL.

The model is the built-in demo set (8 intents x 5 examples, kshot/text/demo_data) fitted with the
packaged MiniLM encoder (logistic head). The server runs in its own process on 127.0.0.1 (SQLite, or
PostgreSQL with --pg); N client threads, one keep-alive connection each, send a fixed number of requests
(or stop at --time-cap): predictions of one short text each, and --add-fraction of added examples. Every
text is distinct (no cache helps). Afterwards every acknowledged example id must be in the database.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/serve/serve_load.py --clients 16 \
        --requests 4000 --time-cap 60 --pg

With --pg a throwaway PostgreSQL cluster is started (as in the tests) for the load and for the
two-replica visibility check.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks"), str(Path(__file__).resolve().parent)]

from serve_helpers import Postgres, Server  # noqa: E402  (the tests' loopback server and cluster)

from kshot.serve.store import Store  # noqa: E402
from kshot.text.demo import demo_data  # noqa: E402

WORDS = ["card", "payment", "refund", "account", "transfer", "balance", "app", "fee", "phone", "order"]


def request(conn, method, path, key, body=None):
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(
        method, path, body=payload, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    )
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"{}")


def load(server: Server, key: str, clients: int, total: int, time_cap: float, add_fraction: float) -> dict:
    counter, lock = iter(range(total)), threading.Lock()
    every = round(1 / add_fraction) if add_fraction > 0 else 0  # every `every`-th request adds an example
    lat = {"predict": [], "add": []}
    acked, errors, deadline = [], [], time.monotonic() + time_cap

    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            add = every > 0 and i % every == every - 1
            text = f"question {i} from client {c} about my {WORDS[i % len(WORDS)]} and {WORDS[(i * 7) % len(WORDS)]}"
            t = time.perf_counter()
            try:
                if add:
                    status, body = request(conn, "POST", "/v1/examples", key, {"text": text, "label": f"load_{i % 3}"})
                else:
                    status, body = request(conn, "POST", "/v1/predict", key, {"texts": [text]})
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                continue
            took = time.perf_counter() - t
            with lock:
                if status // 100 != 2:
                    errors.append(f"{status} {body}")
                elif add:
                    lat["add"].append(took)
                    acked.append(body["ids"][0])
                else:
                    lat["predict"].append(took)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")  # noqa: E731
    return {
        "clients": clients,
        "wall_s": round(wall, 2),
        "predictions": len(lat["predict"]),
        "adds": len(acked),
        "predictions_per_s": round(len(lat["predict"]) / wall, 1),
        "requests_per_s": round((len(lat["predict"]) + len(acked)) / wall, 1),
        "predict_ms": {f"p{int(p * 100)}": round(q(lat["predict"], p), 1) for p in (0.5, 0.95, 0.99)},
        "add_ms": {f"p{int(p * 100)}": round(q(lat["add"], p), 1) for p in (0.5, 0.95, 0.99)},
        "errors": len(errors),
        "first_errors": errors[:3],
        "acked_ids": acked,
    }


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time of a process (or of its thread ``tid``) so far (Linux /proc)."""
    stat = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_totals(server: Server) -> tuple[float, float]:
    """(texts, encoder passes) so far, from the server's kshot_batch_texts histogram."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    value = {
        line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("kshot_batch_texts_")
    }
    return value.get("kshot_batch_texts_sum", 0.0), value.get("kshot_batch_texts_count", 0.0)


def visible_after(writer: Server, reader: Server, key: str, label: str, poll: float = 0.02) -> float:
    """Seconds from sending two examples of a new intent to ``writer`` until ``reader`` predicts it."""
    probe = f"a question only {label} answers"
    examples = [{"text": f"this is about {label} number {i}", "label": label} for i in range(2)]
    wconn = http.client.HTTPConnection("127.0.0.1", writer.port, timeout=30)
    rconn = http.client.HTTPConnection("127.0.0.1", reader.port, timeout=30)
    t = time.perf_counter()
    status, _ = request(wconn, "POST", "/v1/examples", key, examples + [{"text": probe, "label": label}])
    assert status == 201
    while time.perf_counter() - t < 60:
        status, body = request(rconn, "POST", "/v1/predict", key, {"texts": [probe]})
        if status == 200 and body["predictions"][0]["label"] == label:
            return time.perf_counter() - t
        time.sleep(poll)
    return float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--time-cap", type=float, default=60.0)
    ap.add_argument("--add-fraction", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each server process")
    ap.add_argument("--window-ms", type=float, default=4.0)
    ap.add_argument("--quantize", choices=["int8", "none"], default="int8", help="the server's --quantize")
    ap.add_argument("--visibility-runs", type=int, default=5)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL (a throwaway cluster) and the replica check")
    ap.add_argument("--work", type=Path, default=Path("runs/serve_load"))
    ap.add_argument("--no-doc", action="store_true", help="do not write the row into docs/serve.md")
    args = ap.parse_args()

    from kshot.text.classifier import FewShotClassifier

    args.work.mkdir(parents=True, exist_ok=True)
    texts, labels, _, _ = demo_data()
    model = FewShotClassifier(method="logistic").fit(texts, labels).save(args.work / "model")
    pg = Postgres() if args.pg else None
    db = pg.url if pg else f"sqlite:///{(args.work / f'load-{time.time_ns()}.db').resolve()}"
    store = Store(db)
    key = store.create_key("admin")
    flags = [
        "--rate-limit",
        "0",
        "--workers",
        str(args.workers),
        "--batch-window-ms",
        str(args.window_ms),
        "--threads",
        str(args.threads),
        "--quantize",
        args.quantize,
    ]
    servers = [Server(model, db, args.work, *flags, threads=args.threads)]
    if pg:
        servers.append(Server(model, db, args.work, *flags, threads=args.threads))
    try:
        for s in servers:
            s.wait()
        # warm-up: a few requests so that first-call costs are not in the numbers
        load(servers[0], key, 4, 40, 30, 0.0)
        pid = servers[0].proc.pid
        cpu, main_cpu, client_cpu = cpu_seconds(pid), cpu_seconds(pid, pid), time.process_time()
        texts0, passes0 = batch_totals(servers[0])
        result = load(servers[0], key, args.clients, args.requests, args.time_cap, args.add_fraction)
        served = result["predictions"] + result["adds"]
        result["client_cpu_ms_per_request"] = round((time.process_time() - client_cpu) * 1000 / served, 2)
        if args.workers == 1:  # the workers are child processes: neither figure would cover them
            result["server_cpu_ms_per_request"] = round((cpu_seconds(pid) - cpu) * 1000 / served, 2)
            # the main thread runs the event loop (HTTP, JSON, auth, batching); the rest is the encoder
            result["server_main_thread_cpu_ms_per_request"] = round(
                (cpu_seconds(pid, pid) - main_cpu) * 1000 / served, 2
            )
            texts1, passes1 = batch_totals(servers[0])
            result["mean_texts_per_encoder_pass"] = round((texts1 - texts0) / max(passes1 - passes0, 1), 1)
        result["load_average_1min"] = os.getloadavg()[0]
        stored = {e["id"] for e in store.examples()}
        acked = result.pop("acked_ids")
        result["acked_missing_from_db"] = len(set(acked) - stored)
        result["db"] = "postgresql" if pg else "sqlite"
        result["server"] = {
            "quantize": args.quantize,
            "threads": args.threads,
            "window_ms": args.window_ms,
            "workers": args.workers,
        }
        same = [visible_after(servers[0], servers[0], key, f"same_{i}") for i in range(args.visibility_runs)]
        result["visible_same_replica_s"] = {"median": round(statistics.median(same), 3), "max": round(max(same), 3)}
        if pg:
            other = [visible_after(servers[0], servers[1], key, f"other_{i}") for i in range(args.visibility_runs)]
            result["visible_other_replica_s"] = {
                "median": round(statistics.median(other), 3),
                "max": round(max(other), 3),
            }
        print(json.dumps(result, indent=1))
        if not args.no_doc:
            from traffic import doc_row, when

            p = result["predict_ms"]
            doc_row(
                "Load",
                [
                    "run",
                    "command",
                    "db",
                    "quantize",
                    "predictions/s",
                    "predict p50 / p95 / p99 (ms)",
                    "add p50 / p99 (ms)",
                    "errors",
                    "acked missing",
                    "new example counts, same replica",
                ],
                when(),
                [
                    f"`serve_load.py --clients {args.clients} --requests {args.requests} --time-cap "
                    f"{args.time_cap:g}{' --pg' if pg else ''}`",
                    result["db"],
                    args.quantize,
                    str(result["predictions_per_s"]),
                    f"{p['p50']} / {p['p95']} / {p['p99']}",
                    f"{result['add_ms']['p50']} / {result['add_ms']['p99']}",
                    str(result["errors"]),
                    str(result["acked_missing_from_db"]),
                    f"{result['visible_same_replica_s']['median']} s",
                ],
            )
    finally:
        for s in servers:
            s.stop()
        if pg:
            pg.stop()


if __name__ == "__main__":
    main()
