"""Few-shot text classification on pretrained sentence encoders (needs the ``kshot[text]`` extra)."""

from __future__ import annotations

_EXPORTS = {
    "SentenceEncoder": ".encoder",
    "resolve_model": ".encoder",
    "DEFAULT_MODEL": ".encoder",
    "FewShotClassifier": ".classifier",
    "METHODS": ".classifier",
    "choose_threshold": ".classifier",
    "PairStream": ".pairs",
    "score": ".scoring",
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
