"""`kshot serve MODEL_DIR`: the few-shot service; `kshot serve keys create|list|revoke`: API keys."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from ..core.errors import KshotError
from .common import app


class _ServeGroup(TyperGroup):
    """`kshot serve MODEL_DIR` serves; `kshot serve keys ...` is a subgroup. Click would read `keys` as the
    optional MODEL_DIR, so a leading subcommand name gets a placeholder MODEL_DIR in front of it; without
    a subcommand, options may follow MODEL_DIR."""

    def parse_args(self, ctx, args):
        if args and args[0] in self.commands:
            args = [".", *args]
        else:
            ctx.allow_interspersed_args = True
        return super().parse_args(ctx, args)


serve_app = typer.Typer(
    cls=_ServeGroup,
    add_completion=False,
    invoke_without_command=True,
    no_args_is_help=False,
    help="Run the few-shot text classification service (needs kshot\\[serve]).",
)
keys_app = typer.Typer(add_completion=False, no_args_is_help=True, help="API keys of the service.")
serve_app.add_typer(keys_app, name="keys")
app.add_typer(serve_app, name="serve")

DB_HELP = "database URL: sqlite:///FILE (WAL) or postgresql://USER@HOST:PORT/DB"


def _store(db: str):
    try:
        from ..serve.store import Store
    except ImportError as exc:
        raise KshotError(f"kshot serve needs the serve extra (pip install 'kshot[serve]'): {exc}") from None
    return Store(db)


@serve_app.callback()
def serve(
    ctx: typer.Context,
    model_dir: Optional[Path] = typer.Argument(None, help="a model directory written by `kshot fit`"),
    db: str = typer.Option("sqlite:///kshot.db", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", help="address to bind (127.0.0.1: this machine only)"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(1, help="worker processes (each holds the model; they share --db)"),
    export_dir: Path = typer.Option(Path("kshot-exports"), help="where POST /v1/export writes model directories"),
    cors_origin: Optional[List[str]] = typer.Option(
        None, help="allow browser calls from this origin (repeatable; CORS is off without it)"
    ),
    rate_limit: float = typer.Option(50.0, help="requests per second per API key (0: no limit)"),
    burst: int = typer.Option(100, help="requests a key may send at once above --rate-limit"),
    max_texts: int = typer.Option(64, help="texts per request (predictions or examples)"),
    max_chars: int = typer.Option(2000, help="characters per text"),
    max_examples_per_label: int = typer.Option(2000, help="stored examples per label"),
    max_labels: int = typer.Option(1000, help="labels in all (an add that would make more is refused)"),
    max_examples: int = typer.Option(100_000, help="stored examples in all"),
    max_body_bytes: int = typer.Option(1_000_000, help="request body size in bytes"),
    max_queue: int = typer.Option(256, help="texts waiting for the encoder per worker; past it: 503 with Retry-After"),
    max_wait: float = typer.Option(
        1.0, help="seconds of work (at the encoder's recent speed) the queue may hold; past it: 503 with Retry-After"
    ),
    max_inflight: int = typer.Option(512, help="requests in progress per worker; past it: 503 with Retry-After"),
    timeout: float = typer.Option(10.0, help="seconds a request may wait for the encoder (then 503)"),
    auth_failures: float = typer.Option(
        1.0, help="failed authentications per second per client address, in bursts of 20; past it: 429 (0: no limit)"
    ),
    docs: bool = typer.Option(True, help="serve /docs (Swagger UI from the installed fastapi-offline package)"),
    batch_window_ms: float = typer.Option(4.0, help="how long concurrent predictions wait to share an encoder pass"),
    poll: float = typer.Option(0.5, help="seconds between checks for other workers' and replicas' changes"),
    threads: int = typer.Option(0, help="torch threads per worker for the encoder (0: torch's default, one per core)"),
    quantize: str = typer.Option(
        "int8",
        help="int8: the encoder's linear layers run in int8 (about 2.5x less CPU per "
        "text, 0.8 points less accuracy on BANKING77 10-shot); none: float32",
    ),
):
    """Serve MODEL_DIR over HTTP; examples added later live in --db. (`kshot serve keys create` for keys.)"""
    if ctx.invoked_subcommand is not None:
        return
    if model_dir is None:
        raise KshotError(
            "kshot serve needs MODEL_DIR, a model directory written by `kshot fit` "
            "(or `kshot serve keys create --role ROLE --db URL`)"
        )
    from ..core.model_format import check_manifest, read_manifest

    check_manifest(model_dir, read_manifest(model_dir)[1], "text-classifier")  # kshot serve serves text models
    for name, value, low in (
        ("--port", port, 1),
        ("--workers", workers, 1),
        ("--max-texts", max_texts, 1),
        ("--max-chars", max_chars, 1),
        ("--max-examples-per-label", max_examples_per_label, 1),
        ("--max-labels", max_labels, 1),
        ("--max-examples", max_examples, 1),
        ("--max-body-bytes", max_body_bytes, 100),
        ("--burst", burst, 1),
        ("--max-queue", max_queue, 1),
        ("--max-inflight", max_inflight, 1),
        ("--threads", threads, 0),
    ):
        if value < low:
            raise KshotError(f"{name} must be at least {low}, got {value}")
    if not timeout > 0 or not max_wait > 0 or auth_failures < 0:
        raise KshotError(
            f"--timeout and --max-wait must be > 0 and --auth-failures >= 0, got {timeout}, {max_wait} "
            f"and {auth_failures}"
        )
    from ..text.encoder import check_quantize

    check_quantize(quantize, "--quantize")
    if rate_limit < 0 or batch_window_ms < 0 or poll <= 0:
        raise KshotError("--rate-limit and --batch-window-ms must be >= 0 and --poll > 0")
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus_client's multi-process mode: each worker writes its metrics here and /metrics sums
        # them all (set before prometheus_client is imported, here and in the workers)
        metrics_dir = tempfile.mkdtemp(prefix="kshot-metrics-")
        atexit.register(shutil.rmtree, metrics_dir, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        import uvicorn

        from ..serve.app import Config, config_json
    except ImportError as exc:
        raise KshotError(f"kshot serve needs the serve extra (pip install 'kshot[serve]'): {exc}") from None
    from ..serve.model import fingerprint
    from ..serve.store import safe_url

    store = _store(db)  # migrates the schema once, before the workers start
    store.check_model(fingerprint(model_dir))
    if store.count_keys() == 0:
        key = store.create_key("admin")
        typer.echo(f"no API keys in {safe_url(db)} yet; created an admin key (shown once, keep it):\n{key}", err=True)
    config = Config(
        model_dir=str(model_dir.resolve()),
        db=db,
        export_dir=str(export_dir.resolve()),
        cors_origins=list(cors_origin or []),
        window=batch_window_ms / 1000,
        poll=poll,
        threads=threads,
        quantize=quantize,
        docs=docs,
        limits={
            "rate_per_s": rate_limit,
            "burst": burst,
            "max_texts": max_texts,
            "max_chars": max_chars,
            "max_examples_per_label": max_examples_per_label,
            "max_labels": max_labels,
            "max_examples": max_examples,
            "max_body_bytes": max_body_bytes,
            "max_queue": max_queue,
            "max_wait": max_wait,
            "max_inflight": max_inflight,
            "timeout": timeout,
            "auth_failures_per_s": auth_failures,
        },
    )
    os.environ["KSHOT_SERVE_CONFIG"] = config_json(config)
    typer.echo(
        f"kshot serve: {model_dir} on http://{host}:{port}/ (API under /v1"
        f"{', docs at /docs' if docs else ''}), db {safe_url(db)}",
        err=True,
    )
    uvicorn.run(
        "kshot.serve.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def parse_duration(value: str, name: str = "--expires-in") -> float:
    """Seconds in ``90``, ``90s``, ``45m``, ``12h``, ``30d`` or ``2w``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value or "")
    seconds = float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m[2]] if m else 0
    if not 0 < seconds <= 100 * 365 * 86400:
        raise KshotError(f"{name} takes a duration such as 3600, 45m, 12h, 30d or 2w (up to 100 years), got {value!r}")
    return seconds


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(
        ...,
        help="read (predict, labels), write (add/delete/list examples, feedback) or admin "
        "(keys, export, the model directory's examples)",
    ),
    db: str = typer.Option("sqlite:///kshot.db", help=DB_HELP),
    expires_in: Optional[str] = typer.Option(
        None, help="the key expires after this long: 3600, 45m, 12h, 30d, 2w (default: never)"
    ),
):
    """Create an API key; it is printed once, alone on the last line (only a salted hash is stored)."""
    from ..serve.store import ROLES, safe_url

    if role not in ROLES:
        raise KshotError(f"unknown --role {role!r}; choose one of: {', '.join(ROLES)}")
    expires = time.time() + parse_duration(expires_in) if expires_in is not None else None
    key = _store(db).create_key(role, expires)
    until = f", valid until {_when(expires)}" if expires else ""
    typer.echo(f"created a {role} key (id {key.split('_')[1]}{until}) for {safe_url(db)}; it is shown only now:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    db: str = typer.Option("sqlite:///kshot.db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per key instead of a table"),
):
    """The keys: id, role, created, expires, revoked (never the keys themselves)."""
    rows = _store(db).list_keys()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    now = time.time()
    typer.echo(f"{'id':<12}  {'role':<5}  {'created':<23}  {'expires':<23}  state")
    for r in rows:
        state = "revoked" if r["revoked"] else ("expired" if r["expires"] and r["expires"] <= now else "active")
        typer.echo(f"{r['id']:<12}  {r['role']:<5}  {_when(r['created']):<23}  {_when(r['expires']):<23}  {state}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(
        ..., help="the key's id (the 12 characters after ks_, as `keys list` shows), or the whole key"
    ),
    db: str = typer.Option("sqlite:///kshot.db", help=DB_HELP),
):
    """Revoke a key: every worker and replica refuses it within one poll interval (--poll)."""
    from ..serve.store import KEY_ID, parse_key

    key_id = parse_key(key_id) or key_id
    if not KEY_ID.fullmatch(key_id):
        raise KshotError(f"a key id is 12 hexadecimal characters (see `kshot serve keys list`), got {key_id!r}")
    if not _store(db).revoke_key(key_id):
        raise KshotError(f"there is no key {key_id!r} that is not revoked already (see `kshot serve keys list`)")
    typer.echo(f"revoked key {key_id}")
