"""The HTTP API (FastAPI): ``/v1`` JSON endpoints, ``/metrics``, ``/docs`` and the web page at ``/``.

``create_app(config)`` builds the app; ``create_app_from_env`` is the factory uvicorn's workers call
(``kshot serve`` puts the configuration in ``KSHOT_SERVE_CONFIG``, a JSON object). Request bodies are read
and checked in ``schemas`` so that every refusal is a JSON error naming the field or limit:
``{"error": {"code": ..., "message": ..., "field"?: ..., "limit"?: ...}}``.

Nothing on the event loop waits for the database: keys are checked against an in-memory copy of the
key table (``guard.Keys``), every store call runs in a thread, and ``/v1/health`` answers from what the
poller last saw. Under overload a worker sheds early and cheaply: past ``max_inflight`` requests in
progress, or ``max_queue`` texts waiting for the encoder, it answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import KshotError
from . import schemas as S
from .guard import ApiError, Keys, Limits, Metrics, RateLimiter, from_limit, overloaded, require
from .model import Overloaded, ServedModel
from .store import ROLES, Forbidden, LimitError, Store, safe_url

STATIC = Path(__file__).parent / "static"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
UNSHED = ("/v1/health", "/metrics")  # answered even when the worker sheds load
ENCODED = ("/v1/predict", "/v1/examples", "/v1/feedback")  # POSTs that queue texts for the encoder


@dataclass
class Config:
    model_dir: str
    db: str = "sqlite:///kshot.db"
    export_dir: str = "kshot-exports"
    cors_origins: list[str] = field(default_factory=list)
    limits: dict = field(default_factory=dict)
    window: float = 0.004
    poll: float = 0.5
    threads: int = 0  # torch threads for the encoder; 0: torch's default
    quantize: str = "none"  # "int8": the encoder's linear layers run in int8
    docs: bool = True  # /docs (Swagger UI, its assets served from the installed package)


def swagger_assets() -> Path | None:
    """The folder of Swagger UI's JavaScript and CSS that ``fastapi-offline`` ships, if installed."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").exists() else None


# ---------------------------------------------------------------- middleware
class Observe:
    """Pure ASGI middleware: sheds load past ``max_inflight`` requests, refuses over-long bodies by
    Content-Length, adds security headers, and counts every request in the metrics (in a ``finally``,
    so a crash is counted as 500; methods outside the standard ones are counted as ``other``)."""

    def __init__(self, app, metrics: Metrics, limits: Limits, holder: dict):
        self.app, self.metrics, self.limits, self.holder = app, metrics, limits, holder
        self.inflight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, started = time.perf_counter(), [500], [False]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
            await send(message)

        self.inflight += 1
        try:
            err = None
            length = dict(scope.get("headers") or []).get(b"content-length")
            m = self.holder.get("model")
            if self.inflight > self.limits.max_inflight and scope["path"] not in UNSHED:
                self.metrics.shed.labels("max_inflight").inc()
                err = overloaded(
                    f"this worker has {self.inflight - 1} requests in progress, its limit; retry soon",
                    1,
                    limit="max_inflight",
                )
            elif m is not None and scope["path"] in ENCODED and scope["method"] == "POST" and m.full():
                # the encoder's queue is full: refuse before reading, checking or authenticating anything
                self.metrics.shed.labels("max_queue").inc()
                err = overloaded(
                    f"{m.queued} texts are waiting for the encoder, as many as this worker queues; retry soon",
                    m.full(),
                    limit="max_queue",
                )
            elif length is not None and (
                not length.isdigit() or len(length) > 18 or int(length) > self.limits.max_body_bytes
            ):
                err = ApiError(
                    413,
                    "limit_exceeded",
                    f"the request body has {length[:20].decode('latin-1')} bytes; "
                    f"the limit is {self.limits.max_body_bytes}",
                    limit="max_body_bytes",
                )
            if err is not None:
                await JSONResponse(err.body(), status_code=err.status, headers=err.headers)(scope, receive, send_status)
            else:
                try:
                    await self.app(scope, receive, send_status)
                except Exception as exc:  # a bug: log it, answer 500 here (uvicorn would drop the connection)
                    if started[0]:
                        raise
                    traceback.print_exception(exc, file=sys.stderr)
                    await JSONResponse(
                        ApiError(500, "internal", "internal error; the server log has the details").body(),
                        status_code=500,
                    )(scope, receive, send_status)
        finally:
            self.inflight -= 1
            route = scope.get("route")
            self.metrics.observe(
                scope["method"], getattr(route, "path", "other"), status[0], time.perf_counter() - start
            )


async def unless_gone(request: Request, work):
    """Await ``work`` unless the client hangs up first: then cancel it (its texts are not encoded) and
    raise ``ClientGone`` (nothing is sent; counted as 499)."""
    task = asyncio.ensure_future(work)

    async def hangup():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch = asyncio.ensure_future(hangup())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        raise ClientGone()
    return task.result()


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


# ---------------------------------------------------------------- the app
def create_app(config: Config) -> FastAPI:
    limits = Limits(**config.limits)
    store = Store(config.db)
    keys = Keys(store, limits)
    rate = RateLimiter(limits.rate_per_s, limits.burst)
    metrics = Metrics()
    holder: dict = {}
    assets = swagger_assets() if config.docs else None
    if config.docs and assets is None:
        print(
            "kshot serve: /docs is off: the fastapi-offline package (Swagger UI's files) is not installed", flush=True
        )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        await asyncio.to_thread(keys.refresh)
        m = await asyncio.to_thread(
            ServedModel,
            config.model_dir,
            store,
            window=config.window,
            poll=config.poll,
            quantize=config.quantize,
            max_queue=limits.max_queue,
            timeout=limits.timeout,
            max_wait=limits.max_wait,
            on_batch=metrics.batch.observe,
        )
        holder["model"] = m
        m.start(hooks=[keys.refresh])
        yield
        m.close()
        metrics.process_exit(os.getpid())

    app = FastAPI(
        title="kshot serve",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Few-shot text classification that learns new intents while it runs. Send a key "
        "as `Authorization: Bearer KEY`; roles: read (predict, labels), write (examples, "
        "feedback), admin (keys, export, the model directory's own examples).",
    )

    def model() -> ServedModel:
        return holder["model"]

    async def auth(request: Request, needed: str) -> tuple[str, str]:
        client = request.scope.get("client")
        key_id, role = await keys.check(request.headers.get("authorization"), client[0] if client else "unknown")
        require(role, needed)
        rate.check(key_id)
        return key_id, role

    # ------------------------------------------------------------ errors as JSON
    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(LimitError)
    async def _limit_error(request, exc: LimitError):
        err = from_limit(exc)
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(Forbidden)
    async def _forbidden(request, exc: Forbidden):
        return JSONResponse(ApiError(403, "forbidden", str(exc)).body(), status_code=403)

    @app.exception_handler(Overloaded)
    async def _overloaded(request, exc: Overloaded):
        metrics.shed.labels(exc.limit).inc()
        err = overloaded(str(exc), exc.retry_after, limit=exc.limit)
        return JSONResponse(err.body(), status_code=503, headers=err.headers)

    @app.exception_handler(ClientGone)
    async def _gone(request, exc: ClientGone):
        return Response(status_code=499)  # nobody reads it; the metrics count it as 499

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
        message = (
            f"no such endpoint: {request.method[:20]} {request.url.path[:200]}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return JSONResponse(ApiError(exc.status_code, code, message).body(), status_code=exc.status_code)

    errors = {s: {"model": S.ErrorBody} for s in (400, 401, 403, 404, 409, 413, 422, 429, 503)}

    def body_of(model) -> dict:
        content = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
        return {"requestBody": {"required": True, "content": {"application/json": content}}}

    # ------------------------------------------------------------ the page and the docs
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html",
            headers={
                "Content-Security-Policy": PAGE_CSP,
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        kinds = {"page.js": "text/javascript", "page.css": "text/css", "docs.js": "text/javascript"}
        if name not in kinds:
            raise ApiError(404, "not_found", f"no such file: {name[:100]}")
        return FileResponse(STATIC / name, media_type=kinds[name])

    if assets is not None:

        @app.get("/docs", include_in_schema=False)
        async def docs():
            return HTMLResponse(
                (STATIC / "docs.html").read_text(),
                headers={"Content-Security-Policy": DOCS_CSP, "Referrer-Policy": "no-referrer"},
            )

        @app.get("/docs/assets/{name}", include_in_schema=False)
        async def docs_assets(name: str):
            kinds = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
            if name not in kinds:
                raise ApiError(404, "not_found", f"no such file: {name[:100]}")
            return FileResponse(assets / name, media_type=kinds[name], headers={"Cache-Control": "max-age=86400"})

    # ------------------------------------------------------------ health and metrics
    def checks() -> dict[str, bool]:
        m = holder.get("model")
        fresh = max(5.0, 10 * config.poll)
        return {
            "model": m is not None and m.ready,
            "batcher": m is not None and m.alive,
            "database": m is not None and time.monotonic() - m.polled < fresh,
        }

    @app.get("/v1/health", response_model=S.Health, responses={503: {"model": S.Health}})
    async def health():
        """Liveness and readiness, from what this worker last saw: the model is loaded, the encoder's
        batcher runs, and the database answered the poller lately. 503 when not ready. (No key needed;
        it never waits for the database.)"""
        c = checks()
        ready = all(c.values())
        m = model()
        metrics.ready.set(1 if ready else 0)
        return JSONResponse(
            {
                "status": "ok" if ready else "unavailable",
                "ready": ready,
                "checks": c,
                "labels": len(m.clf.classes_),
                "examples": len(m.ids),
                "encoder": m.encoder,
                "examples_other_encoder": len(m.foreign),
                "model_version": m.model_version,
                "database_version": m.synced,
                "synced_version": m.synced,
            },
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        m = model()
        metrics.examples.set(len(m.ids))
        metrics.labels.set(len(m.clf.classes_))
        metrics.model_version.set(m.model_version)
        metrics.database_version.set(m.synced)
        metrics.queue.set(m.queued)
        metrics.ready.set(1 if all(checks().values()) else 0)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # ------------------------------------------------------------ predictions
    @app.post(
        "/v1/predict", response_model=S.PredictResponse, responses=errors, openapi_extra=body_of(S.PredictRequest)
    )
    async def predict(request: Request):
        """(read) Per text: the label, its score, the top-k labels with scores, and whether it was rejected."""
        await auth(request, "read")
        data = await S.read_json(request, limits)
        if isinstance(data, dict) and isinstance(data.get("texts"), list):
            S.check_texts([""] * min(len(data["texts"]), limits.max_texts + 1), limits)  # count, before validating
        body = S.parse(S.PredictRequest, data)
        S.check_texts(body.texts, limits)
        m = model()
        proba, classes, version = await unless_gone(request, m.predict(body.texts))
        if not classes:
            raise ApiError(409, "no_labels", "there are no labels yet; add examples with POST /v1/examples")
        out = []
        for row in proba:
            order = row.argsort()[::-1][: body.top_k]
            best = float(row[order[0]])
            rejected = body.reject_below is not None and best < body.reject_below
            out.append(
                {
                    "label": m.clf.reject_label if rejected else classes[order[0]],
                    "score": best,
                    "rejected": rejected,
                    "top": [{"label": classes[i], "score": float(row[i])} for i in order],
                }
            )
        return JSONResponse({"predictions": out, "model_version": version})

    # ------------------------------------------------------------ examples and labels
    async def _add(key_id: str, rows, source: str):
        try:
            ids, applied = await model().add(
                rows,
                source,
                key_id,
                max_per_label=limits.max_examples_per_label,
                max_labels=limits.max_labels,
                max_examples=limits.max_examples,
            )
        except LimitError as exc:
            raise from_limit(exc) from None
        return JSONResponse({"ids": ids, "model_version": model().model_version, "applied": applied}, status_code=201)

    @app.post(
        "/v1/examples",
        status_code=201,
        response_model=S.AddResponse,
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/ExampleIn"},
                                {"type": "array", "items": {"$ref": "#/components/schemas/ExampleIn"}},
                                {"$ref": "#/components/schemas/ExamplesRequest"},
                            ]
                        }
                    }
                },
            }
        },
    )
    async def add_examples(request: Request):
        """(write) Store examples (one object, a list, or {"examples": [...]}); they count from the next
        prediction."""
        key_id, _ = await auth(request, "write")
        rows = S.check_examples(await S.read_json(request, limits), limits)
        return await _add(key_id, rows, "api")

    @app.get("/v1/examples", response_model=S.ExampleList, responses=errors)
    async def list_examples(
        request: Request,
        label: str | None = None,
        after_id: int = Query(0, ge=0, le=S.MAX_ID),
        limit: int = Query(100, ge=1, le=1000),
    ):
        """(write) Stored examples with their texts, in id order (texts are null for those that came with the
        model directory); page with ``after_id`` = ``next_after_id`` of the previous page."""
        await auth(request, "write")
        if label is not None:
            S.check_query_label(label, limits)
        rows = await asyncio.to_thread(store.examples, label, after_id, limit)
        return JSONResponse({"examples": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None})

    @app.delete("/v1/examples/{example_id}", response_model=S.DeletedExample, responses=errors)
    async def delete_example(request: Request, example_id: int = PathParam(ge=1, le=S.MAX_ID)):
        """(write; admin for an example that came with the model directory) Delete one example."""
        _, role = await auth(request, "write")
        if not await model().delete_example(example_id, admin=role == "admin"):
            raise ApiError(404, "not_found", f"there is no example with id {example_id}", field="id")
        return JSONResponse({"deleted": example_id, "model_version": model().model_version})

    @app.get("/v1/labels", response_model=S.LabelList, responses=errors)
    async def labels(request: Request):
        """(read) The labels with how many examples each has."""
        await auth(request, "read")
        counts = await asyncio.to_thread(store.label_counts)
        return JSONResponse({"labels": [{"label": k, "examples": v} for k, v in sorted(counts.items())]})

    @app.delete("/v1/labels/{label:path}", response_model=S.DeletedLabel, responses=errors)
    async def delete_label(request: Request, label: str):
        """(write; admin for a label holding examples of the model directory) Delete a label's examples."""
        _, role = await auth(request, "write")
        S.check_query_label(label, limits)
        n = await model().delete_label(label, admin=role == "admin")
        if not n:
            raise ApiError(404, "not_found", f"there is no label {label!r}", field="label")
        return JSONResponse({"deleted": label, "examples": n, "model_version": model().model_version})

    @app.post(
        "/v1/feedback",
        status_code=201,
        response_model=S.AddResponse,
        responses=errors,
        openapi_extra=body_of(S.FeedbackRequest),
    )
    async def feedback(request: Request):
        """(write) A text with the label a person corrected it to: kept as an example."""
        key_id, _ = await auth(request, "write")
        body = S.parse(S.FeedbackRequest, await S.read_json(request, limits))
        S.check_texts([body.text], limits, "text")
        rows = [(body.text, S.check_label(body.label, limits))]
        return await _add(key_id, rows, "feedback")

    # ------------------------------------------------------------ admin
    @app.post("/v1/export", response_model=S.ExportResponse, responses=errors, openapi_extra=body_of(S.ExportRequest))
    async def export(request: Request):
        """(admin) Write the current classifier as a kshot model directory under the export directory."""
        await auth(request, "admin")
        body = S.parse(S.ExportRequest, await S.read_json(request, limits, optional=True))
        name = S.check_export_name(body.name or time.strftime("model-%Y%m%d-%H%M%S"))
        root = Path(config.export_dir)
        dest = root / name
        try:
            root.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(dest))
            path = await model().export(dest)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise ApiError(
                    409, "exists", f"the export {name!r} exists already; choose another name", field="name"
                ) from None
            print(f"kshot serve: export {name!r} failed: {exc}", file=sys.stderr, flush=True)
            raise ApiError(
                507 if exc.errno == errno.ENOSPC else 500,
                "export_failed",
                f"the export {name!r} could not be written: {exc.strerror or type(exc).__name__}",
            ) from None
        return JSONResponse({"path": str(path.resolve()), "labels": len(model().clf.classes_)})

    @app.post(
        "/v1/keys", status_code=201, response_model=S.KeyCreated, responses=errors, openapi_extra=body_of(S.KeyRequest)
    )
    async def create_key(request: Request):
        """(admin) A new API key, shown once; ``expires_in`` seconds (default: it does not expire)."""
        await auth(request, "admin")
        body = S.parse(S.KeyRequest, await S.read_json(request, limits))
        expires = time.time() + body.expires_in if body.expires_in else None
        key = await asyncio.to_thread(store.create_key, body.role, expires)
        return JSONResponse(
            {"key": key, "id": key.split("_")[1], "role": body.role, "expires": expires}, status_code=201
        )

    @app.get("/v1/keys", response_model=S.KeyList, responses=errors)
    async def list_keys(request: Request):
        """(admin) Every key's id, role, creation, expiry and revocation time (never the key)."""
        await auth(request, "admin")
        return JSONResponse({"keys": await asyncio.to_thread(store.list_keys)})

    @app.delete("/v1/keys/{key_id}", responses=errors)
    async def revoke_key(request: Request, key_id: str = PathParam(pattern="^[0-9a-f]{12}$")):
        """(admin) Revoke a key (by its id, the part after ``ks_``): refused at once by this worker, and by
        every other worker and replica within one poll interval."""
        await auth(request, "admin")
        if not await asyncio.to_thread(store.revoke_key, key_id):
            raise ApiError(404, "not_found", f"there is no key {key_id!r} that is not revoked", field="key_id")
        keys.forget(key_id)
        return JSONResponse({"revoked": key_id})

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _, defs = models_json_schema(
                [(m, "validation") for m in S.REQUESTS], ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(defs.get("$defs", {}))
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(Observe, metrics=metrics, limits=limits, holder=holder)
    app.state.config, app.state.store, app.state.holder, app.state.keys = config, store, holder, keys
    app.state.roles = ROLES
    return app


def create_app_from_env() -> FastAPI:
    """The factory uvicorn calls in each worker: the configuration is ``$KSHOT_SERVE_CONFIG`` (JSON)."""
    return create_app(Config(**json.loads(os.environ["KSHOT_SERVE_CONFIG"])))


def config_json(config: Config) -> str:
    return json.dumps(asdict(config))


__all__ = ["Config", "create_app", "create_app_from_env", "config_json", "safe_url"]
