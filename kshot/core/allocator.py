"""Keep freed CPU memory in the process instead of handing it back to the kernel after every tensor.

glibc's malloc serves large blocks (a 75x64x28x28 float map is 15 MB) with fresh ``mmap`` pages and
returns the top of the heap to the kernel as soon as 128 kB are free, so a training step that allocates
and frees the same large activations every time pays page faults on every one of them: 15 % of a MAML
meta-iteration on a 2-core CPU. ``tune_allocator()`` raises both thresholds (process-wide; the price is a
resident size that stays at its high-water mark). ``kshot.meta_train`` and ``kshot.evaluate`` (so
``kshot train`` and ``kshot eval``) call it; set ``KSHOT_TUNE_MALLOC=0`` to leave malloc alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum: blocks up to 32 MB come from the reusable heap
TRIM_THRESHOLD = 2**30  # give memory back only when 1 GB at the top of the heap is free

_done = False


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where that is not possible
    (not glibc, or ``KSHOT_TUNE_MALLOC=0``)."""
    global _done
    if _done:
        return True
    if os.environ.get("KSHOT_TUNE_MALLOC", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # macOS, Windows, musl: nothing to tune
        return False
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
