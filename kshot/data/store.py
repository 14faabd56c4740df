"""Where data lives: the data root. Fetching, checksums and atomic writes are ``kshot.core.io``'s.

Data root: an explicit ``root`` argument, else the ``KSHOT_DATA`` environment variable, else the
user cache directory (``$XDG_CACHE_HOME/kshot`` or ``~/.cache/kshot``).
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: explicit argument, then ``KSHOT_DATA``, then the user cache."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("KSHOT_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "kshot"
