"""Few-shot sequence labelling (token tagging, NER): tag new entity types from a few annotated sentences.

``FewShotTagger`` (kshot/tagging/tagger.py) is the practitioner API; ``io`` reads and writes CoNLL / JSONL;
``sampling`` draws greedy K-shot support sets and Few-NERD-style episodes; ``encoders`` turns sentences into
token vectors; ``methods/`` holds one file per method (``span``: find the spans, then type them, with
``descriptions`` of common types as label semantics); ``metrics`` scores entities (seqeval).
"""

from __future__ import annotations

_EXPORTS = {
    "FewShotTagger": ".tagger",
    "METHODS": ".tagger",
    "TaggedData": ".io",
    "read_conll": ".io",
    "read_jsonl": ".io",
    "read_tagged": ".io",
    "write_conll": ".io",
    "write_jsonl": ".io",
    "bio_to_io": ".io",
    "io_to_bio": ".io",
    "spans": ".io",
    "greedy_support": ".sampling",
    "fewnerd_episode": ".sampling",
    "entity_scores": ".metrics",
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
