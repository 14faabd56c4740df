"""``python -m kshot`` runs the command line."""

from .cli import run

run()
