"""Hostile traffic mixed into a normal load on `kshot serve`: no 5xx, nothing acknowledged lost, and the
normal clients' p99 within 1.5x of the same load without the abuse, in the same run.

The server runs in its own process on 127.0.0.1 (SQLite, int8 encoder, the demo model). 16 normal
clients (one keep-alive connection each) send predictions of one distinct text, and every 20th request
adds an example. The run alternates phases of --phase-s seconds: "clean" (the normal clients alone) and
"abuse" (the same clients, plus a second process sending --abuse-rate hostile requests per second, the
cases below in turn). At the end every acknowledged example id must be in the database.

Hostile cases: made-up and malformed keys, no key, a lone surrogate in a text and in a label, NUL in a
text and in a label, a text over --max-chars, a body over --max-body-bytes (by Content-Length, and
streamed chunked without one), invalid JSON, JSON nested 5,000 deep, a 5,000-digit integer, top_k
10**20, texts that are not a list, too many texts, a read key listing texts, a write key deleting an
example of the model directory, ids and after_id of 10**20, made-up HTTP methods, unknown paths.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/serve/serve_abuse.py --phase-s 15 --rounds 2 --abuse-rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import secrets
import time

from traffic import Conn, Normal, doc_row, pct, request, shared_args, start_server, when

MAX_CHARS, MAX_BODY = 2000, 1_000_000  # the server's defaults


def cases(read: str, write: str, seed_id: int) -> list[tuple[str, bytes, int]]:
    """(name, raw request, weight) of each hostile request."""
    big = b"7" * 5000
    out = [
        (
            "made-up key",
            request("POST", "/v1/predict", f"ks_{secrets.token_hex(6)}_{secrets.token_urlsafe(8)}", {"texts": ["hi"]}),
            3,
        ),
        ("malformed key", request("POST", "/v1/predict", "garbage", {"texts": ["hi"]}), 1),
        ("no key", request("POST", "/v1/predict", None, {"texts": ["hi"]}), 1),
        ("surrogate text", request("POST", "/v1/predict", read, raw_body=b'{"texts": ["my card \\ud800"]}'), 3),
        (
            "surrogate label",
            request("POST", "/v1/examples", write, raw_body=b'{"text": "a text", "label": "x\\udfff"}'),
            1,
        ),
        ("NUL text", request("POST", "/v1/predict", read, raw_body=b'{"texts": ["nul \\u0000 here"]}'), 1),
        ("NUL label", request("POST", "/v1/examples", write, raw_body=b'{"text": "a", "label": "a\\u0000"}'), 1),
        ("oversized text", request("POST", "/v1/predict", read, {"texts": ["word " * (MAX_CHARS // 5 + 1)]}), 2),
        ("invalid JSON", request("POST", "/v1/predict", read, raw_body=b'{"texts": [ nope'), 1),
        ("deep JSON", request("POST", "/v1/predict", read, raw_body=b"[" * 5000 + b"]" * 5000), 1),
        (
            "5000-digit integer",
            request("POST", "/v1/predict", read, raw_body=b'{"texts": ["a"], "top_k": ' + big + b"}"),
            1,
        ),
        ("top_k 10**20", request("POST", "/v1/predict", read, {"texts": ["a"], "top_k": 10**20}), 1),
        ("texts not a list", request("POST", "/v1/predict", read, {"texts": "a"}), 1),
        ("too many texts", request("POST", "/v1/predict", read, {"texts": ["a"] * 65}), 1),
        ("read key lists texts", request("GET", "/v1/examples", read), 1),
        ("write key deletes a seed", request("DELETE", f"/v1/examples/{seed_id}", write), 1),
        ("id 10**20", request("DELETE", f"/v1/examples/{10**20}", write), 1),
        ("after_id 10**20", request("GET", f"/v1/examples?after_id={10**20}", write), 1),
        ("made-up method", request("FOO" + secrets.token_hex(2).upper(), "/v1/predict", read), 1),
        ("unknown path", request("GET", f"/v1/{secrets.token_hex(4)}", read), 1),
    ]
    return out


async def abuse(port: int, read: str, write: str, seed_id: int, rate: float, seconds: float) -> dict:
    """Send hostile requests at ``rate`` per second for ``seconds``; {case: {status: count}}."""
    table = cases(read, write, seed_id)
    plan = [c for c in table for _ in range(c[2])]
    plan += [("oversized body (Content-Length)", b"", 1), ("oversized body (chunked)", b"", 1)]
    seen: dict[str, dict[int, int]] = {}
    pool = [Conn(port) for _ in range(8)]
    free = list(pool)

    async def one(name: str, raw: bytes):
        conn = free.pop() if free else Conn(port)
        if name == "oversized body (Content-Length)":  # the headers alone: the server refuses on them
            raw = (
                f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {read}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {MAX_BODY * 2}\r\n\r\n"
            ).encode()
        elif name == "oversized body (chunked)":
            chunk = b"x" * 65536
            body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(MAX_BODY // len(chunk) + 2))
            raw = (
                (
                    f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {read}\r\n"
                    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                ).encode()
                + body
                + b"0\r\n\r\n"
            )
        elif name in ("made-up key", "made-up method"):  # a new one each time
            raw = {n: r for n, r, _ in cases(read, write, seed_id)}[name]
        status, _, _ = await conn.send(raw)
        if name.startswith("oversized body"):
            conn.close()  # the server did not read the rest of the body
        seen.setdefault(name, {})
        seen[name][status] = seen[name].get(status, 0) + 1
        if conn in pool:
            free.append(conn)  # reopened on its next use if it was closed
        else:
            conn.close()

    start, tasks, i = time.monotonic(), [], 0
    while time.monotonic() - start < seconds:
        name, raw, _ = plan[i % len(plan)]
        tasks.append(asyncio.create_task(one(name, raw)))
        i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    for c in pool:
        c.close()
    return seen


def abuse_process(port, read, write, seed_id, rate, seconds, out) -> None:
    out.put(asyncio.run(abuse(port, read, write, seed_id, rate, seconds)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--phase-s", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2, help="clean+abuse pairs")
    ap.add_argument("--abuse-rate", type=float, default=50.0, help="hostile requests per second")
    shared_args(ap, "abuse")
    args = ap.parse_args()

    server, store = start_server(args, "abuse")
    key, read, write = store.create_key("write"), store.create_key("read"), store.create_key("write")
    seed_id = 1
    phases = {"clean": Normal(0, key, args.clients), "abuse": Normal(0, key, args.clients)}
    hostile: dict[str, dict[int, int]] = {}
    try:
        server.wait()
        for n in phases.values():
            n.port = server.port
        asyncio.run(Normal(server.port, key, 4, add_every=0, tag="warm").run(3))
        for _ in range(args.rounds):
            asyncio.run(phases["clean"].run(args.phase_s))
            out = mp.Queue()
            p = mp.Process(
                target=abuse_process, args=(server.port, read, write, seed_id, args.abuse_rate, args.phase_s, out)
            )
            p.start()
            asyncio.run(phases["abuse"].run(args.phase_s))
            for name, counts in out.get(timeout=120).items():
                for status, n in counts.items():
                    hostile.setdefault(name, {})
                    hostile[name][status] = hostile[name].get(status, 0) + n
            p.join(timeout=60)
        stored = {e["id"] for e in store.examples()}
    finally:
        server.stop()
    acked = phases["clean"].acked + phases["abuse"].acked
    fives = sum(n for ph in phases.values() for s, n in ph.statuses.items() if s >= 500 or s == 0) + sum(
        n for c in hostile.values() for s, n in c.items() if s >= 500 or s == 0
    )
    seconds = args.rounds * args.phase_s
    result = {
        "when": when(),
        "clients": args.clients,
        "phase_s": args.phase_s,
        "rounds": args.rounds,
        "abuse_rate_per_s": args.abuse_rate,
        "hostile_sent": sum(sum(c.values()) for c in hostile.values()),
        "hostile_statuses": {k: dict(sorted(v.items())) for k, v in sorted(hostile.items())},
        "5xx_or_dropped": fives,
        "acked": len(acked),
        "acked_missing_from_db": len(set(acked) - stored),
    }
    for name, ph in phases.items():
        result[name] = {
            "predictions_per_s": round(len(ph.latency) / seconds, 1),
            "statuses": dict(sorted(ph.statuses.items())),
            **{f"p{int(q * 100)}_ms": round(pct(ph.latency, q), 1) for q in (0.5, 0.95, 0.99)},
        }
    result["p99_ratio"] = round(result["abuse"]["p99_ms"] / result["clean"]["p99_ms"], 2)
    print(json.dumps(result, indent=1))
    if not args.no_doc:
        clean, hostile_phase = result["clean"], result["abuse"]
        doc_row(
            "Hostile traffic",
            [
                "run",
                "command",
                "hostile req/s (sent)",
                "5xx or dropped",
                "acked lost",
                "clean: pred/s, p50 / p99 ms",
                "abuse: pred/s, p50 / p99 ms",
                "p99 ratio (target <= 1.5)",
            ],
            when(),
            [
                f"`serve_abuse.py --phase-s {args.phase_s:g} --rounds {args.rounds} --abuse-rate {args.abuse_rate:g}`",
                f"{args.abuse_rate:g} ({result['hostile_sent']})",
                str(fives),
                str(result["acked_missing_from_db"]),
                f"{clean['predictions_per_s']}, {clean['p50_ms']} / {clean['p99_ms']}",
                f"{hostile_phase['predictions_per_s']}, {hostile_phase['p50_ms']} / {hostile_phase['p99_ms']}",
                str(result["p99_ratio"]),
            ],
        )


if __name__ == "__main__":
    main()
