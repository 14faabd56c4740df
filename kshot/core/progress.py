"""A rich progress bar that yields an ``advance(n, **fields)`` callable (a no-op when disabled).

``advance(n, total=T, ...)`` also changes the bar's total (a step budget that was re-planned mid-run).

``advance.log(message)`` prints a line above the bar (and into log files, where no bar is drawn); without
a bar it still prints the line to stderr, so ``--no-progress`` runs keep their validation messages.
"""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True, fields: str = ""):
    """``fields`` is a format string over the keyword arguments given to ``advance``."""
    if not enabled:

        def advance(n: int = 1, total: int | None = None, **kw):
            pass

        advance.log = lambda message: print(message, file=sys.stderr, flush=True)
        yield advance
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    if fields:
        columns.append(TextColumn("{task.fields[info]}"))
    from rich.console import Console

    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as p:
        task = p.add_task(description, total=total, info="")

        def advance(n: int = 1, total: int | None = None, **kw):
            p.update(
                task,
                advance=n,
                **({"info": fields.format(**kw)} if fields and kw else {}),
                **({"total": total} if total is not None else {}),
            )

        advance.log = p.console.print
        yield advance
