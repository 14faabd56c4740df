"""Files without half-states: atomic writes, sha256 checks and checked downloads.

Every file kshot writes (models, checkpoints, predictions, downloads) goes through ``atomic_write``: a
temporary file beside the target, renamed into place only when the block succeeds, with the permissions
the umask allows (as ``open`` would give). A download is hashed while it streams and never lands when its
sha256 differs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .errors import ChecksumError, DataError
from .progress import progress_bar

CHUNK = 1 << 20


@contextlib.contextmanager
def open_input(path):
    """A text stream over ``path``, or over standard input for ``-`` (left open); a one-line KshotError
    naming a path that is not a readable file."""
    if str(path) == "-":
        yield sys.stdin
        return
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark (spreadsheet exports) is dropped
        yield f


def write_output(path, text: str) -> None:
    """``text`` to standard output for ``-``, else atomically to the file ``path``."""
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_write(path, "w") as f:
        f.write(text)


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise ChecksumError naming the file when its sha256 differs from ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"checksum mismatch for {path}: sha256 is {actual}, expected {expected}; "
            "the file is corrupt or truncated, delete it and fetch it again"
        )


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it what open() would
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def download(
    url: str, dest: str | os.PathLike, sha256: str | None, timeout: float = 60.0, progress: bool = True
) -> Path:
    """Fetch ``url`` into ``dest`` atomically, checking its sha256 before it is renamed into place.

    A failed or corrupt download leaves nothing at ``dest``.
    """
    dest = Path(dest)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"could not download {url}: {getattr(exc, 'reason', exc)}") from None
    total = int(response.headers.get("Content-Length") or 0)
    h = hashlib.sha256()
    with response, atomic_write(dest) as f:
        with progress_bar(total or None, f"downloading {dest.name}", enabled=progress) as advance:
            for block in iter(lambda: response.read(CHUNK), b""):
                h.update(block)
                f.write(block)
                advance(len(block))
        if sha256 is not None and h.hexdigest() != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {url}: sha256 is {h.hexdigest()}, expected {sha256}; "
                f"nothing was written to {dest}"
            )
    return dest
