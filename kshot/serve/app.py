"""The HTTP API (FastAPI): ``/v1`` JSON endpoints, ``/metrics``, ``/docs`` and the web page at ``/``.

``create_app(config)`` builds the app; ``create_app_from_env`` is the factory uvicorn's workers call
(``kshot serve`` puts the configuration in ``KSHOT_SERVE_CONFIG``, a JSON object). Request bodies are read
and checked here so that every refusal is a JSON error naming the field or limit:
``{"error": {"code": ..., "message": ..., "field"?: ..., "limit"?: ...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import KshotError
from .guard import ApiError, Keys, Limits, Metrics, RateLimiter, from_limit, require
from .model import ServedModel
from .store import ROLES, LimitError, Store

STATIC = Path(__file__).parent / "static"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class Config:
    model_dir: str
    db: str = "sqlite:///kshot.db"
    export_dir: str = "kshot-exports"
    cors_origins: list[str] = field(default_factory=list)
    limits: dict = field(default_factory=dict)
    window: float = 0.004
    poll: float = 0.5
    threads: int = 0   # torch threads for the encoder; 0: torch's default
    quantize: str = "none"   # "int8": the encoder's linear layers run in int8


# ---------------------------------------------------------------- request checks
async def read_json(request: Request, limits: Limits, optional: bool = False):
    """The JSON body, read no further than ``max_body_bytes`` (``optional``: an empty body is {})."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise ApiError(413, "limit_exceeded", f"the request body passed {limits.max_body_bytes} bytes, "
                           "the limit", limit="max_body_bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        if optional:
            return {}
        raise ApiError(400, "invalid_json", "the request body is empty; send a JSON object", field="body")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the request body nests too deeply", field="body") from None


def _object(data, where: str = "body") -> dict:
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_field", f"{where} must be a JSON object, got {type(data).__name__}", field=where)
    return data


def check_text(value, name: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"{name} must be a string, got {_kind(value)}", field=name)
    if not value.strip():
        raise ApiError(422, "invalid_field", f"{name} is empty; it needs some words", field=name)
    if len(value) > limits.max_chars:
        raise ApiError(413, "limit_exceeded", f"{name} has {len(value)} characters; the limit is "
                       f"{limits.max_chars}", field=name, limit="max_chars")
    return value


def check_label(value, name: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"{name} must be a string, got {_kind(value)}", field=name)
    value = value.strip()
    if not value:
        raise ApiError(422, "invalid_field", f"{name} is an empty string; a label needs a name", field=name)
    if len(value) > limits.max_label_chars:
        raise ApiError(413, "limit_exceeded", f"{name} has {len(value)} characters; the limit is "
                       f"{limits.max_label_chars}", field=name, limit="max_label_chars")
    return value


def _kind(value) -> str:
    return "null" if value is None else {bool: "a boolean", int: "a number", float: "a number", list: "a list",
                                         dict: "an object", str: "a string"}.get(type(value), type(value).__name__)


def _number(data: dict, name: str, default, low, high, integer: bool = False):
    value = data.get(name, default)
    if value is None:
        return default
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not low <= value <= high or (isinstance(value, float) and math.isnan(value)):
        kind = "an integer" if integer else "a number"
        raise ApiError(422, "invalid_field", f"{name} must be {kind} from {low} to {high}, got {value!r}", field=name)
    return value


def check_examples(data, limits: Limits) -> list[tuple[str, str]]:
    """``{"text", "label"}``, a list of them, or ``{"examples": [...]}`` -> [(text, label)]."""
    prefix = ""
    if isinstance(data, dict) and "examples" in data:
        data, prefix = data["examples"], "examples"
    items = data if isinstance(data, list) else [_object(data)]
    if not items:
        raise ApiError(422, "invalid_field", "the list of examples is empty", field=prefix or "body")
    if len(items) > limits.max_texts:
        raise ApiError(413, "limit_exceeded", f"{len(items)} examples in one request; the limit is {limits.max_texts}",
                       field=prefix or "body", limit="max_texts")
    out = []
    for i, item in enumerate(items):
        where = f"{prefix}[{i}]" if isinstance(data, list) else ""
        item = _object(item, where or "body")
        dot = f"{where}." if where else ""
        out.append((check_text(item.get("text"), f"{dot}text", limits),
                    check_label(item.get("label"), f"{dot}label", limits)))
    return out


# ---------------------------------------------------------------- middleware
class Observe:
    """Pure ASGI middleware: refuses over-long bodies by Content-Length and records metrics."""

    def __init__(self, app, metrics: Metrics, limits: Limits):
        self.app, self.metrics, self.limits = app, metrics, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            err = ApiError(413, "limit_exceeded", f"the request body has {int(length)} bytes; the limit is "
                           f"{self.limits.max_body_bytes}", limit="max_body_bytes")
            response = JSONResponse(err.body(), status_code=413)
            status[0] = 413
            await response(scope, receive, send)
        else:
            async def send_status(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)
            await self.app(scope, receive, send_status)
        route = scope.get("route")
        self.metrics.observe(scope["method"], getattr(route, "path", "other"), status[0], time.perf_counter() - start)


# ---------------------------------------------------------------- the app
def create_app(config: Config) -> FastAPI:
    limits = Limits(**config.limits)
    store = Store(config.db)
    keys = Keys(store)
    rate = RateLimiter(limits.rate_per_s, limits.burst)
    metrics = Metrics()
    holder: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        holder["model"] = await asyncio.to_thread(ServedModel, config.model_dir, store, window=config.window,
                                                  poll=config.poll, quantize=config.quantize)
        tasks = holder["model"].start()
        yield
        for t in tasks:
            t.cancel()
        holder["model"].executor.shutdown(wait=False)

    app = FastAPI(title="kshot serve", version="1", lifespan=lifespan,
                  description="Few-shot text classification that learns new intents while it runs.")

    def model() -> ServedModel:
        return holder["model"]

    def auth(request: Request, needed: str) -> str:
        key_id, role = keys.role(request.headers.get("authorization"))
        require(role, needed)
        rate.check(key_id)
        return role

    # ------------------------------------------------------------ errors as JSON
    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(LimitError)
    async def _limit_error(request, exc: LimitError):
        err = from_limit(exc)
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(KshotError)
    async def _kshot_error(request, exc: KshotError):
        return JSONResponse(ApiError(400, "bad_request", str(exc)).body(), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        name = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        err = ApiError(422, "invalid_field", f"{name}: {first.get('msg', 'invalid value')}", field=name)
        return JSONResponse(err.body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"no such endpoint: {request.method} {request.url.path}" if exc.status_code in (404, 405) \
            else str(exc.detail)
        return JSONResponse(ApiError(exc.status_code, code, message).body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(request, exc: Exception):
        traceback.print_exception(exc, file=sys.stderr)
        return JSONResponse(ApiError(500, "internal", "internal error; the server log has the details").body(),
                            status_code=500)

    # ------------------------------------------------------------ endpoints
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/v1/health")
    async def health():
        """Liveness and readiness: the model is loaded and the database answers."""
        try:
            version = await asyncio.to_thread(store.version)
        except Exception as exc:   # noqa: BLE001
            return JSONResponse({"status": "unavailable", "ready": False,
                                 "message": f"the database does not answer: {str(exc).splitlines()[0]}"},
                                status_code=503)
        m = model()
        return {"status": "ok", "ready": m.ready, "labels": len(m.clf.classes_), "examples": len(m.ids),
                "encoder": m.encoder, "examples_other_encoder": len(m.foreign),
                "model_version": m.model_version, "database_version": version, "synced_version": m.synced}

    @app.post("/v1/predict", openapi_extra=_schema({"texts": ["where is my card?"], "reject_below": 0.4, "top_k": 3}))
    async def predict(request: Request):
        """Per text: the label, its score, the top-k labels with scores, and whether it was rejected."""
        auth(request, "read")
        data = _object(await read_json(request, limits))
        texts = data.get("texts")
        if not isinstance(texts, list):
            raise ApiError(422, "invalid_field", f"texts must be a list of strings, got {_kind(texts)}", field="texts")
        if not texts:
            raise ApiError(422, "invalid_field", "texts is empty; send at least one text", field="texts")
        if len(texts) > limits.max_texts:
            raise ApiError(413, "limit_exceeded", f"{len(texts)} texts in one request; the limit is "
                           f"{limits.max_texts}", field="texts", limit="max_texts")
        texts = [check_text(t, f"texts[{i}]", limits) for i, t in enumerate(texts)]
        reject_below = _number(data, "reject_below", None, 0.0, 1.0)
        top_k = _number(data, "top_k", 3, 1, 100, integer=True)
        m = model()
        proba, classes, version = await m.predict(texts)
        if not classes:
            raise ApiError(409, "no_labels", "there are no labels yet; add examples with POST /v1/examples")
        out = []
        for row in proba:
            order = row.argsort()[::-1][:top_k]
            best = float(row[order[0]])
            rejected = reject_below is not None and best < reject_below
            out.append({"label": m.clf.reject_label if rejected else classes[order[0]], "score": best,
                        "rejected": rejected,
                        "top": [{"label": classes[i], "score": float(row[i])} for i in order]})
        return JSONResponse({"predictions": out, "model_version": version})

    async def _add(request: Request, rows, source: str):
        try:
            ids = await model().add(rows, source, limits.max_examples_per_label)
        except LimitError as exc:
            raise from_limit(exc) from None
        return JSONResponse({"ids": ids, "model_version": model().model_version}, status_code=201)

    @app.post("/v1/examples", status_code=201,
              openapi_extra=_schema({"text": "my card was charged twice", "label": "double_charge"}))
    async def add_examples(request: Request):
        """Store examples (one object, a list, or {"examples": [...]}); they count from the next prediction."""
        auth(request, "write")
        rows = check_examples(await read_json(request, limits), limits)
        return await _add(request, rows, "api")

    @app.get("/v1/examples")
    async def list_examples(request: Request, label: str | None = None, after_id: int = 0, limit: int = 1000):
        """Stored examples in id order (texts are null for those that came with the model directory);
        page with ``after_id`` = the last id seen."""
        auth(request, "read")
        if not 1 <= limit <= 100_000:
            raise ApiError(422, "invalid_field", f"limit must be from 1 to 100000, got {limit}", field="limit")
        return {"examples": await asyncio.to_thread(store.examples, label, after_id, limit)}

    @app.delete("/v1/examples/{example_id}")
    async def delete_example(request: Request, example_id: int):
        auth(request, "write")
        if not await model().delete_example(example_id):
            raise ApiError(404, "not_found", f"there is no example with id {example_id}", field="id")
        return {"deleted": example_id, "model_version": model().model_version}

    @app.get("/v1/labels")
    async def labels(request: Request):
        auth(request, "read")
        counts = await asyncio.to_thread(store.label_counts)
        return {"labels": [{"label": k, "examples": v} for k, v in sorted(counts.items())]}

    @app.delete("/v1/labels/{label:path}")
    async def delete_label(request: Request, label: str):
        auth(request, "write")
        n = await model().delete_label(label)
        if not n:
            raise ApiError(404, "not_found", f"there is no label {label!r}", field="label")
        return {"deleted": label, "examples": n, "model_version": model().model_version}

    @app.post("/v1/feedback", status_code=201,
              openapi_extra=_schema({"text": "charged twice again", "label": "double_charge", "predicted": "card"}))
    async def feedback(request: Request):
        """A text with the label a person corrected it to: kept as an example."""
        auth(request, "write")
        data = _object(await read_json(request, limits))
        rows = [(check_text(data.get("text"), "text", limits), check_label(data.get("label"), "label", limits))]
        return await _add(request, rows, "feedback")

    @app.post("/v1/export", openapi_extra=_schema({"name": "support-2026-12-03"}))
    async def export(request: Request):
        """(admin) Write the current classifier as a kshot model directory under the export directory."""
        auth(request, "admin")
        data = _object(await read_json(request, limits, optional=True))
        name = data.get("name") or time.strftime("model-%Y%m%d-%H%M%S")
        if not isinstance(name, str) or not NAME.match(name):
            raise ApiError(422, "invalid_field", "name must be letters, digits, '.', '_' or '-' (up to 100), "
                           f"got {name!r}", field="name")
        root = Path(config.export_dir)
        root.mkdir(parents=True, exist_ok=True)
        dest = root / name
        if dest.exists():
            raise ApiError(409, "exists", f"the export {name!r} exists already; choose another name", field="name")
        try:
            path = await model().export(dest)
        except OSError:
            raise ApiError(409, "exists", f"the export {name!r} exists already; choose another name",
                           field="name") from None
        return {"path": str(path.resolve()), "labels": len(model().clf.classes_)}

    @app.post("/v1/keys", status_code=201, openapi_extra=_schema({"role": "write"}))
    async def create_key(request: Request):
        """(admin) A new API key, shown once."""
        auth(request, "admin")
        data = _object(await read_json(request, limits))
        role = data.get("role")
        if role not in ROLES:
            raise ApiError(422, "invalid_field", f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")
        return JSONResponse({"key": await asyncio.to_thread(store.create_key, role), "role": role}, status_code=201)

    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    async def prometheus():
        m = model()
        batches = m.batch_sizes[-1000:]
        gauges = {"kshot_examples": ("Examples the served head holds.", len(m.ids)),
                  "kshot_labels": ("Labels the served head knows.", len(m.clf.classes_)),
                  "kshot_model_version": ("Changes applied to the head since start.", m.model_version),
                  "kshot_database_version": ("Database version the head was last reconciled with.", m.synced),
                  "kshot_mean_batch_texts": ("Mean texts per encoder pass (last 1000 passes).",
                                             sum(batches) / len(batches) if batches else 0)}
        return PlainTextResponse(metrics.render(gauges), media_type="text/plain; version=0.0.4")

    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Observe, metrics=metrics, limits=limits)
    app.state.config, app.state.store = config, store
    return app


def _schema(example: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object"}, "example": example}}}}


def create_app_from_env() -> FastAPI:
    """The factory uvicorn calls in each worker: the configuration is ``$KSHOT_SERVE_CONFIG`` (JSON)."""
    return create_app(Config(**json.loads(os.environ["KSHOT_SERVE_CONFIG"])))


def config_json(config: Config) -> str:
    return json.dumps(asdict(config))
