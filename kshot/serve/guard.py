"""Access and limits: Bearer keys with roles, a per-key rate limit, request-size limits, metrics."""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, fields

from .store import ROLES, LimitError, Store


@dataclass
class Limits:
    max_body_bytes: int = 1_000_000
    max_texts: int = 64                 # texts per predict request, examples per add request
    max_chars: int = 2000               # characters per text
    max_label_chars: int = 200
    max_examples_per_label: int = 2000
    rate_per_s: float = 50.0            # requests per second per key (0: no limit)
    burst: int = 100

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


class ApiError(Exception):
    """An HTTP error with a JSON body {"error": {"code", "message", "field"?, "limit"?}}."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, limit: str | None = None,
                 headers: dict | None = None):
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


class Keys:
    """Checks Bearer keys against the store, remembering good ones for ``ttl`` seconds."""

    def __init__(self, store: Store, ttl: float = 5.0):
        self.store, self.ttl = store, ttl
        self.cache: dict[str, tuple[str, float]] = {}

    def role(self, header: str | None) -> tuple[str, str]:
        """(key id, role) for an ``Authorization`` header; ApiError 401 otherwise."""
        if not header:
            raise ApiError(401, "unauthorized", "send an API key as 'Authorization: Bearer KEY' "
                           "(make one with `kshot serve keys create`)", field="Authorization",
                           headers={"WWW-Authenticate": "Bearer"})
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer KEY'",
                           field="Authorization", headers={"WWW-Authenticate": "Bearer"})
        now = time.monotonic()
        hit = self.cache.get(key)
        if hit and hit[1] > now:
            return key.split("_")[1], hit[0]
        role = self.store.check_key(key)
        if role is None:
            raise ApiError(401, "unauthorized", "this API key is not valid", field="Authorization",
                           headers={"WWW-Authenticate": "Bearer"})
        if len(self.cache) > 10_000:
            self.cache.clear()
        self.cache[key] = (role, now + self.ttl)
        return key.split("_")[1], role


def require(role: str, needed: str) -> None:
    if ROLES.index(role) < ROLES.index(needed):
        raise ApiError(403, "forbidden", f"this key has role {role!r}; this call needs role {needed!r} or higher")


class RateLimiter:
    """A token bucket per key: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, max(1, burst)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def check(self, key_id: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key_id, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self.buckets[key_id] = (tokens, now)
                wait = (1 - tokens) / self.rate
                raise ApiError(429, "rate_limited", f"this key passed the rate limit of {self.rate:g} requests "
                               f"per second (bursts of {self.burst}); retry in {wait:.2f} s", limit="rate_per_s",
                               headers={"Retry-After": str(max(1, int(wait + 0.999)))})
            self.buckets[key_id] = (tokens - 1, now)


class Metrics:
    """Counters and histograms in the Prometheus text format (this process's share)."""

    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list] = {}   # route -> [bucket counts..., sum, count]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            key = (method, route, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            h = self.latency.setdefault(route, [0] * len(self.BUCKETS) + [0.0, 0])
            i = bisect.bisect_left(self.BUCKETS, seconds)
            if i < len(self.BUCKETS):
                h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        out = ["# HELP kshot_requests_total HTTP requests by method, route and status.",
               "# TYPE kshot_requests_total counter"]
        with self.lock:
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(f'kshot_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            out += ["# HELP kshot_request_duration_seconds Request latency.",
                    "# TYPE kshot_request_duration_seconds histogram"]
            for route, h in sorted(self.latency.items()):
                acc = 0
                for bound, n in zip(self.BUCKETS, h):
                    acc += n
                    out.append(f'kshot_request_duration_seconds_bucket{{route="{route}",le="{bound}"}} {acc}')
                out.append(f'kshot_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {h[-1]}')
                out.append(f'kshot_request_duration_seconds_sum{{route="{route}"}} {h[-2]:.6f}')
                out.append(f'kshot_request_duration_seconds_count{{route="{route}"}} {h[-1]}')
        for name, (help_text, value) in gauges.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(out) + "\n"
