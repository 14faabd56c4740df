"""Overload on `kshot serve`: offered 4x the rate it sustains for 30 s, it sheds with 503/429 and
Retry-After, its memory stays bounded, and it is back to full throughput within 5 s after.

The server runs in its own process on 127.0.0.1 (SQLite, int8 encoder, the demo model). Three phases:

1. sustainable rate: 16 normal clients (closed loop, as in serve_abuse.py) for --measure-s seconds give R,
   the predictions per second the server sustains;
2. overload: an open-loop sender offers --factor x R prediction requests per second for --overload-s
   seconds, each on a free connection (new ones opened as needed, at most --max-conns), whatever the
   answers; every 503/429 must carry Retry-After (the sender does not honour it: a hostile overload);
   the server's resident memory (with its workers) is sampled every 0.25 s;
3. recovery: at once the 16 normal clients again for --recover-s seconds; recovery time = the end of
   the first 1-s window that holds at least 90 % of R answered predictions (on a machine shared with
   other jobs the later windows swing with their load; the per-second counts are printed).

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/serve/serve_overload.py --factor 4 --overload-s 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from traffic import WORDS, Conn, Normal, doc_row, pct, request, rss_mb, shared_args, start_server, when


async def open_loop(port: int, key: str, rate: float, seconds: float, max_conns: int, pid: int) -> dict:
    statuses: dict[int, int] = {}
    latency, missing_retry, rss, free = [], 0, [], []
    skipped = 0

    async def one(i: int):
        nonlocal missing_retry
        conn = free.pop() if free else Conn(port)
        if conn not in all_conns:
            all_conns.add(conn)
        text = f"overload {i} about my {WORDS[i % 10]} and {WORDS[(i * 3) % 10]}"
        t = time.perf_counter()
        status, headers, _ = await conn.send(request("POST", "/v1/predict", key, {"texts": [text]}))
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            latency.append(time.perf_counter() - t)
        elif status in (429, 503) and "retry-after" not in headers:
            missing_retry += 1
        free.append(conn)

    async def sample():
        while True:
            rss.append(rss_mb(pid))
            await asyncio.sleep(0.25)

    all_conns: set = set()
    sampler = asyncio.create_task(sample())
    start, tasks, i = time.monotonic(), set(), 0
    while time.monotonic() - start < seconds:
        if free or len(all_conns) < max_conns:
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            skipped += 1  # every connection is waiting: the sender cannot offer more
        i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    sampler.cancel()
    for c in all_conns:
        c.close()
    return {
        "offered": i,
        "not_sent_all_connections_busy": skipped,
        "statuses": dict(sorted(statuses.items())),
        "shed_without_retry_after": missing_retry,
        "connections": len(all_conns),
        "p50_ms_of_200": round(pct(latency, 0.5), 1),
        "p99_ms_of_200": round(pct(latency, 0.99), 1),
        "rss_mb_max": round(max(rss), 1),
        "rss_mb_last": round(rss[-1], 1),
    }


def recovery_time(done: list[float], start: float, rate: float, seconds: float) -> float:
    """Seconds after ``start`` to the end of the first 1-s window with >= 90 % of ``rate`` completions."""
    windows = [sum(start + w <= t < start + w + 1 for t in done) for w in range(int(seconds))]
    return next((w + 1.0 for w, n in enumerate(windows) if n >= 0.9 * rate), float("inf"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--measure-s", type=float, default=15.0)
    ap.add_argument("--overload-s", type=float, default=30.0)
    ap.add_argument("--recover-s", type=float, default=15.0)
    ap.add_argument("--max-conns", type=int, default=1000)
    shared_args(ap, "overload")
    args = ap.parse_args()

    server, store = start_server(args, "overload")
    key = store.create_key("write")
    try:
        server.wait()
        pid = server.proc.pid
        asyncio.run(Normal(server.port, key, 4, add_every=0, tag="warm").run(3))
        normal = Normal(server.port, key, 16, add_every=0)
        asyncio.run(normal.run(args.measure_s))
        rate = len(normal.latency) / args.measure_s
        rss_before = rss_mb(pid)
        over = asyncio.run(open_loop(server.port, key, args.factor * rate, args.overload_s, args.max_conns, pid))
        after = Normal(server.port, key, 16, add_every=0, tag="after")
        start = time.monotonic()
        asyncio.run(after.run(args.recover_s))
        back = recovery_time(after.done, start, rate, args.recover_s)
        windows = [sum(start + w <= t < start + w + 1 for t in after.done) for w in range(int(args.recover_s))]
        rss_after = rss_mb(pid)
        alive = server.proc.poll() is None
    finally:
        server.stop()
    result = {
        "when": when(),
        "sustained_predictions_per_s": round(rate, 1),
        "offered_per_s": round(args.factor * rate, 1),
        "overload_s": args.overload_s,
        "overload": over,
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_after": round(rss_after, 1),
        "recovered_after_s": back,
        "after_predictions_per_s": round(len(after.latency) / args.recover_s, 1),
        "after_per_second": windows,
        "after_p99_ms": round(pct(after.latency, 0.99), 1),
        "server_alive": alive,
    }
    print(json.dumps(result, indent=1))
    shed = sum(n for s, n in over["statuses"].items() if s in (429, 503))
    served = over["statuses"].get(200, 0)
    other = sum(n for s, n in over["statuses"].items() if s not in (200, 429, 503))
    if not args.no_doc:
        doc_row(
            "Overload",
            [
                "run",
                "command",
                "sustained pred/s (R)",
                "offered /s",
                "200 / shed 503+429 / other",
                "shed without Retry-After",
                "RSS MB before / max / after",
                "full throughput again after",
            ],
            when(),
            [
                f"`serve_overload.py --factor {args.factor:g} --overload-s {args.overload_s:g}`",
                f"{rate:.0f}",
                f"{args.factor * rate:.0f}",
                f"{served} / {shed} / {other}",
                str(over["shed_without_retry_after"]),
                f"{rss_before:.0f} / {over['rss_mb_max']:.0f} / {rss_after:.0f}",
                f"{back:g} s",
            ],
        )


if __name__ == "__main__":
    main()
