"""The ``kshot`` command line: thin wiring over the Python API, one module per domain (the grammar is in
``common``: ``kshot <domain> <verb>``, with shorthands).

User errors print one line (``error: ...``) without a traceback and exit with status 2.
"""

from __future__ import annotations

import os
import sys

from ..core.errors import KshotError
from . import general, images, recsys, serve, tag, text  # noqa: F401  (each module registers its commands on ``app``)
from .common import app, echo_err

__all__ = ["app", "main", "run"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for user errors, printed on one line)."""
    try:
        app(args=argv, prog_name="kshot")
    except SystemExit as exc:  # typer/click finish with SystemExit (usage errors: 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KshotError as exc:
        echo_err(f"error: {str(exc).splitlines()[0]}")
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        echo_err("interrupted; a training run continues with --resume")
        return 130
    return 0


def run() -> None:
    """Console-script entry point."""
    code = main()
    if "WORLD_SIZE" in os.environ:  # a rank started by torchrun
        from ..core.distributed import exit_process

        exit_process(code)
    sys.exit(code)
