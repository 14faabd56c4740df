"""Access and limits: Bearer keys with roles (revocable, with an optional expiry), a per-key rate limit, a
per-address limit on failed authentications, request-size and capacity limits, Prometheus metrics."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, fields

from .store import ROLES, KeyRow, LimitError, Store, parse_key, verify_key


@dataclass
class Limits:
    max_body_bytes: int = 1_000_000
    max_texts: int = 64  # texts per predict request, examples per add request
    max_chars: int = 2000  # characters per text
    max_label_chars: int = 200
    max_examples_per_label: int = 2000
    max_labels: int = 1000  # labels in all
    max_examples: int = 100_000  # stored examples in all
    rate_per_s: float = 50.0  # requests per second per key (0: no limit)
    burst: int = 100
    auth_failures_per_s: float = 1.0  # failed authentications per second per client address ...
    auth_failures_burst: int = 20  # ... in bursts of up to this many, then 429
    max_queue: int = 256  # texts waiting for the encoder; past it: 503 with Retry-After
    max_wait: float = 1.0  # ... or past this many seconds of queued work at the encoder's speed
    max_inflight: int = 512  # requests in progress in one worker; past it: 503 with Retry-After
    timeout: float = 10.0  # seconds a request may wait for the encoder; then 503

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


class ApiError(Exception):
    """An HTTP error with a JSON body {"error": {"code", "message", "field"?, "limit"?}}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        limit: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.limit = status, code, message, field, limit
        self.headers = headers or {}

    def body(self) -> dict:
        err = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        if self.limit:
            err["limit"] = self.limit
        return {"error": err}


def from_limit(exc: LimitError) -> ApiError:
    return ApiError(exc.status, "limit_exceeded", str(exc), field=exc.field, limit=exc.limit)


def overloaded(message: str, retry_after: float, limit: str | None = None) -> ApiError:
    return ApiError(503, "overloaded", message, limit=limit, headers={"Retry-After": str(max(1, round(retry_after)))})


class Bucket:
    """Token buckets by name: ``rate`` per second, bursts up to ``burst``; at most ``size`` names kept."""

    def __init__(self, rate: float, burst: int, size: int = 10_000):
        self.rate, self.burst, self.size = rate, max(1, burst), size
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def _tokens(self, name: str, now: float) -> float:
        tokens, last = self.buckets.get(name, (float(self.burst), now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def take(self, name: str) -> float:
        """Take a token; returns 0, or the seconds until one is there (nothing taken)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self.lock:
            tokens = self._tokens(name, now)
            if tokens < 1:
                self.buckets[name] = (tokens, now)
                return (1 - tokens) / self.rate
            if len(self.buckets) >= self.size and name not in self.buckets:
                self._prune(now)
            self.buckets[name] = (tokens - 1, now)
            return 0.0

    def wait(self, name: str) -> float:
        """Seconds until ``name`` has a token again (0: it has one); takes nothing."""
        if self.rate <= 0 or name not in self.buckets:
            return 0.0
        with self.lock:
            tokens = self._tokens(name, time.monotonic())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [n for n, (t, last) in self.buckets.items() if t + (now - last) * self.rate >= self.burst]
        for n in full:
            del self.buckets[n]
        if len(self.buckets) >= self.size:  # all busy: forget the oldest half
            for n, _ in sorted(self.buckets.items(), key=lambda kv: kv[1][1])[: self.size // 2]:
                del self.buckets[n]


class RateLimiter:
    """A token bucket per key: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, max(1, burst)
        self.bucket = Bucket(rate, burst)

    def check(self, key_id: str) -> None:
        wait = self.bucket.take(key_id)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"this key passed the rate limit of {self.rate:g} requests "
                f"per second (bursts of {self.burst}); retry in {wait:.2f} s",
                limit="rate_per_s",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, field="Authorization", headers={"WWW-Authenticate": "Bearer"})


class Keys:
    """Checks Bearer keys against an in-memory copy of the key table, so that no request waits for the
    database: ``refresh`` (the poller calls it) reloads the table, which is how a revocation or an expiry
    set elsewhere reaches this worker within one poll interval. A well-formed key whose id is not in the
    copy (made a moment ago by another process) is looked up once, off the event loop; failed checks
    count against the client's address (``auth_failures_per_s``), and past that limit a failing address
    gets 429 without any lookup."""

    def __init__(self, store: Store, limits: Limits):
        self.store = store
        self.rows: dict[str, KeyRow] = {}
        self.lookups = 0  # lookups of unknown ids in flight (at most 4: a flood of made-up ids waits for none)
        self.failures = Bucket(limits.auth_failures_per_s, limits.auth_failures_burst)

    def refresh(self) -> None:
        self.rows = self.store.key_rows()

    def forget(self, key_id: str) -> None:
        self.rows.pop(key_id, None)

    async def check(self, header: str | None, address: str) -> tuple[str, str]:
        """(key id, role) for an ``Authorization`` header; ApiError 401 (or 429) otherwise."""
        if not header:
            raise _unauthorized(
                "send an API key as 'Authorization: Bearer KEY' (make one with `kshot serve keys create`)"
            )
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            self._failed(address)
            raise _unauthorized("the Authorization header must be 'Bearer KEY'")
        key_id = parse_key(key)
        row = self.rows.get(key_id) if key_id else None
        if row is None and key_id is not None and self.lookups < 4 and not self.failures.wait(address):
            self.lookups += 1
            try:
                row = (await asyncio.to_thread(self.store.key_rows, key_id)).get(key_id)
            finally:
                self.lookups -= 1
            if row is not None:
                self.rows[key_id] = row
        role = verify_key(key, row)
        if role is None:
            self._failed(address)
            raise _unauthorized("this API key is not valid (unknown, revoked or expired)")
        return key_id, role

    def _failed(self, address: str) -> None:
        wait = self.failures.take(address)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"too many failed authentications (a bad Authorization header) from {address}; retry in {wait:.1f} s",
                field="Authorization",
                limit="auth_failures_per_s",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )


def require(role: str, needed: str) -> None:
    if ROLES.index(role) < ROLES.index(needed):
        raise ApiError(403, "forbidden", f"this key has role {role!r}; this call needs role {needed!r} or higher")


# ---------------------------------------------------------------- metrics
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Prometheus metrics (``prometheus_client``). With ``PROMETHEUS_MULTIPROC_DIR`` set (``kshot serve
    --workers N`` sets it), every worker writes its values there and ``/metrics`` sums all workers', so
    a counter does not jump with the worker that answers the scrape."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "kshot_requests", "HTTP requests by method, route and status.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "kshot_request_duration_seconds", "Request latency.", ["route"], buckets=BUCKETS, registry=r
        )
        self.shed = Counter("kshot_shed", "Requests refused for capacity, by reason.", ["reason"], registry=r)
        self.batch = Histogram(
            "kshot_batch_texts", "Texts per encoder pass.", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )

        def gauge(name, text, mode="livemax"):
            return Gauge(name, text, registry=r, multiprocess_mode=mode)

        self.examples = gauge("kshot_examples", "Examples the served head holds.")
        self.labels = gauge("kshot_labels", "Labels the served head knows.")
        self.model_version = gauge("kshot_model_version", "Changes applied to the head since start.")
        self.database_version = gauge("kshot_database_version", "Database version the head was last reconciled with.")
        self.queue = gauge("kshot_queue_texts", "Texts waiting for the encoder.", "livesum")
        self.ready = gauge(
            "kshot_ready", "1 when the worker is ready (model loaded, batcher running, database answering).", "livemin"
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method if method in METHODS else "other", route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

    @staticmethod
    def process_exit(pid: int) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid)
