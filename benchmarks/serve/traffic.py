"""What the serve benchmarks share: a small asyncio HTTP/1.1 client (raw bytes, so that it can send what
a hostile client sends, and cheap enough to offer a thousand requests a second from one core), the
normal client, percentiles, the server's memory, and the rows they write into docs/serve.md."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

WORDS = ["card", "payment", "refund", "account", "transfer", "balance", "app", "fee", "phone", "order"]


class Conn:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port: int):
        self.port, self.reader, self.writer = port, None, None

    async def open(self) -> "Conn":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def send(self, raw: bytes) -> tuple[int, dict, bytes]:
        """Send raw request bytes; (status, headers, body) of the response (status 0: the connection failed)."""
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more on a new one
            reused = self.writer is not None
            out = await self._send(raw)
            if out[0] or not reused:
                return out
        return out

    async def _send(self, raw: bytes) -> tuple[int, dict, bytes]:
        try:
            if self.writer is None:
                await self.open()
            self.writer.write(raw)
            await self.writer.drain()
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            status = int(line.split()[1])
            headers = {}
            while (h := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", 0))
            body = await self.reader.readexactly(n) if n else b""
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, headers, body
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            return 0, {}, b""


def request(
    method: str,
    path: str,
    key: str | None = None,
    body=None,
    raw_body: bytes | None = None,
    headers: dict | None = None,
) -> bytes:
    """The bytes of one request (``body``: JSON; ``raw_body``: sent as is)."""
    payload = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else b"")
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if payload or method in ("POST", "PUT"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class Normal:
    """The normal clients: ``clients`` connections, each sending a prediction of one distinct short text
    (every ``add_every``-th request adds an example instead) as soon as the last one was answered.
    Records latencies, statuses and acknowledged example ids."""

    def __init__(self, port: int, key: str, clients: int = 16, add_every: int = 20, tag: str = "n"):
        self.port, self.key, self.clients, self.add_every, self.tag = port, key, clients, add_every, tag
        self.counter = 0
        self.reset()

    def reset(self) -> None:
        self.latency: list[float] = []  # predictions answered 200
        self.done: list[float] = []  # completion times of the 2xx answers
        self.statuses: dict[int, int] = {}
        self.acked: list[int] = []

    async def run(self, seconds: float) -> None:
        stop = time.monotonic() + seconds
        await asyncio.gather(*(self._client(c, stop) for c in range(self.clients)))

    async def _client(self, c: int, stop: float) -> None:
        conn = Conn(self.port)
        while time.monotonic() < stop:
            i = self.counter = self.counter + 1
            add = self.add_every and i % self.add_every == 0
            text = f"{self.tag} question {i} from client {c} about my {WORDS[i % 10]} and {WORDS[(i * 7) % 10]}"
            raw = (
                request("POST", "/v1/examples", self.key, {"text": text, "label": f"load_{i % 3}"})
                if add
                else request("POST", "/v1/predict", self.key, {"texts": [text]})
            )
            t = time.perf_counter()
            status, headers, body = await conn.send(raw)
            took = time.perf_counter() - t
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status // 100 == 2:
                self.done.append(time.monotonic())
                if add:
                    self.acked += json.loads(body)["ids"]
                else:
                    self.latency.append(took)
            elif status in (429, 503):
                await asyncio.sleep(min(float(headers.get("retry-after", 1)), 1.0))
        conn.close()


def pct(values: list[float], p: float) -> float:
    """The p-th quantile in milliseconds (nearest rank); nan for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), MB."""
    total = 0
    pids = (
        [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        if Path(f"/proc/{pid}/task/{pid}/children").exists()
        else [pid]
    )
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def serve_model(work: Path) -> Path:
    """The demo model (8 intents x 5 examples, packaged MiniLM, logistic head), saved under ``work``."""
    from kshot.text.classifier import FewShotClassifier
    from kshot.text.demo import demo_data

    texts, labels, _, _ = demo_data()
    return FewShotClassifier(method="logistic").fit(texts, labels).save(work / "model")


def shared_args(ap, name: str) -> None:
    """The flags every serve benchmark has: --threads, --work, --no-doc."""
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    ap.add_argument("--work", type=Path, default=Path(f"runs/serve_{name}"))
    ap.add_argument("--no-doc", action="store_true", help="do not write the row into docs/serve.md")


def start_server(args, name: str):
    """The demo model served by ``kshot serve`` (no rate limit, --threads) on a fresh SQLite file under
    ``args.work``: (server, store), the server not yet waited for."""
    from serve_helpers import Server

    from kshot.serve.store import Store

    args.work.mkdir(parents=True, exist_ok=True)
    model = serve_model(args.work)
    db = f"sqlite:///{(args.work / f'{name}-{time.time_ns()}.db').resolve()}"
    server = Server(model, db, args.work, "--rate-limit", "0", "--threads", str(args.threads), threads=args.threads)
    return server, Store(db)


def doc_row(section: str, header: list[str], key: str, row: list[str]) -> None:
    """Insert or replace a row of a table in docs/serve.md (benchmarks/common.upsert_row)."""
    from common import doc_page, upsert_row

    upsert_row(section, header, key, row, doc_page("serve"))


def when() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + f", load {os.getloadavg()[0]:.1f}"
