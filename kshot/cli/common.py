"""What every command module shares: the Typer ``app`` and small parsing helpers."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..core.errors import KshotError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Few-shot learning: train, evaluate and apply few-shot models.")


def _echo_err(msg: str) -> None:
    typer.echo(msg, err=True)


def _parse_params(items: list[str] | None) -> dict:
    """``KEY=VALUE`` pairs; values are parsed as JSON when they can be (numbers, true/false)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KshotError(f"--param takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise KshotError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)
    except Exception as exc:  # tomllib.TOMLDecodeError / json.JSONDecodeError
        raise KshotError(f"cannot parse config file {path}: {exc}".splitlines()[0]) from None
