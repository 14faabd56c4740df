"""Where data lives: the data root. Fetching, checksums and atomic writes are ``kshot.core.io``'s.

Data root: an explicit ``root`` argument, else the ``KSHOT_DATA`` environment variable, else the
user cache directory (``$XDG_CACHE_HOME/kshot`` or ``~/.cache/kshot``).
"""

from __future__ import annotations

import importlib.util
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


def first_folder(root, folder: str, installed: list[Path]) -> Path | None:
    """The data set's folder: ``folder`` under the data root when it is there, else the first existing
    place an installed package put it (``installed``), else None. Data sets that come inside a package
    (PyPI, Debian, npm) are read where the package installed them, never fetched."""
    for path in [data_root(root) / folder, *installed]:
        if path.is_dir():
            return path
    return None


def python_package_dir(package: str, *parts: str) -> list[Path]:
    """``[folder]`` of an installed Python package's data (without importing the package), or ``[]``."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(next(iter(spec.submodule_search_locations)), *parts)]


def npm_package_dirs(package: str) -> list[Path]:
    """Where ``npm install -g PACKAGE`` (or one on ``NODE_PATH``) puts a package: candidate folders."""
    bases = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    prefix = os.environ.get("NPM_CONFIG_PREFIX")
    if prefix:
        bases.append(str(Path(prefix) / "lib" / "node_modules"))
    bases += ["/usr/local/lib/node_modules", "/usr/lib/node_modules"]
    return [Path(b) / package for b in bases]
