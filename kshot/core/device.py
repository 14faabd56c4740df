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
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if not available.get(parsed.type, False):
        raise KshotError(
            f"{name} {device!r} is not available here (torch {torch.__version__} sees no {parsed.type} device); use cpu"
        )
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise KshotError(f"{name} {device!r} is not available here: {torch.cuda.device_count()} CUDA device(s)")
    return str(device)


def load_device(requested, saved) -> str:
    """The device to load a saved model on: ``requested`` when given (checked), else the one it was fitted on
    when torch can use it here, else the CPU (a model fitted on a GPU machine and copied to a laptop)."""
    if requested is not None:
        return check_device(requested)
    try:
        return check_device(saved or "cpu")
    except KshotError:
        return "cpu"
