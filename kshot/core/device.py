"""Torch devices named by the user (``--device``): checked before any work starts."""

from __future__ import annotations

import torch

from .errors import KshotError


def check_device(device, name: str = "device") -> str:
    """``device`` if torch can use it here: ``cpu``, ``cuda``, ``cuda:1``, ``mps``; else a KshotError."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise KshotError(f"{name} must be a torch device such as cpu, cuda or cuda:1, got {device!r}") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if not available.get(parsed.type, False):
        raise KshotError(f"{name} {device!r} is not available here (torch {torch.__version__} sees no "
                         f"{parsed.type} device); use cpu")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise KshotError(f"{name} {device!r} is not available here: {torch.cuda.device_count()} CUDA device(s)")
    return str(device)
