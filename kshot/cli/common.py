"""What every command module shares: the root ``app``, the domain groups, the flags every domain spells
the same way, and their parsers.

The grammar is ``kshot <domain> <verb>``: domains ``image``, ``text``, ``tag``, ``recsys``, ``serve``; verbs
mean the same everywhere: ``fit`` (a few-shot model from labelled examples), ``predict``, ``score`` (a
fitted model against labelled data: the report with confidence intervals), ``train`` / ``eval``
(meta-training a method and scoring it on fixed episodes or held-out users), ``recommend``. Shorthands:
``kshot fit|predict|score`` are the text verbs, ``kshot train|eval`` the image ones, ``kshot recommend``
the recsys one. ``-`` is standard input or output wherever a file is read or written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, List, Optional

import typer

from ..core.errors import KshotError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Few-shot learning: fit, predict, score, train and evaluate few-shot models on images, "
    "text, entities and recommendations. `kshot <domain> <verb> --help` for each command.",
)


def group(name: str, help: str, **kw) -> typer.Typer:
    """A domain's command group, ``kshot NAME ...``."""
    sub = typer.Typer(add_completion=False, no_args_is_help=True, help=help, **kw)
    app.add_typer(sub, name=name)
    return sub


def shorthand(name: str, full: str) -> Callable:
    """Register a command also at the top level (``kshot NAME``), documented as the shorthand of ``full``."""

    def register(fn):
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        app.command(name, help=f"Shorthand of `kshot {full}`: {doc}")(fn)
        return fn

    return register


# ---- the flags every domain spells the same way --------------------------------------------------------


def seed_option(help: str = "random seed") -> typer.Option:
    return typer.Option(0, "--seed", help=help)


def device_option(default: Optional[str] = "cpu", help: str = "torch device: cpu, cuda, cuda:1, mps") -> typer.Option:
    return typer.Option(default, "--device", help=help)


def json_option() -> typer.Option:
    return typer.Option(False, "--json", help="print one JSON object instead of a table")


def out_option(help: str = "model directory to write") -> typer.Option:
    return typer.Option(..., "--out", help=help, callback=check_out_dir)


def check_out_dir(out: Path | None) -> Path | None:
    """Before any work (the ``--out`` option's callback): a directory, or a path that does not exist yet."""
    if out is not None and out.exists() and not out.is_dir():
        raise KshotError(f"--out {out} is a file; give a directory to write the model into")
    return out


def param_option(
    help: str = "method parameter KEY=VALUE (repeatable; values parsed as JSON when they can be)",
) -> typer.Option:
    return typer.Option(None, "--param", "-p", help=help)


def progress_option() -> typer.Option:
    return typer.Option(True, "--progress/--no-progress", help="show progress bars on long work")


def shots_option(default: Optional[str], help: str) -> typer.Option:
    return typer.Option(default, "--shots", "--shot", help=help + " (comma-separated, e.g. 1,5)")


def plot_option() -> typer.Option:
    return typer.Option(None, "--plot", help="write the confusion matrix to this PNG file")


def reject_below_option(help: str) -> typer.Option:
    return typer.Option(None, "--reject-below", help=help)


def check_reject_below(value) -> None:
    if value is not None and not 0 <= value <= 1:
        raise KshotError(f"--reject-below must be a probability from 0 to 1, got {value}")


def data_root_option() -> typer.Option:
    return typer.Option(None, "--data-root", help="data root (default: $KSHOT_DATA, else the user cache)")


def parse_shots(values, minimum: int = 1, one: bool = False, flag: str = "--shots") -> list[int]:
    """``--shots 1,5`` (or repeated, or a list) -> ``[1, 5]``; ``one``: exactly one value."""
    if values is None:
        return []
    items = values if isinstance(values, (list, tuple)) else [values]
    out = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            try:
                k = int(part)
            except ValueError:
                raise KshotError(f"{flag} takes integers >= {minimum} separated by commas, got {part!r}") from None
            if k < minimum:
                raise KshotError(f"{flag} takes integers >= {minimum}, got {k}")
            out.append(k)
    if one and len(out) != 1:
        raise KshotError(f"{flag} takes one value here, got {','.join(map(str, out))}")
    return out


def parse_params(items: list[str] | None, flag: str = "--param") -> dict:
    """``KEY=VALUE`` pairs; values are parsed as JSON when they can be (numbers, true/false)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KshotError(f"{flag} takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def read_config(path: Path) -> dict:
    """A JSON or TOML file of settings (``--config``)."""
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


def echo_err(msg: str) -> None:
    typer.echo(msg, err=True)


def print_report(result, plot=None) -> None:
    """A classification report (``kshot.core.report``) as the text and image ``score`` commands print it."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(str(result))
    table = Table("label", "precision %", "recall %", "F1 %", "support")
    for label, row in result.per_class.items():
        table.add_row(
            str(label),
            f"{100 * row['precision']:.1f}",
            f"{100 * row['recall']:.1f}",
            f"{100 * row['f1']:.1f}",
            str(row["support"]),
        )
    console.print(table)
    if result.unseen:
        names = ", ".join(f"{k!s} ({v})" for k, v in sorted(result.unseen.items(), key=lambda kv: str(kv[0])))
        console.print(f"labels the model never saw (scored as errors): {names}")
    if result.oos is not None:
        o = result.oos
        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
        console.print(
            f"reject below {result.reject_below}: {o['rejected_rows']} rejected; out-of-scope rows "
            f"({o['reject_label']!r}): {o['out_of_scope_rows']}, recall {pct(o['oos_recall'])}, "
            f"precision {pct(o['oos_precision'])}; in-scope accuracy {pct(o['in_scope_accuracy'])}, "
            f"in-scope rejected {pct(o['in_scope_rejected'])}"
        )
    if plot is not None:
        console.print(f"confusion matrix in {plot}")


__all__ = [
    "List",
    "Optional",
    "app",
    "check_reject_below",
    "data_root_option",
    "device_option",
    "echo_err",
    "group",
    "json_option",
    "out_option",
    "param_option",
    "parse_params",
    "parse_shots",
    "plot_option",
    "print_report",
    "progress_option",
    "read_config",
    "reject_below_option",
    "seed_option",
    "shorthand",
    "shots_option",
]
