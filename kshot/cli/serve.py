"""`kshot serve MODEL_DIR`: the few-shot service; `kshot serve keys create`: API keys."""

from __future__ import annotations

import os
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


serve_app = typer.Typer(cls=_ServeGroup, add_completion=False, invoke_without_command=True, no_args_is_help=False,
                        help="Run the few-shot text classification service (needs kshot\\[serve]).")
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
    cors_origin: Optional[List[str]] = typer.Option(None, help="allow browser calls from this origin (repeatable; "
                                                    "CORS is off without it)"),
    rate_limit: float = typer.Option(50.0, help="requests per second per API key (0: no limit)"),
    burst: int = typer.Option(100, help="requests a key may send at once above --rate-limit"),
    max_texts: int = typer.Option(64, help="texts per request (predictions or examples)"),
    max_chars: int = typer.Option(2000, help="characters per text"),
    max_examples_per_label: int = typer.Option(2000, help="stored examples per label"),
    max_body_bytes: int = typer.Option(1_000_000, help="request body size in bytes"),
    batch_window_ms: float = typer.Option(4.0, help="how long concurrent predictions wait to share an encoder pass"),
    poll: float = typer.Option(0.5, help="seconds between checks for other workers' and replicas' changes"),
    threads: int = typer.Option(0, help="torch threads per worker for the encoder (0: torch's default, one per core)"),
    quantize: str = typer.Option("int8", help="int8: the encoder's linear layers run in int8 (about 2.5x less CPU per "
                                 "text, 0.8 points less accuracy on BANKING77 10-shot); none: float32"),
):
    """Serve MODEL_DIR over HTTP; examples added later live in --db. (`kshot serve keys create` for keys.)"""
    if ctx.invoked_subcommand is not None:
        return
    if model_dir is None:
        raise KshotError("kshot serve needs MODEL_DIR, a model directory written by `kshot fit` "
                         "(or `kshot serve keys create --role ROLE --db URL`)")
    from ..core.model_format import check_manifest, read_manifest

    check_manifest(model_dir, read_manifest(model_dir)[1], "text-classifier")   # kshot serve serves text models
    for name, value, low in (("--port", port, 1), ("--workers", workers, 1), ("--max-texts", max_texts, 1),
                             ("--max-chars", max_chars, 1), ("--max-examples-per-label", max_examples_per_label, 1),
                             ("--max-body-bytes", max_body_bytes, 100), ("--burst", burst, 1),
                             ("--threads", threads, 0)):
        if value < low:
            raise KshotError(f"{name} must be at least {low}, got {value}")
    from ..text.encoder import check_quantize

    check_quantize(quantize, "--quantize")
    if rate_limit < 0 or batch_window_ms < 0 or poll <= 0:
        raise KshotError("--rate-limit and --batch-window-ms must be >= 0 and --poll > 0")
    try:
        import uvicorn

        from ..serve.app import Config, config_json
    except ImportError as exc:
        raise KshotError(f"kshot serve needs the serve extra (pip install 'kshot[serve]'): {exc}") from None
    from ..serve.model import fingerprint

    store = _store(db)   # migrates the schema once, before the workers start
    store.check_model(fingerprint(model_dir))
    if store.count_keys() == 0:
        key = store.create_key("admin")
        typer.echo(f"no API keys in {db} yet; created an admin key (shown once, keep it):\n{key}", err=True)
    config = Config(model_dir=str(model_dir.resolve()), db=db, export_dir=str(export_dir.resolve()),
                    cors_origins=list(cors_origin or []), window=batch_window_ms / 1000, poll=poll, threads=threads,
                    quantize=quantize,
                    limits={"rate_per_s": rate_limit, "burst": burst, "max_texts": max_texts,
                            "max_chars": max_chars, "max_examples_per_label": max_examples_per_label,
                            "max_body_bytes": max_body_bytes})
    os.environ["KSHOT_SERVE_CONFIG"] = config_json(config)
    typer.echo(f"kshot serve: {model_dir} on http://{host}:{port}/ (API under /v1, docs at /docs), db {db}", err=True)
    uvicorn.run("kshot.serve.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., help="read (predict), write (add/delete examples, feedback) or admin (keys, export)"),
    db: str = typer.Option("sqlite:///kshot.db", help=DB_HELP),
):
    """Create an API key; it is printed once, alone on the last line (only a salted hash is stored)."""
    from ..serve.store import ROLES

    if role not in ROLES:
        raise KshotError(f"unknown --role {role!r}; choose one of: {', '.join(ROLES)}")
    key = _store(db).create_key(role)
    typer.echo(f"created a {role} key for {db}; it is shown only now:")
    typer.echo(key)
